package graph_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// atomicClock is a clock benchmarks advance from several goroutines.
type atomicClock struct{ ns atomic.Int64 }

func (c *atomicClock) now() time.Time { return time.Unix(0, c.ns.Load()) }

// encodedRequests returns n OTLP/gRPC request bodies of tracesPerReq traces.
func encodedRequests(b *testing.B, seed uint64, n, tracesPerReq int) [][]byte {
	b.Helper()
	gen := synth.New(seed, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	out := make([][]byte, n)
	for i := range out {
		body, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(tracesPerReq)).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = body
	}
	return out
}

// BenchmarkDecodePairAggregate measures the whole per-span hot path of the
// collector after the network: protobuf decode of an OTLP export request,
// semantic-convention translation, pairing and windowed aggregation.
// Each op is one request of 100 traces (800 spans).
func BenchmarkDecodePairAggregate(b *testing.B) {
	for _, par := range []int{1, 2} {
		b.Run(map[int]string{1: "serial", 2: "parallel"}[par], func(b *testing.B) {
			const tracesPerReq = 100
			spansPerReq := tracesPerReq * synth.SpansPerTrace
			clk := &atomicClock{}
			clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			g, err := graph.New(graph.Options{Now: clk.now})
			if err != nil {
				b.Fatal(err)
			}
			p, err := semconv.NewPipeline(semconv.Options{Sink: g})
			if err != nil {
				b.Fatal(err)
			}
			pools := make([][][]byte, par)
			for i := range pools {
				pools[i] = encodedRequests(b, uint64(i+1), 64, tracesPerReq)
			}
			var worker atomic.Int32
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			work := func(next func() bool) {
				w := int(worker.Add(1)-1) % par
				reqs := pools[w]
				for i := 0; next(); i++ {
					if i > 0 && i%len(reqs) == 0 {
						// The pool repeats its trace ids: let the last
						// round's unpaired half-edges expire first.
						clk.ns.Add(int64(11 * time.Second))
					}
					req := ptraceotlp.NewExportRequest()
					if err := req.UnmarshalProto(reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
					if err := p.ConsumeTraces(context.Background(), req.Traces()); err != nil {
						b.Error(err)
						return
					}
				}
			}
			if par == 1 {
				n := 0
				work(func() bool { n++; return n <= b.N })
			} else {
				b.SetParallelism(1) // GOMAXPROCS goroutines, one pool each
				b.RunParallel(func(pb *testing.PB) { work(pb.Next) })
			}
			elapsed := time.Since(start)
			spans := float64(b.N * spansPerReq)
			b.ReportMetric(spans/elapsed.Seconds(), "spans/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/spans, "ns/span")
		})
	}
}

// BenchmarkPendingHalfEdgeBytes measures the heap held per pending half-edge:
// client spans whose server spans have not arrived.
func BenchmarkPendingHalfEdgeBytes(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		b.StopTimer()
		g, err := graph.New(graph.Options{MaxPending: n})
		if err != nil {
			b.Fatal(err)
		}
		spans := make([]graph.Span, 1000)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for i := 0; i < n; i += len(spans) {
			for j := range spans {
				k := uint64(i + j)
				s := &spans[j]
				*s = graph.Span{Kind: graph.SpanClient, Service: "checkout", Namespace: "shop",
					Start: 1, End: 2, Protocol: graph.ProtocolHTTP, Operation: "POST",
					Peer: graph.NodeKey{Kind: graph.NodeExternal, Name: "payment:9090"}}
				for x := range 8 {
					s.Trace[x] = byte(k >> (8 * x))
					s.ID[x] = byte(k >> (8 * x))
				}
				s.Trace[15], s.ID[7], s.Parent[0] = 1, 1, 1
			}
			if rej, why := g.ConsumeSpans(spans); rej != 0 {
				b.Fatal(why)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The table of recent spans may live outside the heap (mapped
		// for huge pages): it counts all the same.
		held := float64(after.HeapAlloc-before.HeapAlloc) + float64(graph.OffHeapBytes(g))
		b.ReportMetric(held/n, "bytes/half-edge")
		runtime.KeepAlive(g)
		b.StartTimer()
	}
}
