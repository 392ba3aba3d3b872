// Package semconv turns OTLP traces into graph.Span values by reading the
// OpenTelemetry semantic conventions, current and deprecated attribute names
// alike, and hands them to the graph through a Pipeline.
//
// Translation is the ingest hot path: it reads each span's attributes once,
// keeps no map, and lets the spans' strings alias the decoded request.
package semconv

import (
	"cmp"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/otlpwire"
)

const (
	// unknownService names the service of a resource without service.name.
	unknownService = "unknown_service"
	// temporaryDestination names every temporary or anonymous destination
	// (reply queues, exclusive queues), whose generated names would otherwise
	// each become a node.
	temporaryDestination = "(temporary)"
)

// Translate appends the spans of td to dst and returns the extended slice,
// plus the number of invalid spans (all-zero trace id or span id) it dropped.
// It never panics on malformed input: attributes of unexpected types are
// treated as absent.
//
// The returned spans' strings alias td: they stay valid only as long as td's
// memory does. Translate is exported for tests, fuzzing and benchmarks;
// Pipeline is the production entry point.
func Translate(dst []graph.Span, td ptrace.Traces) (out []graph.Span, invalid int) {
	var t translator
	return t.translate(dst, td)
}

// translator holds what one translation reuses: the arena that span links
// are cut from and a small cache of joined host:port strings. A Pipeline
// keeps translators in a pool; they are not safe for concurrent use.
type translator struct {
	links []graph.SpanRef
	// keep names the resource attributes kept on service nodes
	// (Options.NodeAttributes); attrs is the arena their values are cut
	// from, one slice per resource, reused as links is.
	keep  []string
	attrs []graph.Attr
	addrs [addrCacheSize]joinedAddr
	next  int
	// tooLong and invalidUTF8 count the names sanitize changed since the
	// last reset.
	tooLong, invalidUTF8 int
}

// reset prepares t for the next request. The link arena is reused: the spans
// of the previous request must no longer be referenced.
func (t *translator) reset() {
	if cap(t.links) > maxPooledLinks {
		t.links = nil
	}
	t.links = t.links[:0]
	clear(t.attrs)
	if cap(t.attrs) > maxPooledLinks {
		t.attrs = nil
	}
	t.attrs = t.attrs[:0]
	t.tooLong, t.invalidUTF8 = 0, 0
}

func (t *translator) translate(dst []graph.Span, td ptrace.Traces) ([]graph.Span, int) {
	invalid := 0
	if n := td.SpanCount(); cap(dst)-len(dst) < n {
		dst = slices.Grow(dst, n)
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		names := t.resourceNames(t.readResource(rs.Resource().Attributes()))
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				tid, sid := sp.TraceID(), sp.SpanID()
				if tid.IsEmpty() || sid.IsEmpty() {
					invalid++
					continue
				}
				dst = append(dst, graph.Span{})
				s := &dst[len(dst)-1]
				s.Trace = graph.TraceID(tid)
				s.ID = graph.SpanID(sid)
				t.setResource(s, &names)
				s.Links = t.spanLinks(sp.Links())
				in := spanInput(sp)
				var a spanAttrs
				sp.Attributes().Range(func(k string, v pcommon.Value) bool {
					a.set(k, valueOf(v))
					return true
				})
				if t.fill(s, &in, &a) {
					var texts [2 * failureEventsMax]string
					s.Failure = a.failure(in.StatusMessage, exceptionTexts(texts[:0], sp.Events()))
				}
				t.sanitize(s)
			}
		}
	}
	return dst, invalid
}

// setResource gives s its resource's names, counting what sanitizing them
// changed as if it were done for each span.
func (t *translator) setResource(s *graph.Span, names *resourceNames) {
	s.Service = names.service
	s.Namespace = names.namespace
	s.Attributes = names.attrs
	s.Instance = names.instance
	t.tooLong += names.tooLong
	t.invalidUTF8 += names.invalidUTF8
}

// spanInput returns what translation reads of sp besides its attributes,
// links and events, its strings aliasing sp.
func spanInput(sp ptrace.Span) otlpwire.Span {
	st := sp.Status()
	return otlpwire.Span{
		Parent:        sp.ParentSpanID(),
		TraceState:    sp.TraceState().AsRaw(),
		Name:          sp.Name(),
		Kind:          int32(sp.Kind()),
		Start:         uint64(sp.StartTimestamp()),
		End:           uint64(sp.EndTimestamp()),
		StatusCode:    int32(st.Code()),
		StatusMessage: st.Message(),
	}
}

