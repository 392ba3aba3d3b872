package semconv

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest"
)

// recordingSink copies the spans it receives and refuses the first
// rejectN of each call.
type recordingSink struct {
	mu      sync.Mutex
	calls   int
	spans   []graph.Span
	rejectN int
	reason  string
}

func (s *recordingSink) ConsumeSpans(spans []graph.Span) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, sp := range spans {
		sp.Links = append([]graph.SpanRef(nil), sp.Links...)
		s.spans = append(s.spans, sp)
	}
	if s.rejectN > 0 {
		return s.rejectN, s.reason
	}
	return 0, ""
}

// counterValues gathers reg and returns each counter's value by
// name{label=value}.
func counterValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}

func mixedRequest(t *testing.T, valid, invalid int) ptrace.Traces {
	t.Helper()
	var spans []spanSpec
	for i := 0; i < valid; i++ {
		spans = append(spans, spanSpec{name: "ok", kind: server, attrs: map[string]any{"http.route": "/"}})
	}
	for i := 0; i < invalid; i++ {
		spans = append(spans, spanSpec{name: "bad", zeroIDs: true})
	}
	return buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": "svc"}, spans: spans})
}

func TestPipeline(t *testing.T) {
	tests := []struct {
		name        string
		valid       int
		invalid     int
		maxSpans    int
		rejectN     int
		reason      string
		wantErr     string // "" means nil
		wantPerm    bool
		wantPartial int64
		wantSunk    int
		wantCalls   int
		wantMetrics map[string]float64
	}{
		{
			name: "all accepted", valid: 3, wantSunk: 3, wantCalls: 1,
			wantMetrics: map[string]float64{"cartograph_ingest_spans_translated_total": 3},
		},
		{
			name: "zero ids dropped and counted", valid: 2, invalid: 3,
			wantErr: "ingest: 3 items rejected: 3 spans with empty trace or span id", wantPartial: 3,
			wantSunk: 2, wantCalls: 1,
			wantMetrics: map[string]float64{
				"cartograph_ingest_spans_translated_total":               2,
				"cartograph_ingest_spans_invalid_total{reason=empty_id}": 3,
			},
		},
		{
			name: "only invalid spans do not call the sink", invalid: 1,
			wantErr: "ingest: 1 items rejected: 1 span with empty trace or span id", wantPartial: 1,
			wantMetrics: map[string]float64{"cartograph_ingest_spans_invalid_total{reason=empty_id}": 1},
		},
		{
			name: "sink rejects", valid: 4, rejectN: 2, reason: "half-edge store full",
			wantErr: "ingest: 2 items rejected: 2 spans refused: half-edge store full", wantPartial: 2,
			wantSunk: 4, wantCalls: 1,
			wantMetrics: map[string]float64{
				"cartograph_ingest_spans_translated_total": 4,
				"cartograph_ingest_spans_rejected_total":   2,
			},
		},
		{
			name: "invalid and rejected", valid: 5, invalid: 3, rejectN: 5, reason: "half-edge store full",
			wantErr:     "ingest: 8 items rejected: 3 spans with empty trace or span id; 5 spans refused: half-edge store full",
			wantPartial: 8, wantSunk: 5, wantCalls: 1,
		},
		{
			name: "sink over-reports rejections", valid: 1, rejectN: 10,
			wantErr: "ingest: 1 items rejected: 1 span refused", wantPartial: 1, wantSunk: 1, wantCalls: 1,
		},
		{
			name: "at the limit", valid: 3, maxSpans: 3, wantSunk: 3, wantCalls: 1,
		},
		{
			name: "above the limit", valid: 3, invalid: 1, maxSpans: 3,
			wantErr:  "semconv: too many spans in request: 4 spans, limit 3",
			wantPerm: true,
			wantMetrics: map[string]float64{
				"cartograph_ingest_spans_invalid_total{reason=too_many_spans}": 4,
				"cartograph_ingest_spans_translated_total":                     0,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{rejectN: tt.rejectN, reason: tt.reason}
			reg := prometheus.NewRegistry()
			p, err := NewPipeline(Options{Sink: sink, Registerer: reg, MaxSpansPerRequest: tt.maxSpans})
			if err != nil {
				t.Fatalf("NewPipeline: %v", err)
			}
			err = p.ConsumeTraces(context.Background(), mixedRequest(t, tt.valid, tt.invalid))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ConsumeTraces: %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("ConsumeTraces error = %v, want %q", err, tt.wantErr)
			}
			if got := ingest.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("IsPermanent = %v, want %v", got, tt.wantPerm)
			}
			if tt.wantPerm && !errors.Is(err, ErrTooManySpans) {
				t.Errorf("error %v does not wrap ErrTooManySpans", err)
			}
			var pe *ingest.PartialError
			if errors.As(err, &pe) != (tt.wantPartial > 0) {
				t.Errorf("PartialError = %v, want rejected %d", pe, tt.wantPartial)
			} else if pe != nil && pe.Rejected != tt.wantPartial {
				t.Errorf("PartialError.Rejected = %d, want %d", pe.Rejected, tt.wantPartial)
			}
			if sink.calls != tt.wantCalls || len(sink.spans) != tt.wantSunk {
				t.Errorf("sink got %d calls, %d spans; want %d, %d", sink.calls, len(sink.spans), tt.wantCalls, tt.wantSunk)
			}
			got := counterValues(t, reg)
			for name, want := range tt.wantMetrics {
				if got[name] != want {
					t.Errorf("%s = %v, want %v (all: %v)", name, got[name], want, got)
				}
			}
		})
	}
}

