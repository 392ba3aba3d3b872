package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// Span is one raw span kept for trace look-ups (optional, off by default:
// see SpanSampler). Its strings are its own (copied from the request).
type Span struct {
	Trace  graph.TraceID
	ID     graph.SpanID
	Parent graph.SpanID // zero for a root span
	// Service and Namespace come from the resource (service.name,
	// service.namespace).
	Service, Namespace string
	Name               string
	Kind               graph.SpanKind
	Status             SpanStatus
	StatusMessage      string
	Start              time.Time
	Duration           time.Duration
	// Attributes are the span's attributes as strings, at most
	// SpanSamplerOptions.MaxAttributes of them, each key and value cut to
	// MaxValueBytes.
	Attributes map[string]string
	// Links are the span's links, at most MaxLinks of them.
	Links []graph.SpanRef
}

// SpanStatus is the OTLP status code of a span.
type SpanStatus uint8

// Status codes, numbered as in OTLP.
const (
	StatusUnset SpanStatus = iota
	StatusOK
	StatusError
)

var statusNames = [...]string{"unset", "ok", "error"}

// String returns unset, ok or error.
func (s SpanStatus) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("SpanStatus(%d)", s)
}

// ParseSpanStatus is the inverse of String.
func ParseSpanStatus(v string) (SpanStatus, error) {
	for i, n := range statusNames {
		if v == n {
			return SpanStatus(i), nil
		}
	}
	return 0, fmt.Errorf("storage: span status %q: want unset, ok or error", v)
}

var spanKindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// SpanKindName is the lower-case name of an OTLP span kind.
func SpanKindName(k graph.SpanKind) string {
	if int(k) < len(spanKindNames) {
		return spanKindNames[k]
	}
	return "unspecified"
}

// ParseSpanKind is the inverse of SpanKindName.
func ParseSpanKind(v string) (graph.SpanKind, error) {
	for i, n := range spanKindNames {
		if v == n {
			return graph.SpanKind(i), nil
		}
	}
	return 0, fmt.Errorf("storage: span kind %q: want one of %s", v, strings.Join(spanKindNames[:], ", "))
}

// ParseTraceID reads a trace id as 32 hex digits (W3C), rejecting the
// all-zero id.
func ParseTraceID(v string) (graph.TraceID, error) {
	var id graph.TraceID
	if len(v) != 2*len(id) {
		return id, fmt.Errorf("trace id %q: want 32 hex digits", v)
	}
	if _, err := hex.Decode(id[:], []byte(v)); err != nil {
		return id, fmt.Errorf("trace id %q: want 32 hex digits", v)
	}
	if id == (graph.TraceID{}) {
		return id, fmt.Errorf("trace id %q: all zero", v)
	}
	return id, nil
}

// SpanAppender is an Appender that can also store raw spans (the
// ClickHouse backend). AppendSpans follows the Appender's contract.
type SpanAppender interface {
	AppendSpans(spans []Span) error
}

// TraceReader returns the stored spans of one trace, by start time; none
// (and no error) when the trace is unknown.
type TraceReader interface {
	Trace(ctx context.Context, id graph.TraceID) ([]Span, error)
}

// SpanSink takes sampled spans (the Persister). It owns them once called.
type SpanSink interface {
	AddSpans(spans []Span)
}

// Defaults of SpanSamplerOptions.
const (
	DefaultMaxSpanAttributes = 32
	DefaultMaxValueBytes     = 256
	DefaultMaxSpanLinks      = 32
)

// SpanSamplerOptions configure a SpanSampler.
type SpanSamplerOptions struct {
	// SampleOneIn keeps every span of the traces whose id hashes to a
	// multiple of it (critpath.TraceHash: fixed, so every collector keeps
	// the same traces, and a trace is kept whole or not at all). Must be
	// at least 1 (1 keeps every trace).
	SampleOneIn int
	// MaxAttributes bounds the attributes kept per span (default 32; the
	// first ones in the span's order); MaxValueBytes cuts keys and values
	// (default 256 bytes, on a UTF-8 boundary); MaxLinks bounds the links
	// kept per span (default 32). Beyond, they are dropped and counted.
	MaxAttributes, MaxValueBytes, MaxLinks int
	// Sink receives the sampled spans. Required.
	Sink       SpanSink
	Registerer prometheus.Registerer
}

// SpanSampler picks the spans of sampled traces out of OTLP requests and
// hands copies to a SpanSink. Safe for concurrent use.
type SpanSampler struct {
	o         SpanSamplerOptions
	sampled   prometheus.Counter
	truncated *prometheus.CounterVec
}

