package semconv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/otlpwire"
)

// SpanSink receives translated spans. It must not keep spans, or the backing
// memory of their strings and Links, after ConsumeSpans returns: it copies
// what it keeps. It returns how many of the spans it refused and why (for
// example "half-edge store full"); rejected is 0 when it took them all. It may
// be called from many goroutines at once.
type SpanSink interface {
	ConsumeSpans(spans []graph.Span) (rejected int, reason string)
}

// TracesObserver sees every request a Pipeline admits (for example to keep
// the raw spans of sampled traces). It must not keep td, or anything
// reachable from it, after ObserveTraces returns: it copies what it keeps.
// It may be called from many goroutines at once.
type TracesObserver interface {
	ObserveTraces(td ptrace.Traces)
}

// TraceSampler is implemented by a TracesObserver that keeps only the
// spans of some traces. For a protobuf request read from the wire
// (DecodeTracesProto) the observer is then handed only the spans of
// the traces it samples, picked while the request is read, with their
// resources (each span and resource exactly as sent; scopes left out),
// instead of the whole request decoded a second time.
type TraceSampler interface {
	Sampled(id graph.TraceID) bool
}

// Options configure a Pipeline.
type Options struct {
	// Sink receives the translated spans. Required.
	Sink SpanSink
	// Registerer registers the pipeline's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger logs dropped spans at debug level; nil discards.
	Logger *slog.Logger
	// MaxSpansPerRequest refuses, as a permanent error, requests carrying
	// more spans. 0 means unlimited.
	MaxSpansPerRequest int
	// Admit, when set, is asked before each request; an error refuses the
	// whole request with it (e.g. ingest.ErrUnavailable while storage is
	// down and its buffer full, so senders retry later).
	Admit func() error
	// Observer, when set, sees each admitted request after its spans went
	// to the sink (nil: none).
	Observer TracesObserver
	// NodeAttributes names the resource attributes kept on service nodes
	// (graph.Span.Attributes), at most graph.MaxNodeAttributes; string
	// values only, sanitized as names are.
	NodeAttributes []string
}

// Errors returned by NewPipeline and ConsumeTraces.
var (
	// ErrNoSink means Options.Sink is nil.
	ErrNoSink = errors.New("semconv: no span sink")
	// ErrTooManySpans means a request carried more than MaxSpansPerRequest
	// spans. ConsumeTraces returns it wrapped by ingest.NewPermanent.
	ErrTooManySpans = errors.New("semconv: too many spans in request")
)

// Invalid-span reasons, the values of the reason label of
// cartograph_ingest_spans_invalid_total.
const (
	reasonEmptyID      = "empty_id"       // all-zero trace id or span id
	reasonTooManySpans = "too_many_spans" // request above MaxSpansPerRequest
)

// Bounds on what a pooled buffer keeps between requests; a buffer grown
// beyond them by an unusually large request is left to the garbage collector.
const (
	maxPooledSpans = 1 << 16
	maxPooledLinks = 1 << 16
)

// Pipeline is an ingest.TracesConsumer that translates traces into graph
// spans and hands them to a SpanSink. It is safe for concurrent use.
type Pipeline struct {
	sink     SpanSink
	logger   *slog.Logger
	maxSpans int
	admit    func() error
	observer TracesObserver
	pool     sync.Pool // of *batch

	translated     prometheus.Counter
	invalidEmptyID prometheus.Counter
	invalidTooMany prometheus.Counter
	rejected       prometheus.Counter
	tooLong        prometheus.Counter
	invalidUTF8    prometheus.Counter
}

var (
	_ ingest.TracesProtoDecoder = (*Pipeline)(nil)
	_ ingest.TracesJSONDecoder  = (*Pipeline)(nil)
)

// batch is the per-request scratch space a Pipeline pools, and the
// ingest.DecodedTraces of a request read from the wire.
type batch struct {
	spans []graph.Span
	t     translator
	w     wireReader
	json  otlpwire.JSONReader
	p     *Pipeline
	body  []byte // the request read by DecodeTracesProto or JSON, until Release
}

