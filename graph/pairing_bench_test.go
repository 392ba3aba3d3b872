package graph_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// scenarioPool is a pool of encoded OTLP requests of the generated system,
// with the offsets of the high 8 bytes of every trace id (of spans and
// links), so that each pass over the pool can send fresh trace ids.
type scenarioPool struct {
	reqs  [][]byte
	idAt  [][]int
	spans int // spans over the whole pool
}

func newScenarioPool(b *testing.B, services, n, tracesPerReq int) *scenarioPool {
	b.Helper()
	gen, err := scenario.New(scenario.Options{Services: services, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var prefix [10]byte
	prefix[0], prefix[1] = 0x0a, 0x10
	binary.BigEndian.PutUint64(prefix[2:], gen.TraceIDHigh())
	p := &scenarioPool{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range n {
		td := gen.Traces(now, tracesPerReq)
		now = now.Add(10 * time.Millisecond)
		raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		var at []int
		for off := 0; ; {
			i := bytes.Index(raw[off:], prefix[:])
			if i < 0 {
				break
			}
			at = append(at, off+i+2)
			off += i + len(prefix)
		}
		p.reqs = append(p.reqs, raw)
		p.idAt = append(p.idAt, at)
		p.spans += td.SpanCount()
	}
	return p
}

// stamp gives request i the trace ids of pass.
func (p *scenarioPool) stamp(i int, pass uint64) {
	for _, at := range p.idAt[i] {
		binary.BigEndian.PutUint64(p.reqs[i][at:at+8], pass*0x9e3779b97f4a7c15+1)
	}
}

// gcCPU returns the CPU seconds the process has spent in the garbage
// collector so far.
func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// BenchmarkScenarioIngest measures the collector's per-span path after the
// network (decode, translate, pair, aggregate) on the generated system of
// simulate/scenario, at steady state: the simulated clock advances as if
// spans arrived at 300k/s, so the half-edges that wait for the pair TTL
// (producers, calls to databases and external peers) build up as they do
// under that load. Each op is one request of 50 traces. It reports the
// half-edges pending at the end and the share of CPU the GC took.
func BenchmarkScenarioIngest(b *testing.B) {
	const (
		services     = 24
		tracesPerReq = 50
		poolSize     = 256
		spansPerSec  = 300_000
	)
	pool := newScenarioPool(b, services, poolSize, tracesPerReq)
	spansPerReq := float64(pool.spans) / poolSize
	step := time.Duration(spansPerReq / spansPerSec * float64(time.Second))
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return clk }, MaxPending: 2_000_000})
	if err != nil {
		b.Fatal(err)
	}
	p, err := semconv.NewPipeline(semconv.Options{Sink: g})
	if err != nil {
		b.Fatal(err)
	}
	send := func(i int) {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(pool.reqs[i%poolSize]); err != nil {
			b.Fatal(err)
		}
		if err := p.ConsumeTraces(context.Background(), req.Traces()); err != nil {
			b.Fatal(err)
		}
		clk = clk.Add(step)
	}
	// Warm up to steady state: more than one pair TTL of traffic.
	warm := int(12*time.Second/step) + 1
	for i := range warm {
		if i%poolSize == 0 {
			for j := range poolSize {
				pool.stamp(j, uint64(i/poolSize))
			}
		}
		send(i)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	gc0 := gcCPU()
	var cpu0 runtime.MemStats
	runtime.ReadMemStats(&cpu0)
	start, proc0 := time.Now(), processCPU()
	for n := range b.N {
		i := warm + n
		if i%poolSize == 0 {
			b.StopTimer()
			for j := range poolSize {
				pool.stamp(j, uint64(i/poolSize))
			}
			b.StartTimer()
		}
		send(i)
	}
	elapsed, procCPU := time.Since(start), processCPU()-proc0
	b.StopTimer()
	spans := float64(b.N) * spansPerReq
	// The process's CPU time (every thread: the garbage collector's
	// too) per span: on a shared machine it barely moves when the
	// benchmark waits for a core, where ns/span does.
	b.ReportMetric(float64(procCPU.Nanoseconds())/spans, "cpu-ns/span")
	b.ReportMetric(spans/elapsed.Seconds(), "spans/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/spans, "ns/span")
	b.ReportMetric(100*(gcCPU()-gc0)/elapsed.Seconds(), "gc-cpu-%")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/1e6, "heap-MB")
}