// valueOf reduces a pdata attribute value to what translation reads of it.
func valueOf(v pcommon.Value) otlpwire.Value {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return otlpwire.Value{Type: otlpwire.ValueStr, Str: v.Str()}
	case pcommon.ValueTypeBool:
		return otlpwire.Value{Type: otlpwire.ValueBool, Bool: v.Bool()}
	case pcommon.ValueTypeInt:
		return otlpwire.Value{Type: otlpwire.ValueInt, Int: v.Int()}
	case pcommon.ValueTypeDouble:
		return otlpwire.Value{Type: otlpwire.ValueDouble, Double: v.Double()}
	case pcommon.ValueTypeEmpty:
		return otlpwire.Value{}
	}
	return otlpwire.Value{Type: otlpwire.ValueOther}
}

// readResource reads what translation needs of a resource's attributes.
func (t *translator) readResource(attrs pcommon.Map) *resourceAttrs {
	r := &resourceAttrs{keep: t.keep}
	attrs.Range(func(k string, v pcommon.Value) bool {
		r.set(k, valueOf(v))
		return true
	})
	return r
}

// resourceAttrs collects what translation reads of a resource, for both
// readers of OTLP.
type resourceAttrs struct {
	service, namespace string
	instance           string // service.instance.id
	// keep names the attributes kept on service nodes
	// (Options.NodeAttributes); kept holds their values, by position.
	keep []string
	kept [graph.MaxNodeAttributes]string
}

// set records one resource attribute (the last of a name counts).
func (r *resourceAttrs) set(k string, v otlpwire.Value) {
	switch k {
	case "service.name":
		r.service = v.Str
	case "service.namespace":
		r.namespace = v.Str
	case "service.instance.id":
		if v.Type == otlpwire.ValueStr {
			r.instance = v.Str
		}
	default:
		if v.Type != otlpwire.ValueStr {
			return // kept attributes are strings; others are not read
		}
		for i, want := range r.keep {
			if k == want {
				r.kept[i] = v.Str
				return
			}
		}
	}
}

// reset empties r for the next resource, keeping what it keeps.
func (r *resourceAttrs) reset() { *r = resourceAttrs{keep: r.keep} }

// resourceNames returns the names of resource r, sanitized, with its kept
// attributes (their values sanitized as names are) cut from t's arena.
func (t *translator) resourceNames(r *resourceAttrs) resourceNames {
	names := sanitizeResource(r.names())
	if v := r.instance; len(v) > MaxNameBytes || !utf8.ValidString(v) {
		var c translator
		names.instance = c.sanitizeName(v)
	} else {
		names.instance = v
	}
	start := len(t.attrs)
	for i, k := range r.keep {
		v := r.kept[i]
		if v == "" {
			continue
		}
		if len(v) > MaxNameBytes || !utf8.ValidString(v) {
			var c translator
			v = c.sanitizeName(v)
			names.tooLong += c.tooLong
			names.invalidUTF8 += c.invalidUTF8
		}
		t.attrs = append(t.attrs, graph.Attr{Key: k, Value: v})
	}
	if end := len(t.attrs); end > start {
		names.attrs = t.attrs[start:end:end]
	}
	return names
}

// names returns the service (unknownService when unnamed) and namespace.
func (r *resourceAttrs) names() (service, namespace string) {
	if r.service == "" {
		return unknownService, r.namespace
	}
	return r.service, r.namespace
}

