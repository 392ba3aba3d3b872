package storage_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

// spanSink collects what a SpanSampler hands on.
type spanSink struct {
	mu    sync.Mutex
	spans []storage.Span
}

func (s *spanSink) AddSpans(spans []storage.Span) {
	s.mu.Lock()
	s.spans = append(s.spans, spans...)
	s.mu.Unlock()
}

func tid(i int) pcommon.TraceID {
	return pcommon.TraceID{0: byte(i), 1: byte(i >> 8), 2: byte(i >> 16), 9: 7, 15: 1}
}

// traces builds one request with `traces` traces of 3 spans each, spread
// over two resources.
func traces(traces int) ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 2 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", []string{"front", "back"}[r])
		rs.Resource().Attributes().PutStr("service.namespace", "shop")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range traces {
			for k := range 3 {
				if (k == 0) != (r == 0) { // span 0 in front, 1 and 2 in back
					continue
				}
				sp := ss.AppendEmpty()
				sp.SetTraceID(tid(i))
				sp.SetSpanID(pcommon.SpanID{0: byte(k + 1), 7: byte(i)})
				sp.SetName("op")
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
				sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_002_000_000 + i))
			}
		}
	}
	return td
}

func TestSpanSamplerDeterministicAndWhole(t *testing.T) {
	const n = 2000
	for _, oneIn := range []int{1, 4, 10} {
		sink := &spanSink{}
		s, err := storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: oneIn, Sink: sink})
		require.NoError(t, err)
		s.ObserveTraces(traces(n))
		perTrace := map[graph.TraceID]int{}
		for _, sp := range sink.spans {
			perTrace[sp.Trace]++
		}
		for id, c := range perTrace {
			require.Equal(t, 3, c, "trace %x kept whole", id)
		}
		// The same decision on every call and in every sampler (another
		// collector): the same traces again.
		s2, err := storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: oneIn, Sink: &spanSink{}})
		require.NoError(t, err)
		for i := range n {
			id := graph.TraceID(tid(i))
			_, kept := perTrace[id]
			for range 3 {
				require.Equal(t, kept, s.Sampled(id))
				require.Equal(t, kept, s2.Sampled(id))
			}
		}
		s.ObserveTraces(traces(n))
		require.Len(t, sink.spans, 2*3*len(perTrace), "a second request keeps the same traces")
		want := float64(n) / float64(oneIn)
		require.InDelta(t, want, float64(len(perTrace)), 4*want/10+5, "about one trace in %d", oneIn)
	}
}

func TestSpanSamplerCopiesAndBounds(t *testing.T) {
	sink := &spanSink{}
	reg := prometheus.NewRegistry()
	s, err := storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: 1, Sink: sink, MaxAttributes: 2, MaxValueBytes: 5, MaxLinks: 1, Registerer: reg})
	require.NoError(t, err)
	td := traces(1)
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.Attributes().PutStr("a", "héllo wörld")
	sp.Attributes().PutInt("b", 42)
	sp.Attributes().PutStr("c", "dropped")
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("bad")
	for i := range 3 {
		l := sp.Links().AppendEmpty()
		l.SetTraceID(tid(100 + i))
		l.SetSpanID(pcommon.SpanID{1})
	}
	sp.SetKind(ptrace.SpanKindProducer)
	s.ObserveTraces(td)
	require.Len(t, sink.spans, 3)
	got := sink.spans[0]
	// The request's memory is reused after the call: nothing may alias it.
	sp.SetName("XX")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "changed")
	require.Equal(t, "op", got.Name)
	require.Equal(t, "front", got.Service)
	require.Equal(t, "shop", got.Namespace)
	require.Len(t, got.Attributes, 2)
	require.Equal(t, "h\u00e9ll", got.Attributes["a"], "cut to 5 bytes on a rune boundary")
	require.Equal(t, "42", got.Attributes["b"])
	require.Equal(t, []graph.SpanRef{{Trace: graph.TraceID(tid(100)), Span: graph.SpanID{1}}}, got.Links)
	require.Equal(t, storage.StatusError, got.Status)
	require.Equal(t, "bad", got.StatusMessage)
	require.Equal(t, graph.SpanProducer, got.Kind)
	require.Equal(t, 2*time.Millisecond, got.Duration)
	require.Equal(t, time.Unix(0, 1_700_000_000_000_000_000).UTC(), got.Start)
	require.Equal(t, 1.0, truncated(t, reg, "attribute"))
	require.Equal(t, 2.0, truncated(t, reg, "link"))
	require.Equal(t, 1.0, truncated(t, reg, "value"))

	_, err = storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: 0, Sink: sink})
	require.Error(t, err)
	_, err = storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: 1})
	require.Error(t, err)
}

// Raw spans have a bound of their own, never fill the shared buffer (so
// never push back on ingest), and a backend that cannot store them drops
// them without failing the batch.
func TestPersisterSpans(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), RetentionInterval: -1})
	require.NoError(t, err)
	defer st.Close()
	reg := prometheus.NewRegistry()
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: st, MaxBuffered: 10, MaxBufferedSpans: 5, Registerer: reg})
	require.NoError(t, err)
	spans := make([]storage.Span, 8)
	for i := range spans {
		spans[i] = storage.Span{Trace: graph.TraceID{1}, ID: graph.SpanID{byte(i + 1)}, Name: strings.Repeat("x", i)}
	}
	p.AddSpans(spans)
	require.False(t, p.Full())
	require.Equal(t, 3.0, rowsMetric(t, reg, "span", "dropped"))
	require.NoError(t, p.Flush(ctx), "the embedded store takes no raw spans: they are dropped, the batch is not failed")
	require.Equal(t, 8.0, rowsMetric(t, reg, "span", "dropped"))
	require.Zero(t, rowsMetric(t, reg, "span", "written"))
}

func truncated(t *testing.T, reg *prometheus.Registry, what string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "cartograph_raw_spans_truncated_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == what {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no cartograph_raw_spans_truncated_total{what=%q}", what)
	return 0
}