func TestNewPipelineOptions(t *testing.T) {
	if _, err := NewPipeline(Options{}); !errors.Is(err, ErrNoSink) {
		t.Errorf("no sink: err = %v, want ErrNoSink", err)
	}
	if _, err := NewPipeline(Options{Sink: &recordingSink{}, MaxSpansPerRequest: -1}); err == nil {
		t.Error("negative MaxSpansPerRequest: no error")
	}
	// A nil Registerer registers nothing, so two pipelines coexist.
	for range 2 {
		if _, err := NewPipeline(Options{Sink: &recordingSink{}}); err != nil {
			t.Fatalf("nil Registerer: %v", err)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewPipeline(Options{Sink: &recordingSink{}, Registerer: reg}); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	if _, err := NewPipeline(Options{Sink: &recordingSink{}, Registerer: reg}); err == nil {
		t.Error("duplicate registration: no error")
	}
}

// TestPipelineReusesBuffers checks, under the race detector, that pooled
// buffers are neither shared between concurrent requests nor leak one
// request's spans into the next.
func TestPipelineReusesBuffers(t *testing.T) {
	sink := &recordingSink{}
	p, err := NewPipeline(Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	big := realisticRequest(t, 5)
	small := buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": "small"}, spans: []spanSpec{{name: "only"}}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				td := big
				if (g+i)%2 == 0 {
					td = small
				}
				if err := p.ConsumeTraces(context.Background(), td); err != nil {
					t.Errorf("ConsumeTraces: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := 8 * 10 * (big.SpanCount() + small.SpanCount())
	if len(sink.spans) != want {
		t.Fatalf("sink got %d spans, want %d", len(sink.spans), want)
	}
	for _, s := range sink.spans {
		if s.Service == "small" && (s.Operation != "only" || s.Links != nil) {
			t.Fatalf("small request span polluted by a pooled buffer: %+v", s)
		}
	}
}

func TestAdmitRefusesWholeRequests(t *testing.T) {
	sink := &recordingSink{}
	closed := ingest.ErrUnavailable
	p, err := NewPipeline(Options{Sink: sink, Admit: func() error { return closed }})
	if err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	if err := p.ConsumeTraces(context.Background(), td); !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	closed = nil
	if err := p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
}

// countingObserver counts the requests and spans it sees.
type countingObserver struct {
	mu              sync.Mutex
	requests, spans int
}

func (o *countingObserver) ObserveTraces(td ptrace.Traces) {
	o.mu.Lock()
	o.requests++
	o.spans += td.SpanCount()
	o.mu.Unlock()
}

func TestObserverSeesAdmittedRequests(t *testing.T) {
	for _, c := range []struct {
		name     string
		admit    error
		maxSpans int
		seen     int
	}{
		{"admitted", nil, 0, 3},
		{"refused by admit", ingest.ErrUnavailable, 0, 0},
		{"refused as too large", nil, 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs := &countingObserver{}
			p, err := NewPipeline(Options{Sink: &recordingSink{}, Observer: obs, MaxSpansPerRequest: c.maxSpans,
				Admit: func() error { return c.admit }})
			if err != nil {
				t.Fatal(err)
			}
			_ = p.ConsumeTraces(context.Background(), mixedRequest(t, 2, 1))
			if obs.spans != c.seen {
				t.Fatalf("observer saw %d spans, want %d", obs.spans, c.seen)
			}
		})
	}
}
