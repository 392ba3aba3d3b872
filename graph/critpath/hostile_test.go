package critpath_test

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// TestHostileTraceShapes: shapes no tracer produces but a hostile or broken
// sender can. Each trace is analysed (or dropped and counted) in bounded
// time and allocation; nothing loops, recurses without bound or panics.
func TestHostileTraceShapes(t *testing.T) {
	const n = 20_000
	cases := []struct {
		name  string
		build func(b *tr)
	}{
		{"a ring of parent links, no root", func(b *tr) {
			for i := range n {
				b.span(uint64(i+1), uint64((i+1)%n+1), graph.SpanServer, "ring", float64(i), float64(i+10))
			}
		}},
		{"every span its own parent", func(b *tr) {
			for i := range n {
				b.span(uint64(i+1), uint64(i+1), graph.SpanServer, "self", 0, 1)
			}
		}},
		{"every span sharing one id", func(b *tr) {
			b.span(1, 0, graph.SpanServer, "root", 0, 100)
			for range n {
				b.span(2, 1, graph.SpanClient, "root", 1, 99)
			}
		}},
		{"one span with 20k children", func(b *tr) {
			b.span(1, 0, graph.SpanServer, "fan", 0, 1000)
			for i := range n {
				b.span(uint64(i+2), 1, graph.SpanClient, "fan", float64(i%900), float64(i%900)+50)
			}
		}},
		{"two cycles and a chain into them", func(b *tr) {
			b.span(1, 2, graph.SpanServer, "x", 0, 10)
			b.span(2, 1, graph.SpanServer, "y", 1, 9)
			b.span(3, 4, graph.SpanServer, "z", 2, 8)
			b.span(4, 3, graph.SpanServer, "w", 3, 7)
			for i := range n {
				b.span(uint64(i+10), uint64(i+9), graph.SpanInternal, "chain", 4, 6)
			}
		}},
		{"extreme timestamps", func(b *tr) {
			b.span(1, 0, graph.SpanServer, "t", 0, 1)
			b.spans[0].Start, b.spans[0].End = 0, math.MaxInt64
			for i := range n {
				sp := b.span(uint64(i+2), 1, graph.SpanClient, "t", 0, 1)
				sp.Start, sp.End = int64(i)*(math.MaxInt64/n), math.MinInt64+int64(i)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c, _ := newSampler(t, critpath.Options{SampleOneIn: 1, MaxSpansPerTrace: 2 * n})
			b := newTr(42)
			tc.build(b)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			done := make(chan []graph.EntryPath, 1)
			t0 := time.Now()
			go func() { done <- complete(s, c, b) }()
			select {
			case paths := <-done:
				runtime.ReadMemStats(&m1)
				t.Logf("%d spans: %d entries in %v, %d KiB allocated", len(b.spans), len(paths), time.Since(t0), (m1.TotalAlloc-m0.TotalAlloc)>>10)
				require.LessOrEqual(t, m1.TotalAlloc-m0.TotalAlloc, uint64(64<<20), "allocation proportional to the trace")
				for _, p := range paths {
					for _, sh := range p.Shares {
						require.False(t, math.IsNaN(sh.Share) || sh.Share < 0 || sh.Share > 1, "share %v", sh)
					}
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the analysis does not finish")
			}
		})
	}
}