// fill sets everything but the ids, service, namespace, links and
// failure of s from in and the span's attributes a. Both readers of OTLP,
// pdata's objects and the wire (wire.go), end here. It reports whether
// s.Failure is to be told from the span's error texts (a.failure).
func (t *translator) fill(s *graph.Span, in *otlpwire.Span, a *spanAttrs) (needFailure bool) {
	s.Parent = graph.SpanID(in.Parent)
	kind := graph.SpanUnspecified
	if k := in.Kind; k >= int32(graph.SpanUnspecified) && k <= int32(graph.SpanConsumer) {
		kind = graph.SpanKind(k)
	}
	s.Kind = kind
	s.Start = unixNanos(in.Start)
	s.End = unixNanos(in.End)
	s.Operation = in.Name

	if w := adjustedCount(in.TraceState); w > 1 {
		s.Weight = w
	} else if a.samplerType == "probabilistic" && a.samplerParam > 0 && a.samplerParam < 1 {
		s.Weight = 1 / a.samplerParam // Jaeger's probabilistic sampler
	}

	s.Error = a.isError(in.StatusCode)
	s.Throttled = a.httpStatusCode() == 429
	needFailure = s.Error && kind == graph.SpanClient
	s.ResendCount = a.resendCount

	if a.msgSystem != "" {
		s.Protocol = graph.MessagingProtocol(a.msgSystem)
		s.Messaging = a.messagingOp(kind)
		s.Destination = a.destination(s.Operation)
		s.ConsumerGroup = firstOf(a.group[:])
		return needFailure
	}

	rpc := firstOf(a.rpcSystem[:])
	db := firstOf(a.dbSystem[:])
	switch {
	case rpc == "grpc":
		s.Protocol = graph.ProtocolGRPC
	case rpc != "":
		s.Protocol = graph.ProtocolRPC
	case db != "":
		s.Protocol = graph.ProtocolDB
	case a.isHTTP():
		s.Protocol = graph.ProtocolHTTP
	}
	if kind == graph.SpanClient {
		s.Peer = t.peer(a, db)
		s.SelfPeer = a.namesService(s.Service)
		if s.Protocol == graph.ProtocolHTTP {
			s.Target = a.target()
		}
	}
	return needFailure
}

// target returns what an HTTP call asks for beyond its method: the route
// template when there is one, else the URL's path without its query.
// HTTP client spans are often named by the method alone, so without it
// every GET from one parent would be the "same operation".
func (a *spanAttrs) target() string {
	if r := firstOf(a.route[:]); r != "" {
		return r
	}
	for _, u := range a.url {
		if u != "" {
			return urlPath(u)
		}
	}
	return cutQuery(firstOf(a.path[:]))
}

// urlPath returns the path of an absolute URL, without query or fragment.
func urlPath(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return cutQuery(u)
	}
	rest := u[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 || rest[j] != '/' {
		return "/"
	}
	return cutQuery(rest[j:])
}

// cutQuery returns p up to its query or fragment.
func cutQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// namesService reports whether the span names service svc as the peer it
// calls: the instrumentation of that peer reporting under its name
// (Jaeger's HotROD, hand-made database spans).
func (a *spanAttrs) namesService(svc string) bool {
	if svc == "" || svc == unknownService {
		return false
	}
	for _, n := range [...]string{a.peerName[0], a.peerName[1], a.serverAddr, a.netPeerName} {
		if n == svc {
			return true
		}
	}
	return false
}

// adjustedCount returns how many spans a span with W3C tracestate ts
// stands for under OpenTelemetry's consistent probability sampling: with
// the rejection threshold th (OTEP 235, "ot=th:<1-14 hex digits>", the
// digits the most significant of a 56-bit number) 2^56 / (2^56 - th); with
// the older "ot=p:<n>" 2^n. It returns 0 when ts says neither.
func adjustedCount(ts string) float64 {
	if ts == "" {
		return 0
	}
	ot := ""
	for ts != "" {
		var member string
		member, ts, _ = strings.Cut(ts, ",")
		member = strings.TrimSpace(member)
		if v, ok := strings.CutPrefix(member, "ot="); ok {
			ot = v
			break
		}
	}
	for ot != "" {
		var kv string
		kv, ot, _ = strings.Cut(ot, ";")
		switch {
		case strings.HasPrefix(kv, "th:"):
			h := kv[3:]
			if len(h) == 0 || len(h) > 14 {
				return 0
			}
			th, err := strconv.ParseUint(h, 16, 64)
			if err != nil {
				return 0
			}
			th <<= 4 * (14 - len(h))
			const max56 = 1 << 56
			return max56 / float64(max56-th)
		case strings.HasPrefix(kv, "p:"):
			n, err := strconv.Atoi(kv[2:])
			if err != nil || n < 0 || n > 62 {
				return 0
			}
			return math.Ldexp(1, n)
		}
	}
	return 0
}

// unixNanos converts an OTLP timestamp, clamping values int64 cannot hold.
func unixNanos(ts uint64) int64 {
	if ts > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(ts)
}

