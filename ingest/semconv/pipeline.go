package semconv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest"
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

var _ ingest.TracesConsumer = (*Pipeline)(nil)

// batch is the per-request scratch space a Pipeline pools.
type batch struct {
	spans []graph.Span
	t     translator
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
	p.pool.New = func() any { return new(batch) }
	return p, nil
}

// ConsumeTraces translates td and hands its spans to the sink. Spans with an
// empty trace or span id are dropped; they and the spans the sink refuses
// are reported as an *ingest.PartialError. A request with more than
// MaxSpansPerRequest spans is refused whole with a permanent error wrapping
// ErrTooManySpans. Nothing reachable from td is kept after it returns.
func (p *Pipeline) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if p.admit != nil {
		if err := p.admit(); err != nil {
			return err
		}
	}
	if p.maxSpans > 0 {
		if n := td.SpanCount(); n > p.maxSpans {
			p.invalidTooMany.Add(float64(n))
			return ingest.NewPermanent(fmt.Errorf("%w: %d spans, limit %d", ErrTooManySpans, n, p.maxSpans))
		}
	}

	b := p.pool.Get().(*batch)
	spans, invalid := b.t.translate(b.spans[:0], td)
	if b.t.tooLong > 0 {
		p.tooLong.Add(float64(b.t.tooLong))
	}
	if b.t.invalidUTF8 > 0 {
		p.invalidUTF8.Add(float64(b.t.invalidUTF8))
	}
	rejected, reason := 0, ""
	if len(spans) > 0 {
		rejected, reason = p.sink.ConsumeSpans(spans)
		rejected = min(max(rejected, 0), len(spans))
	}
	p.release(b, spans)
	if p.observer != nil {
		p.observer.ObserveTraces(td)
	}

	if len(spans) > 0 {
		p.translated.Add(float64(len(spans)))
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