// NewPipeline returns a Pipeline built from o. It fails when o has no sink,
// a negative MaxSpansPerRequest, or its metrics cannot be registered.
func NewPipeline(o Options) (*Pipeline, error) {
	if o.Sink == nil {
		return nil, ErrNoSink
	}
	if o.MaxSpansPerRequest < 0 {
		return nil, fmt.Errorf("semconv: MaxSpansPerRequest %d is negative", o.MaxSpansPerRequest)
	}
	if err := CheckNodeAttributes(o.NodeAttributes); err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	translated := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cartograph", Subsystem: "ingest", Name: "spans_translated_total",
		Help: "Spans translated from OTLP and handed to the graph.",
	})
	invalid := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cartograph", Subsystem: "ingest", Name: "spans_invalid_total",
		Help: "Spans dropped before translation, by reason: empty_id (all-zero trace or span id), too_many_spans (request above the per-request limit).",
	}, []string{"reason"})
	sanitized := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cartograph", Subsystem: "ingest", Name: "names_sanitized_total",
		Help: "Span names (service, operation, peer, destination, group) changed on the way in, by reason: too_long (cut to 256 bytes), invalid_utf8 (invalid bytes replaced).",
	}, []string{"reason"})
	rejected := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cartograph", Subsystem: "ingest", Name: "spans_rejected_total",
		Help: "Translated spans the graph refused (for example because a bounded store was full).",
	})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{translated, invalid, rejected, sanitized} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("semconv: registering metrics: %w", err)
			}
		}
	}
	p := &Pipeline{
		sink:           o.Sink,
		logger:         logger,
		maxSpans:       o.MaxSpansPerRequest,
		admit:          o.Admit,
		observer:       o.Observer,
		translated:     translated,
		invalidEmptyID: invalid.WithLabelValues(reasonEmptyID),
		invalidTooMany: invalid.WithLabelValues(reasonTooManySpans),
		rejected:       rejected,
		tooLong:        sanitized.WithLabelValues(reasonTooLong),
		invalidUTF8:    sanitized.WithLabelValues(reasonInvalidUTF8),
	}
	keep := slices.Clone(o.NodeAttributes)
	p.pool.New = func() any {
		b := &batch{t: translator{keep: keep}}
		b.w.res.keep = keep
		return b
	}
	return p, nil
}

// ConsumeTraces translates td and hands its spans to the sink. Spans with an
// empty trace or span id are dropped; they and the spans the sink refuses
// are reported as an *ingest.PartialError. A request with more than
// MaxSpansPerRequest spans is refused whole with a permanent error wrapping
// ErrTooManySpans. Nothing reachable from td is kept after it returns.
func (p *Pipeline) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if err := p.admitSpans(td.SpanCount()); err != nil {
		return err
	}
	b := p.pool.Get().(*batch)
	spans, invalid := b.t.translate(b.spans[:0], td)
	rejected, reason := p.toSink(&b.t, spans)
	p.release(b, spans)
	if p.observer != nil {
		p.observer.ObserveTraces(td)
	}
	return p.finish(ctx, len(spans), invalid, rejected, reason)
}

// DecodeTracesProto reads body, an OTLP/protobuf ExportTraceServiceRequest,
// straight into graph spans with otlpwire.ReadTraces and the same
// translation as ConsumeTraces: no pdata objects, no copy of a string.
// It fails, wrapping an otlpwire error, for the requests pdata's decoder
// refuses and for those nested otlpwire.MaxNesting deep. The result's
// spans alias body, which the caller keeps unchanged until Release; its
// Consume behaves as ConsumeTraces of the same request.
func (p *Pipeline) DecodeTracesProto(body []byte) (ingest.DecodedTraces, error) {
	b := p.pool.Get().(*batch)
	b.p = p
	b.w.t = &b.t
	b.w.spans = b.spans[:0]
	if s, ok := p.observer.(TraceSampler); ok {
		b.w.sampler = s
	}
	if err := otlpwire.ReadTraces(body, &b.w); err != nil {
		b.Release()
		return nil, fmt.Errorf("semconv: reading OTLP protobuf traces: %w", err)
	}
	b.w.flushObserved()
	b.body = body
	return b, nil
}

// DecodeTracesJSON reads body, an OTLP/JSON ExportTraceServiceRequest,
// straight into graph spans with an otlpwire.JSONReader and the same
// translation as ConsumeTraces: no pdata objects, strings aliasing body
// but for those that held escapes, which are unescaped into the batch's
// arena. It fails, wrapping an otlpwire error, for the requests pdata's
// JSON decoder refuses and for those nested otlpwire.MaxNesting deep. The
// result's spans alias body, which the caller keeps unchanged until
// Release (the arena, too, lives until then); its Consume behaves as
// ConsumeTraces of the request pdata would have decoded.
func (p *Pipeline) DecodeTracesJSON(body []byte) (ingest.DecodedTraces, error) {
	b := p.pool.Get().(*batch)
	b.p = p
	b.w.t = &b.t
	b.w.spans = b.spans[:0]
	b.w.json = true
	if s, ok := p.observer.(TraceSampler); ok {
		b.w.sampler = s
	}
	if err := b.json.ReadTraces(body, &b.w); err != nil {
		b.Release()
		return nil, fmt.Errorf("semconv: reading OTLP JSON traces: %w", err)
	}
	b.w.flushObserved()
	b.w.closeObserved()
	b.body = body
	return b, nil
}

