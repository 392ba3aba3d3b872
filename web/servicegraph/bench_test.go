package servicegraph_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/servicegraph"
)

// BenchmarkUpdate is one tick's work at the steady state: every edge of
// a graph of 10,000 edges closed one bucket with calls in it, which
// Update adds to the series; and one scrape (Collect) of them.
func BenchmarkUpdate(b *testing.B) {
	const edges = 10_000
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, MaxNodes: 2 * edges, MaxEdges: 2 * edges, Now: clk.now})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	exp, err := servicegraph.New(servicegraph.Options{Source: g, MaxSeries: 2 * edges, IdleExpiry: 15 * time.Minute, Now: clk.now, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	spans := make([]graph.Span, edges)
	names := make([]string, edges)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%d", i)
	}
	round := 0
	fill := func() {
		round++
		t0 := clk.now().UnixNano()
		for i := range spans {
			spans[i] = graph.Span{Trace: graph.TraceID{byte(round), byte(round >> 8), byte(i), byte(i >> 8)}, ID: graph.SpanID{1}, Kind: graph.SpanServer,
				Service: names[i], Start: t0, End: t0 + int64(i%100)*int64(time.Millisecond), Protocol: graph.ProtocolHTTP}
		}
		if rej, why := g.ConsumeSpans(spans); rej > 0 {
			b.Fatal(why)
		}
		clk.advance(5 * time.Second)
	}
	fill()
	exp.Update()
	b.ResetTimer()
	b.Run("update", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			fill()
			b.StartTimer()
			exp.Update()
		}
	})
	b.Run("scrape", func(b *testing.B) {
		for range b.N {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