// NewSpanSampler returns a SpanSampler for o.
func NewSpanSampler(o SpanSamplerOptions) (*SpanSampler, error) {
	if o.Sink == nil {
		return nil, errors.New("storage: SpanSamplerOptions.Sink is required")
	}
	if o.SampleOneIn < 1 {
		return nil, fmt.Errorf("storage: raw span sample one in %d: must be at least 1", o.SampleOneIn)
	}
	if o.MaxAttributes <= 0 {
		o.MaxAttributes = DefaultMaxSpanAttributes
	}
	if o.MaxValueBytes <= 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.MaxLinks <= 0 {
		o.MaxLinks = DefaultMaxSpanLinks
	}
	s := &SpanSampler{o: o,
		sampled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_raw_spans_sampled_total",
			Help: "Spans of sampled traces handed to storage for trace look-ups.",
		}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_raw_spans_truncated_total",
			Help: "Parts of sampled spans left out to bound their size, by what (attribute: beyond the count; value: cut to the length; link).",
		}, []string{"what"}),
	}
	for _, w := range []string{"attribute", "value", "link"} {
		s.truncated.WithLabelValues(w)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.sampled, s.truncated} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("storage: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Sampled reports whether the spans of trace id are kept.
func (s *SpanSampler) Sampled(id graph.TraceID) bool {
	return s.o.SampleOneIn == 1 || critpath.TraceHash(id)%uint64(s.o.SampleOneIn) == 0
}

// ObserveTraces hands the spans of the sampled traces in td to the sink,
// copied: nothing reachable from td is kept after it returns. Spans with
// an empty trace or span id are skipped (the pipeline counts them).
func (s *SpanSampler) ObserveTraces(td ptrace.Traces) {
	var out []Span
	var cutAttrs, cutValues, cutLinks int
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		var service, namespace string
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				tid, sid := sp.TraceID(), sp.SpanID()
				if tid.IsEmpty() || sid.IsEmpty() || !s.Sampled(graph.TraceID(tid)) {
					continue
				}
				if service == "" {
					service, namespace = resourceService(rs.Resource().Attributes())
				}
				start, end := sp.StartTimestamp(), sp.EndTimestamp()
				d := time.Duration(0)
				if end > start {
					d = time.Duration(end - start)
				}
				kind := graph.SpanUnspecified
				if k := sp.Kind(); k >= ptrace.SpanKindUnspecified && k <= ptrace.SpanKindConsumer {
					kind = graph.SpanKind(k)
				}
				st := StatusUnset
				switch sp.Status().Code() {
				case ptrace.StatusCodeOk:
					st = StatusOK
				case ptrace.StatusCodeError:
					st = StatusError
				}
				r := Span{
					Trace: graph.TraceID(tid), ID: graph.SpanID(sid), Parent: graph.SpanID(sp.ParentSpanID()),
					Service: service, Namespace: namespace,
					Name: s.cut(sp.Name(), &cutValues), Kind: kind, Status: st,
					StatusMessage: s.cut(sp.Status().Message(), &cutValues),
					Start:         start.AsTime().UTC(), Duration: d,
				}
				if attrs := sp.Attributes(); attrs.Len() > 0 {
					r.Attributes = make(map[string]string, min(attrs.Len(), s.o.MaxAttributes))
					attrs.Range(func(k string, v pcommon.Value) bool {
						if len(r.Attributes) == s.o.MaxAttributes {
							cutAttrs++
							return true
						}
						r.Attributes[s.cut(k, &cutValues)] = s.cut(v.AsString(), &cutValues)
						return true
					})
				}
				if links := sp.Links(); links.Len() > 0 {
					n := min(links.Len(), s.o.MaxLinks)
					cutLinks += links.Len() - n
					r.Links = make([]graph.SpanRef, 0, n)
					for l := 0; l < n; l++ {
						ln := links.At(l)
						r.Links = append(r.Links, graph.SpanRef{Trace: graph.TraceID(ln.TraceID()), Span: graph.SpanID(ln.SpanID())})
					}
				}
				out = append(out, r)
			}
		}
	}
	s.truncated.WithLabelValues("attribute").Add(float64(cutAttrs))
	s.truncated.WithLabelValues("value").Add(float64(cutValues))
	s.truncated.WithLabelValues("link").Add(float64(cutLinks))
	if len(out) == 0 {
		return
	}
	s.sampled.Add(float64(len(out)))
	s.o.Sink.AddSpans(out)
}

// cut returns a copy of v of at most MaxValueBytes, cut on a UTF-8
// boundary, counting the cut.
func (s *SpanSampler) cut(v string, cuts *int) string {
	if len(v) <= s.o.MaxValueBytes {
		return strings.Clone(v)
	}
	*cuts++
	n := s.o.MaxValueBytes
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return strings.Clone(v[:n])
}

// resourceService reads service.name and service.namespace (copied).
func resourceService(attrs pcommon.Map) (service, namespace string) {
	if v, ok := attrs.Get("service.name"); ok {
		service = strings.Clone(v.AsString())
	}
	if v, ok := attrs.Get("service.namespace"); ok {
		namespace = strings.Clone(v.AsString())
	}
	if service == "" {
		service = "unknown_service"
	}
	return service, namespace
}