// spanLinks cuts the span's links (those with both ids set) from t's arena.
func (t *translator) spanLinks(links ptrace.SpanLinkSlice) []graph.SpanRef {
	n := links.Len()
	if n == 0 {
		return nil
	}
	start := len(t.links)
	for i := 0; i < n; i++ {
		l := links.At(i)
		tid, sid := l.TraceID(), l.SpanID()
		if tid.IsEmpty() || sid.IsEmpty() {
			continue
		}
		t.links = append(t.links, graph.SpanRef{Trace: graph.TraceID(tid), Span: graph.SpanID(sid)})
	}
	return t.cutLinks(start)
}

// cutLinks returns the links appended to t's arena since start, nil when
// none.
func (t *translator) cutLinks(start int) []graph.SpanRef {
	end := len(t.links)
	if end == start {
		return nil
	}
	// The full slice expression keeps a consumer's append from writing into
	// the next span's links.
	return t.links[start:end:end]
}

// spanAttrs holds the attribute values one span's translation needs. Arrays
// list alternative names in order of precedence (current name first).
type spanAttrs struct {
	msgSystem string
	msgOp     [3]string // messaging.operation.type, messaging.operation, messaging.operation.name
	dest      [3]string // messaging.destination.name, messaging.destination, messaging.source.name
	destKind  string    // legacy messaging.destination.kind and equivalents
	temporary bool
	// routingKey: rabbitmq.destination.routing_key,
	// messaging.rabbitmq.destination.routing_key,
	// messaging.rabbitmq.routing_key (amqplib)
	routingKey [3]string
	group      [7]string // consumer group, see set

	rpcSystem   [2]string // rpc.system.name, rpc.system
	grpcCode    int64     // rpc.grpc.status_code
	hasGRPCCode bool
	rpcStatus   string // rpc.response.status_code

	dbSystem    [2]string // db.system.name, db.system
	dbNamespace [2]string // db.namespace, db.name

	httpSeen    bool      // a string HTTP attribute (method, route, path, target, host)
	url         [2]string // url.full, http.url
	route       [2]string // url.template, http.route
	path        [2]string // url.path, http.target
	httpStatus  [2]int64  // http.response.status_code, http.status_code (0 = absent)
	resendCount int64
	errorType   string // error.type

	samplerType  string  // sampler.type (Jaeger clients)
	samplerParam float64 // sampler.param

	peerName    [2]string // service.peer.name, peer.service
	serverAddr  string
	serverPort  int64
	netPeerName string
	netPeerPort int64
	httpHost    string    // http.host, before semconv 1.21
	sockAddr    [3]string // network.peer.address, net.sock.peer.addr, net.peer.ip
	sockPort    [3]int64  // network.peer.port, net.sock.peer.port, net.peer.port
}

