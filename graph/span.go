package graph

import "github.com/seed-a49a8342/cartograph/graph/pairing"

// TraceID is a W3C trace id. The ids are the pairing store's (graph/pairing
// keys half-edges by them), so that spans and links reach it as they are.
type TraceID = pairing.TraceID

// SpanID is a W3C span id. The zero value means "none".
type SpanID = pairing.SpanID

// SpanRef points at a span in a trace, as a parent or a span link does.
type SpanRef = pairing.SpanRef

// SpanKind is the OTLP span kind.
type SpanKind uint8

// Span kinds, numbered as in OTLP (as pairing.Kind is: spanKind converts).
const (
	SpanUnspecified SpanKind = iota
	SpanInternal
	SpanServer
	SpanClient
	SpanProducer
	SpanConsumer
)

// pairingKind returns k as the pairing store numbers kinds: the same
// numbers, OTLP's.
func pairingKind(k SpanKind) pairing.Kind { return pairing.Kind(k) }

// MessagingOp is the messaging operation a span performs
// (messaging.operation.type, or messaging.operation before semconv 1.26).
type MessagingOp uint8

// Messaging operations. MessagingNone means the span is not a messaging span.
const (
	MessagingNone    MessagingOp = iota
	MessagingPublish             // "publish", "send", "create"
	MessagingReceive             // "receive" (a pull; CLIENT kind in current semconv)
	MessagingProcess             // "process", "deliver"
	MessagingSettle              // "settle", "ack", "nack"
)

// Span is one OTLP span reduced to what the graph needs. Ingest fills it from
// the wire format and the semantic conventions; the graph sees no span
// attribute, and of the resource's only the few kept as Attributes.
//
// String fields may alias the decoder's buffers: the graph copies whatever it
// keeps beyond the call that received the Span, and callers may reuse a Span
// slice once that call returns.
type Span struct {
	Trace  TraceID
	ID     SpanID
	Parent SpanID // zero for a root span
	Kind   SpanKind

	// Service and Namespace come from the resource (service.name,
	// service.namespace).
	Service   string
	Namespace string
	// Attributes are the resource attributes ingest was told to keep on
	// service nodes (--node-attributes), in the order it was told, none
	// empty. Every span of one resource shares the slice.
	Attributes []Attr
	// Instance is the resource's service.instance.id ("" when it has
	// none): the graph keeps none, graph/changes follows them to see
	// instances replaced.
	Instance string

	// Start and End are Unix nanoseconds as sent.
	Start, End int64

	// Error is true when the call failed on the callee's account: status
	// ERROR except HTTP 4xx and gRPC caller-side codes, or HTTP 5xx.
	Error bool
	// Throttled is true when the callee refused the call for its rate
	// (HTTP 429): not the callee's error, but a failure callers retry, so
	// a repeat of the call after it is a retry.
	Throttled bool
	// Failure is what a failed call's error says of why it failed, when
	// it says: the caller could not reach the callee, or its own circuit
	// breaker or bulkhead turned the call away without trying. Counted on
	// unanswered calls as Stats.Refused and Stats.Rejected.
	Failure Failure

	Protocol Protocol

	// Peer is the node a CLIENT span calls when no SERVER span answers it:
	// a database (Kind NodeDatabase, Group db system, Name db namespace or
	// server address) or an external peer (Kind NodeExternal, Name from
	// service.peer.name, peer.service, server.address[:port], net.peer.name,
	// network.peer.address). Zero Kind when the span names no peer.
	Peer NodeKey
	// SelfPeer is true for a CLIENT span that names its own service as
	// the peer it calls (service.peer.name, peer.service or
	// server.address equal to its service.name): the instrumentation of
	// that peer, reporting under the peer's name, whose caller is the
	// service of its parent span.
	SelfPeer bool

	// Messaging is the operation of a messaging span; Destination is its
	// destination node (Kind NodeTopic or NodeQueue, Group the messaging
	// system, Name messaging.destination.name); ConsumerGroup is
	// messaging.consumer.group.name (or a legacy equivalent).
	Messaging     MessagingOp
	Destination   NodeKey
	ConsumerGroup string

	// Links are the span's links (a batch consumer links to each producer).
	Links []SpanRef

	// Weight is the span's adjusted count: how many spans of the real
	// traffic it stands for when the trace was sampled (1/p of probability
	// sampling, from the OpenTelemetry threshold in tracestate or the
	// sampler's attributes). 0 or 1: not known to be sampled.
	Weight float64

	// ResendCount is http.request.resend_count (0 when absent).
	ResendCount int64

	// Operation names the callee operation (e.g. "GET /users/{id}",
	// "pkg.Service/Method", "SELECT orders"); client spans repeated from one
	// parent to the same Operation after a failure count as retries.
	Operation string
	// Target is what a call asks for beyond its operation's name: for an
	// HTTP client span, the route template or the URL path without its
	// query ("" otherwise). A repeat of a call to the same Operation and
	// Target after a failure is a retry; a loop of GETs to different
	// paths is not.
	Target string
}

// Attr is one resource attribute of a service, kept on its node.
type Attr struct{ Key, Value string }

// Failure is why a failed call failed, as far as its error tells.
type Failure uint8

const (
	// FailureUnknown: the error says nothing of a connection or a breaker.
	FailureUnknown Failure = iota
	// FailureUnreachable: the caller tried and could not connect
	// (connection refused or reset, host or network unreachable, name not
	// resolved, connect timeout, gRPC UNAVAILABLE).
	FailureUnreachable
	// FailureRejected: the caller's own breaker or bulkhead turned the
	// call away without trying (resilience4j CallNotPermittedException,
	// Polly BrokenCircuitException, gobreaker's "circuit breaker is open",
	// hystrix "circuit open", Envoy overflow).
	FailureRejected
)
