package pairing

// TraceID is a W3C trace id.
type TraceID [16]byte

// SpanID is a W3C span id. The zero value means "none".
type SpanID [8]byte

// IsZero reports whether the id is empty (all zero bytes).
func (s SpanID) IsZero() bool { return s == SpanID{} }

// SpanRef points at a span in a trace, as a parent or a span link does.
type SpanRef struct {
	Trace TraceID
	Span  SpanID
}

// Kind is a span's OTLP kind, numbered as in OTLP.
type Kind uint8

// Span kinds.
const (
	KindUnspecified Kind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)