// set records one attribute, for both readers of OTLP. Values of unexpected
// types read as absent: Str is "" for non-strings and Bool false for
// non-bools; integers and doubles are checked explicitly.
func (a *spanAttrs) set(k string, v otlpwire.Value) {
	switch k {
	case "error.type":
		a.errorType = v.Str
	// Messaging.
	case "messaging.system":
		a.msgSystem = v.Str
	case "messaging.operation.type":
		a.msgOp[0] = v.Str
	case "messaging.operation": // before semconv 1.26
		a.msgOp[1] = v.Str
	case "messaging.operation.name":
		a.msgOp[2] = v.Str
	case "messaging.destination.name":
		a.dest[0] = v.Str
	case "messaging.destination": // a string before semconv 1.17
		a.dest[1] = v.Str
	case "messaging.source.name": // consumer side, semconv 1.17-1.23
		a.dest[2] = v.Str
	case "messaging.destination.kind", "messaging.destination_kind", "messaging.source.kind":
		if s := v.Str; s != "" {
			a.destKind = s
		}
	case "messaging.destination.temporary", "messaging.destination.anonymous",
		"messaging.temp_destination", "messaging.source.temporary", "messaging.source.anonymous":
		a.temporary = a.temporary || v.Bool
	case "rabbitmq.destination.routing_key":
		a.routingKey[0] = v.Str
	case "messaging.rabbitmq.destination.routing_key":
		a.routingKey[1] = v.Str
	case "messaging.rabbitmq.routing_key":
		a.routingKey[2] = v.Str
	case "messaging.consumer.group.name":
		a.group[0] = v.Str
	case "messaging.kafka.consumer.group":
		a.group[1] = v.Str
	case "messaging.kafka.consumer_group":
		a.group[2] = v.Str
	case "messaging.destination.subscription.name":
		a.group[3] = v.Str
	case "messaging.servicebus.destination.subscription_name":
		a.group[4] = v.Str
	case "messaging.eventhubs.consumer.group":
		a.group[5] = v.Str
	case "messaging.rocketmq.client_group":
		a.group[6] = v.Str

	// RPC.
	case "rpc.system.name":
		a.rpcSystem[0] = v.Str
	case "rpc.system":
		a.rpcSystem[1] = v.Str
	case "rpc.grpc.status_code":
		if v.Type == otlpwire.ValueInt {
			a.grpcCode, a.hasGRPCCode = v.Int, true
		}
	case "rpc.response.status_code":
		a.rpcStatus = v.Str

	// Databases.
	case "db.system.name":
		a.dbSystem[0] = v.Str
	case "db.system":
		a.dbSystem[1] = v.Str
	case "db.namespace":
		a.dbNamespace[0] = v.Str
	case "db.name":
		a.dbNamespace[1] = v.Str

	// HTTP.
	case "http.request.method", "http.method":
		a.httpSeen = a.httpSeen || v.Str != ""
	case "url.template":
		a.route[0] = v.Str
		a.httpSeen = a.httpSeen || a.route[0] != ""
	case "http.route":
		a.route[1] = v.Str
		a.httpSeen = a.httpSeen || a.route[1] != ""
	case "url.path":
		a.path[0] = v.Str
		a.httpSeen = a.httpSeen || a.path[0] != ""
	case "http.target":
		a.path[1] = v.Str
		a.httpSeen = a.httpSeen || a.path[1] != ""
	case "url.full":
		a.url[0] = v.Str
	case "http.url":
		a.url[1] = v.Str
	case "http.response.status_code":
		a.httpStatus[0] = intValue(v)
	case "http.status_code":
		a.httpStatus[1] = intValue(v)
	case "http.request.resend_count":
		a.resendCount = max(intValue(v), 0)

	// Sampling, as Jaeger's clients record it on root spans.
	case "sampler.type":
		a.samplerType = v.Str
	case "sampler.param":
		switch v.Type {
		case otlpwire.ValueDouble:
			a.samplerParam = v.Double
		case otlpwire.ValueStr:
			a.samplerParam, _ = strconv.ParseFloat(v.Str, 64)
		}

	// Peers.
	case "service.peer.name":
		a.peerName[0] = v.Str
	case "peer.service":
		a.peerName[1] = v.Str
	case "server.address":
		a.serverAddr = v.Str
	case "server.port":
		a.serverPort = intValue(v)
	case "net.peer.name":
		a.netPeerName = v.Str
	case "net.peer.port": // pairs with net.peer.name and net.peer.ip
		a.netPeerPort = intValue(v)
		a.sockPort[2] = a.netPeerPort
	case "http.host":
		a.httpHost = v.Str
		a.httpSeen = a.httpSeen || a.httpHost != ""
	case "network.peer.address":
		a.sockAddr[0] = v.Str
	case "net.sock.peer.addr": // semconv 1.17-1.20
		a.sockAddr[1] = v.Str
	case "net.peer.ip": // before semconv 1.17
		a.sockAddr[2] = v.Str
	case "network.peer.port":
		a.sockPort[0] = intValue(v)
	case "net.sock.peer.port":
		a.sockPort[1] = intValue(v)
	}
}

// intValue returns v's integer, or 0 when v is not an integer.
func intValue(v otlpwire.Value) int64 {
	if v.Type != otlpwire.ValueInt {
		return 0
	}
	return v.Int
}

