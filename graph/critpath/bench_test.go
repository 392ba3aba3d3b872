package critpath_test

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// BenchmarkObserveSpans feeds batches of 100 five-span traces (new trace
// ids each batch) while the clock runs, so that traces complete and are
// analysed in steady state; ns/span is the cost per span handed in.
func BenchmarkObserveSpans(b *testing.B) {
	for _, oneIn := range []int{1, 10} {
		b.Run("sample1in"+strconv.Itoa(oneIn), func(b *testing.B) {
			s, c, _ := newSampler(b, critpath.Options{SampleOneIn: oneIn})
			var batch []graph.Span
			for i := range 100 {
				batch = append(batch, chain(uint64(i+1)).spans...)
			}
			var n uint64
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					if i%5 == 0 {
						n++
					}
					binary.BigEndian.PutUint64(batch[i].Trace[:8], n)
				}
				s.ObserveSpans(batch)
				c.advance(10 * time.Millisecond)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
		})
	}
}

// BenchmarkPaths merges a full window of 1,000 entry operations, each with
// a trace in every bucket.
func BenchmarkPaths(b *testing.B) {
	s, c, _ := newSampler(b, critpath.Options{MaxEntries: 2000})
	var n uint64
	for range 13 {
		for e := range 1000 {
			n++
			t := newTr(n)
			root := "svc" + strconv.Itoa(e%50)
			t.span(1, 0, graph.SpanServer, root, 0, 100).Operation = "GET /op" + strconv.Itoa(e)
			t.call(2, 1, root, "mid"+strconv.Itoa(e%7), 5, 95, 6, 94)
			t.call(4, 3, "mid"+strconv.Itoa(e%7), "leaf"+strconv.Itoa(e%11), 10, 90, 11, 89)
			s.ObserveSpans(t.spans)
		}
		c.advance(5 * time.Second)
		s.Paths(0)
	}
	if got := len(s.Paths(0)); got != 1000 {
		b.Fatalf("%d entries", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Paths(0)
	}
}

// BenchmarkObserveUnsampledSpans feeds batches of 500 spans of traces that
// are not sampled while traces are being assembled: what every span of an
// unsampled trace costs (a hash, and a look at the sampling level).
func BenchmarkObserveUnsampledSpans(b *testing.B) {
	s, _, _ := newSampler(b, critpath.Options{SampleOneIn: 1 << 62})
	var batch []graph.Span
	for i := range 1000 {
		t := chain(uint64(i + 1))
		if critpath.TraceHash(t.id)%(1<<62) == 0 {
			continue
		}
		batch = append(batch, t.spans...)
		if len(batch) >= 500 {
			break
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		s.ObserveSpans(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
}
