package graph_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// spanCapture keeps copies of the spans a pipeline translates, one batch
// per request.
type spanCapture struct{ batches [][]graph.Span }

func (c *spanCapture) ConsumeSpans(spans []graph.Span) (int, string) {
	out := make([]graph.Span, len(spans))
	for i, s := range spans {
		// semconv's strings are Go strings of their own (it makes no
		// unsafe views into the request): only Links share memory.
		s.Links = append([]graph.SpanRef(nil), s.Links...)
		out[i] = s
	}
	c.batches = append(c.batches, out)
	return 0, ""
}

// BenchmarkScenarioPairing is BenchmarkScenarioIngest without the decoding
// and the translation: the generated system's spans, translated once, go
// to Graph.ConsumeSpans with fresh trace ids on every pass over the pool,
// the clock advancing as if spans arrived at 300k/s. Only the graph's
// work is timed, so a change to pairing shows above the noise of a shared
// machine. Each op is one request of 50 traces.
func BenchmarkScenarioPairing(b *testing.B) {
	const (
		services     = 24
		tracesPerReq = 50
		poolSize     = 256
		spansPerSec  = 300_000
	)
	pool := newScenarioPool(b, services, poolSize, tracesPerReq)
	capt := &spanCapture{}
	tr, err := semconv.NewPipeline(semconv.Options{Sink: capt})
	if err != nil {
		b.Fatal(err)
	}
	for _, raw := range pool.reqs {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(raw); err != nil {
			b.Fatal(err)
		}
		if err := tr.ConsumeTraces(context.Background(), req.Traces()); err != nil {
			b.Fatal(err)
		}
	}
	if len(capt.batches) != poolSize {
		b.Fatalf("%d batches, want %d", len(capt.batches), poolSize)
	}
	spansPerReq := float64(pool.spans) / poolSize
	step := time.Duration(spansPerReq / spansPerSec * float64(time.Second))
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return clk }, MaxPending: 2_000_000})
	if err != nil {
		b.Fatal(err)
	}
	// restamp gives every trace id of the pool the high half of pass.
	restamp := func(pass uint64) {
		var hi [8]byte
		binary.BigEndian.PutUint64(hi[:], pass*0x9e3779b97f4a7c15+1)
		for _, batch := range capt.batches {
			for i := range batch {
				copy(batch[i].Trace[:8], hi[:])
				for j := range batch[i].Links {
					copy(batch[i].Links[j].Trace[:8], hi[:])
				}
			}
		}
	}
	send := func(i int) {
		if i%poolSize == 0 {
			restamp(uint64(i / poolSize))
		}
		g.ConsumeSpans(capt.batches[i%poolSize])
		clk = clk.Add(step)
	}
	warm := int(25*time.Second/step) + 1
	for i := range warm {
		send(i)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	start, proc0 := time.Now(), processCPU()
	for n := range b.N {
		if i := warm + n; i%poolSize == 0 {
			b.StopTimer()
			restamp(uint64(i / poolSize))
			b.StartTimer()
		}
		g.ConsumeSpans(capt.batches[(warm+n)%poolSize])
		clk = clk.Add(step)
	}
	elapsed, procCPU := time.Since(start), processCPU()-proc0
	b.StopTimer()
	spans := float64(b.N) * spansPerReq
	b.ReportMetric(float64(procCPU.Nanoseconds())/spans, "cpu-ns/span")
	b.ReportMetric(float64(elapsed.Nanoseconds())/spans, "ns/span")
}