// firstOf returns the first non-empty string of ss.
func firstOf(ss []string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// httpStatusCode returns the HTTP status code, 0 when absent.
func (a *spanAttrs) httpStatusCode() int64 {
	if a.httpStatus[0] > 0 {
		return a.httpStatus[0]
	}
	return max(a.httpStatus[1], 0)
}

func (a *spanAttrs) isHTTP() bool {
	return a.httpSeen || a.url[0] != "" || a.url[1] != "" || a.httpStatusCode() != 0
}

// isError reports whether the call failed on the callee's account: an HTTP
// 5xx, or status ERROR unless an HTTP 4xx or a caller-side gRPC code says
// the caller was at fault.
func (a *spanAttrs) isError(status int32) bool {
	code := a.httpStatusCode()
	if code >= 500 {
		return true
	}
	if status != int32(ptrace.StatusCodeError) {
		return false
	}
	if code >= 400 {
		return false
	}
	if g, ok := a.grpcStatus(); ok && !grpcServerFault(g) {
		return false
	}
	return true
}

// grpcStatus returns the gRPC status code from rpc.grpc.status_code or, when
// that is absent, the status name in rpc.response.status_code.
func (a *spanAttrs) grpcStatus() (int64, bool) {
	if a.hasGRPCCode {
		if a.grpcCode >= 0 && a.grpcCode < int64(len(grpcCodeNames)) {
			return a.grpcCode, true
		}
		return 0, false
	}
	if a.rpcStatus == "" {
		return 0, false
	}
	return grpcCodeByName(a.rpcStatus)
}

// grpcCodeNames are the gRPC status code names, indexed by code.
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// grpcCodeByName parses a gRPC status code name, case-insensitively so that
// Connect's lower-case names ("not_found") match too.
func grpcCodeByName(name string) (int64, bool) {
	if strings.EqualFold(name, "CANCELED") { // Connect's and Go's spelling
		return 1, true
	}
	for i, n := range grpcCodeNames {
		if strings.EqualFold(name, n) {
			return int64(i), true
		}
	}
	return 0, false
}

// grpcServerFault reports whether a gRPC code puts the failure on the
// server: UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
func grpcServerFault(code int64) bool {
	switch code {
	case 2, 4, 8, 10, 12, 13, 14, 15:
		return true
	}
	return false
}

// messagingOp returns the operation named by the first recognised operation
// attribute, else one inferred from the span kind.
func (a *spanAttrs) messagingOp(kind graph.SpanKind) graph.MessagingOp {
	for _, s := range a.msgOp {
		if op := parseMessagingOp(s); op != graph.MessagingNone {
			return op
		}
	}
	switch kind {
	case graph.SpanProducer:
		return graph.MessagingPublish
	case graph.SpanConsumer:
		return graph.MessagingProcess
	}
	return graph.MessagingNone
}

func parseMessagingOp(s string) graph.MessagingOp {
	switch s {
	case "publish", "send", "create":
		return graph.MessagingPublish
	case "receive":
		return graph.MessagingReceive
	case "process", "deliver":
		return graph.MessagingProcess
	case "settle", "ack", "nack":
		return graph.MessagingSettle
	}
	return graph.MessagingNone
}

// destination returns the destination node of a messaging span named
// spanName.
func (a *spanAttrs) destination(spanName string) graph.NodeKey {
	if a.msgSystem == "rabbitmq" {
		return a.rabbitDestination(spanName)
	}
	name := firstOf(a.dest[:])
	if a.temporary {
		name = temporaryDestination
	}
	var kind graph.NodeKind
	switch {
	case strings.EqualFold(a.destKind, "queue"):
		kind = graph.NodeQueue
	case strings.EqualFold(a.destKind, "topic"):
		kind = graph.NodeTopic
	default:
		kind = graph.DestinationKind(a.msgSystem)
	}
	return graph.NodeKey{Kind: kind, Group: a.msgSystem, Name: name}
}

// rabbitDestination returns the queue a RabbitMQ message goes to or comes
// from. RabbitMQ's conventions name the exchange as the destination and
// put the routing key beside it; the node is what a reader would call the
// destination, the same on the publishing and the consuming side:
//   - the default exchange ("", "<default>", "amq.default") routes by key
//     to the queue of that name: the routing key;
//   - a named exchange with a routing key: "<exchange>:<routing key>", the
//     name the stable messaging conventions (and the Java agent under
//     them) give it, kept as it is when it already has that form;
//   - a named exchange without a key: the exchange.
//
// It is a queue whatever kind the instrumentation says (amqplib says
// topic). pika marks every publish temporary ("(temporary)") and names the
// real destination only in its span name ("<exchange or key> send"): the
// span name's destination is taken then.
func (a *spanAttrs) rabbitDestination(spanName string) graph.NodeKey {
	name := firstOf(a.dest[:])
	key := firstOf(a.routingKey[:])
	if a.temporary {
		if d, ok := strings.CutSuffix(spanName, " send"); ok && (name == "" || name == temporaryDestination) && d != "" && d != temporaryDestination {
			name = d
		} else {
			name, key = temporaryDestination, ""
		}
	}
	switch {
	case isDefaultExchange(name):
		if key != "" {
			name = key
		}
	case key != "" && key != name && !strings.Contains(name, ":") && name != temporaryDestination:
		name = name + ":" + key
	}
	return graph.NodeKey{Kind: graph.NodeQueue, Group: a.msgSystem, Name: name}
}

// isDefaultExchange reports whether name is RabbitMQ's default exchange as
// instrumentations write it.
func isDefaultExchange(name string) bool {
	switch name {
	case "", "<default>", "(default)", "amq.default", "default":
		return true
	}
	return false
}

// peer returns the node a CLIENT span calls, the zero key when the span
// names none. With a database system it is the database, named by
// db.namespace, db.name, server.address, net.peer.name or else the system.
// A namespace that is only a number (Redis's database index) names nothing
// by itself, since every Redis server has a database 0: the server's
// address is put in front of it ("cache-1/0").
// Otherwise it is an external peer named by the first of service.peer.name,
// peer.service, server.address[:server.port], net.peer.name[:net.peer.port],
// http.host, a peer address[:port] (network.peer.*, net.sock.peer.*,
// net.peer.ip) and the host of url.full or http.url.
func (t *translator) peer(a *spanAttrs, db string) graph.NodeKey {
	if db != "" {
		name := firstOf(a.dbNamespace[:])
		if host := cmp.Or(a.serverAddr, a.netPeerName); host != "" && isDigits(name) {
			name = host + "/" + name
		}
		if name == "" {
			name = a.serverAddr
		}
		if name == "" {
			name = a.netPeerName
		}
		if name == "" {
			name = db
		}
		return graph.NodeKey{Kind: graph.NodeDatabase, Group: db, Name: name}
	}
	var name string
	switch {
	case a.peerName[0] != "" || a.peerName[1] != "":
		name = firstOf(a.peerName[:])
	case a.serverAddr != "":
		name = t.joinHostPort(a.serverAddr, a.serverPort)
	case a.netPeerName != "":
		name = t.joinHostPort(a.netPeerName, a.netPeerPort)
	case a.httpHost != "":
		name = a.httpHost // the Host header, with its port when not the default
	case a.sockAddr[0] != "" || a.sockAddr[1] != "" || a.sockAddr[2] != "":
		for i, addr := range a.sockAddr {
			if addr != "" {
				name = t.joinHostPort(addr, a.sockPort[i])
				break
			}
		}
	default:
		for _, u := range a.url {
			if u != "" {
				if name = urlHost(u); name != "" {
					break
				}
			}
		}
	}
	if name == "" {
		return graph.NodeKey{}
	}
	return graph.NodeKey{Kind: graph.NodeExternal, Name: name}
}

// addrCacheSize is the number of joined host:port strings a translator
// remembers; a service calls few peers, so most client spans hit.
const addrCacheSize = 8

// joinedAddr is a cached "host:port"; host is s[:hostLen]. The entry owns
// its string, so a pooled translator keeps no request memory alive.
type joinedAddr struct {
	s       string
	hostLen int
	port    int64
}

// joinHostPort returns host, or "host:port" when port is positive, reusing
// a recently built string when it can.
func (t *translator) joinHostPort(host string, port int64) string {
	if port <= 0 {
		return host
	}
	for i := range t.addrs {
		e := &t.addrs[i]
		if e.port == port && e.hostLen == len(host) && e.s != "" && e.s[:e.hostLen] == host {
			return e.s
		}
	}
	var buf [64]byte
	b := append(buf[:0], host...)
	b = append(b, ':')
	b = strconv.AppendInt(b, port, 10)
	s := string(b)
	t.addrs[t.next] = joinedAddr{s: s, hostLen: len(host), port: port}
	t.next = (t.next + 1) % addrCacheSize
	return s
}

// urlHost returns the host[:port] of an absolute URL, "" when it has none.
// The common form is sliced out without allocating; url.Parse handles the
// rest.
func urlHost(u string) string {
	if i := strings.Index(u, "://"); i > 0 {
		rest := u[i+3:]
		end := len(rest)
		clean := true
		for j := 0; j < len(rest); j++ {
			c := rest[j]
			if c == '/' || c == '?' || c == '#' {
				end = j
				break
			}
			if c <= ' ' || c == 0x7f || c == '%' || c == '\\' {
				clean = false
				break
			}
		}
		if clean {
			host := rest[:end]
			if at := strings.LastIndexByte(host, '@'); at >= 0 {
				host = host[at+1:]
			}
			return host
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