// SpanCount is the number of spans of the request, empty ids included.
func (b *batch) SpanCount() int { return b.w.total }

// Consume hands the spans of the request to the sink and the observer, as
// ConsumeTraces does.
func (b *batch) Consume(ctx context.Context) error {
	p := b.p
	if err := p.admitSpans(b.w.total); err != nil {
		return err
	}
	rejected, reason := p.toSink(&b.t, b.w.spans)
	if p.observer != nil {
		p.observeWire(b)
	}
	return p.finish(ctx, len(b.w.spans), b.w.invalid, rejected, reason)
}

// Release returns the batch to its pipeline's pool.
func (b *batch) Release() {
	b.body = nil
	b.json.Reset()
	spans := b.w.spans
	b.w.reset()
	b.p.release(b, spans)
}

// observeWire hands the observer what it takes of a request read from the
// wire: the spans of its sampled traces, or, for an observer that samples
// nothing by trace, the whole request, decoded by pdata.
func (p *Pipeline) observeWire(b *batch) {
	body := b.body
	if b.w.sampler != nil {
		if body = b.w.observed; len(body) == 0 {
			return
		}
	}
	req := ptraceotlp.NewExportRequest()
	unmarshal := req.UnmarshalProto
	if b.w.json {
		unmarshal = req.UnmarshalJSON
	}
	if err := unmarshal(body); err != nil {
		// Cannot happen: the bytes were read and checked, or re-encoded
		// from checked bytes.
		p.logger.Error("raw span sample: decoding the sampled spans", "err", err)
		return
	}
	p.observer.ObserveTraces(req.Traces())
}

// admitSpans asks Options.Admit, then refuses a request of n spans above
// MaxSpansPerRequest.
func (p *Pipeline) admitSpans(n int) error {
	if p.admit != nil {
		if err := p.admit(); err != nil {
			return err
		}
	}
	if p.maxSpans > 0 && n > p.maxSpans {
		p.invalidTooMany.Add(float64(n))
		return ingest.NewPermanent(fmt.Errorf("%w: %d spans, limit %d", ErrTooManySpans, n, p.maxSpans))
	}
	return nil
}

// toSink counts the names t sanitized and hands spans to the sink, returning
// how many it refused and why.
func (p *Pipeline) toSink(t *translator, spans []graph.Span) (rejected int, reason string) {
	if t.tooLong > 0 {
		p.tooLong.Add(float64(t.tooLong))
	}
	if t.invalidUTF8 > 0 {
		p.invalidUTF8.Add(float64(t.invalidUTF8))
	}
	if len(spans) > 0 {
		rejected, reason = p.sink.ConsumeSpans(spans)
		rejected = min(max(rejected, 0), len(spans))
	}
	return rejected, reason
}

// finish counts a request's spans and returns its partial error, if any.
func (p *Pipeline) finish(ctx context.Context, translated, invalid, rejected int, reason string) error {
	if translated > 0 {
		p.translated.Add(float64(translated))
	}
	if invalid > 0 {
		p.invalidEmptyID.Add(float64(invalid))
	}
	if rejected > 0 {
		p.rejected.Add(float64(rejected))
	}
	if invalid+rejected == 0 {
		return nil
	}
	msg := partialReason(invalid, rejected, reason)
	p.logger.LogAttrs(ctx, slog.LevelDebug, "spans dropped",
		slog.Int("invalid", invalid), slog.Int("rejected", rejected), slog.String("reason", msg))
	return &ingest.PartialError{Rejected: int64(invalid + rejected), Reason: msg}
}

// release returns b to the pool, dropping the references its spans hold into
// the request so that a pooled buffer keeps no request alive.
func (p *Pipeline) release(b *batch, spans []graph.Span) {
	if cap(spans) > maxPooledSpans {
		return
	}
	clear(spans)
	b.spans = spans[:0]
	b.t.reset()
	p.pool.Put(b)
}

// partialReason names the causes of a partial success, e.g. "3 spans with
// empty trace or span id; 5 spans refused: half-edge store full".
func partialReason(invalid, rejected int, sinkReason string) string {
	var sb strings.Builder
	if invalid > 0 {
		writeCount(&sb, invalid)
		sb.WriteString(" with empty trace or span id")
	}
	if rejected > 0 {
		if sb.Len() > 0 {
			sb.WriteString("; ")
		}
		writeCount(&sb, rejected)
		sb.WriteString(" refused")
		if sinkReason != "" {
			sb.WriteString(": ")
			sb.WriteString(sinkReason)
		}
	}
	return sb.String()
}

// writeCount writes "1 span" or "n spans".
func writeCount(sb *strings.Builder, n int) {
	sb.WriteString(strconv.Itoa(n))
	if n == 1 {
		sb.WriteString(" span")
	} else {
		sb.WriteString(" spans")
	}
}
