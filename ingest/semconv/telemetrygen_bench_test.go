package semconv_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// BenchmarkTelemetrygenIngest measures the path after the network (the
// wire decoder, translation, pairing, aggregation) on the load of
// SHAPE=telemetrygen bench/compare.sh: requests of 50 telemetrygen-shaped
// 2-span traces, with fresh trace ids on every pass over a pool of 256
// requests, the simulated clock advancing as if spans arrived at 800k/s, so
// that the table of recent spans is as full, and as far out of the CPU's
// caches, as in the collector under that load. Each op is one request.
func BenchmarkTelemetrygenIngest(b *testing.B) {
	const (
		seed         = 7
		tracesPerReq = 50
		poolSize     = 256
		spansPerSec  = 800_000
	)
	spansPerReq := tracesPerReq * synth.TelemetrygenSpansPerTrace
	step := time.Duration(float64(spansPerReq) / spansPerSec * float64(time.Second))
	gen := synth.New(seed, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var prefix [10]byte
	prefix[0], prefix[1] = 0x0a, 0x10 // trace_id, 16 bytes
	binary.BigEndian.PutUint64(prefix[2:], seed)
	reqs := make([][]byte, poolSize)
	idAt := make([][]int, poolSize)
	for i := range reqs {
		raw, err := ptraceotlp.NewExportRequestFromTraces(gen.TelemetrygenTraces(tracesPerReq)).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; ; {
			j := bytes.Index(raw[off:], prefix[:])
			if j < 0 {
				break
			}
			idAt[i] = append(idAt[i], off+j+2)
			off += j + len(prefix)
		}
		if len(idAt[i]) != spansPerReq {
			b.Fatalf("found %d trace ids in request %d, want %d", len(idAt[i]), i, spansPerReq)
		}
		reqs[i] = raw
	}
	stamp := func(pass uint64) {
		for i, at := range idAt {
			for _, o := range at {
				binary.BigEndian.PutUint64(reqs[i][o:o+8], pass*0x9e3779b97f4a7c15+1)
			}
		}
	}
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
		d, err := p.DecodeTracesProto(reqs[i%poolSize])
		if err != nil {
			b.Fatal(err)
		}
		err = d.Consume(context.Background())
		d.Release()
		if err != nil {
			b.Fatal(err)
		}
		clk = clk.Add(step)
	}
	// Warm up past the span table's horizon (twice the 10 s pair TTL, and
	// two seconds).
	warm := int(23*time.Second/step) + 1
	for i := range warm {
		if i%poolSize == 0 {
			stamp(uint64(i / poolSize))
		}
		send(i)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for n := range b.N {
		i := warm + n
		if i%poolSize == 0 {
			b.StopTimer()
			stamp(uint64(i / poolSize))
			b.StartTimer()
		}
		send(i)
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	spans := float64(b.N * spansPerReq)
	b.ReportMetric(float64(elapsed.Nanoseconds())/spans, "ns/span")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/spans, "cpu-ns/span")
	}
}
