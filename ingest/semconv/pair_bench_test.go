package semconv_test

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

// BenchmarkDecodePairAggregate is graph's benchmark of the same name (the
// whole per-span hot path after the network: decode of an OTLP/protobuf
// export request, translation, pairing, windowed aggregation; one request
// of 100 traces, 800 spans, per op) with the decoder as a dimension: pdata
// (what graph's measures) or the wire (Pipeline.DecodeTracesProto, what
// the receivers use for protobuf); and the same for the request in
// OTLP/JSON: pdata-json (pdata's JSON decoder and ConsumeTraces) or
// wire-json (Pipeline.DecodeTracesJSON). allocs/span counts every
// allocation of the process during the run, cpu-ns/span its CPU time.
func BenchmarkDecodePairAggregate(b *testing.B) {
	for _, decoder := range []string{"pdata", "wire", "pdata-json", "wire-json"} {
		for _, par := range []int{1, 2} {
			b.Run(decoder+"/"+map[int]string{1: "serial", 2: "parallel"}[par], func(b *testing.B) {
				decodePairAggregate(b, decoder, par)
			})
		}
	}
}

func decodePairAggregate(b *testing.B, decoder string, par int) {
	wire := decoder == "wire" || decoder == "wire-json"
	asJSON := decoder == "pdata-json" || decoder == "wire-json"
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
		gen := synth.New(uint64(i+1), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		pools[i] = make([][]byte, 64)
		for j := range pools[i] {
			req := ptraceotlp.NewExportRequestFromTraces(gen.Traces(tracesPerReq))
			body, err := req.MarshalProto()
			if asJSON {
				body, err = req.MarshalJSON()
			}
			if err != nil {
				b.Fatal(err)
			}
			pools[i][j] = body
		}
	}
	var worker atomic.Int32
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpuStart := time.Now(), processCPU()
	work := func(next func() bool) {
		w := int(worker.Add(1)-1) % par
		reqs := pools[w]
		for i := 0; next(); i++ {
			if i > 0 && i%len(reqs) == 0 {
				// The pool repeats its trace ids: let the last round's
				// unpaired half-edges expire first.
				clk.ns.Add(int64(11 * time.Second))
			}
			body := reqs[i%len(reqs)]
			if wire {
				decode := p.DecodeTracesProto
				if asJSON {
					decode = p.DecodeTracesJSON
				}
				d, err := decode(body)
				if err != nil {
					b.Error(err)
					return
				}
				err = d.Consume(context.Background())
				d.Release()
				if err != nil {
					b.Error(err)
					return
				}
				continue
			}
			req := ptraceotlp.NewExportRequest()
			unmarshal := req.UnmarshalProto
			if asJSON {
				unmarshal = req.UnmarshalJSON
			}
			if err := unmarshal(body); err != nil {
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
	elapsed, cpu := time.Since(start), processCPU()-cpuStart
	b.StopTimer()
	runtime.ReadMemStats(&after)
	spans := float64(b.N * spansPerReq)
	b.ReportMetric(spans/elapsed.Seconds(), "spans/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/spans, "ns/span")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/spans, "allocs/span")
	if cpu > 0 {
		// CPU time of the whole process (every goroutine, the GC):
		// steadier than ns/span on a loaded machine.
		b.ReportMetric(float64(cpu.Nanoseconds())/spans, "cpu-ns/span")
	}
}
