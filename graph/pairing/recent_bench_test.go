package pairing

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
)

// BenchmarkSeenRemember measures the span table alone at its full size
// (1M slots, the default bound) under the access pattern of ConsumeSpans:
// a batch of spans with random ids is touched first, then remembered, and
// each span then looks up its parent (the span before it in the batch).
// Each op is one span.
func BenchmarkSeenRemember(b *testing.B) {
	for _, slots := range []int{1 << 14, 1 << 18, 1 << 20} {
		b.Run(fmt.Sprint(slots), func(b *testing.B) { benchSeen(b, slots) })
	}
}

// benchSpan is what the span table is told of a span.
type benchSpan struct {
	Trace      TraceID
	ID, Parent SpanID
	Kind       Kind
}

func benchSeen(b *testing.B, slots int) {
	const batch = 500
	base := int64(1e18)
	r := newRecentSpans(slots, 22, base)
	for len(r.slots) < slots {
		r.grow()
	}
	spans := make([]benchSpan, batch)
	var x uint64 = 1
	fill := func() {
		for i := range spans {
			s := &spans[i]
			x = mix64(x + 0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(s.Trace[:8], x/uint64(8))
			binary.LittleEndian.PutUint64(s.Trace[8:], x/uint64(8))
			binary.LittleEndian.PutUint64(s.ID[:], mix64(x))
			s.Kind = KindServer
			if i > 0 {
				s.Parent = spans[i-1].ID
			}
		}
	}
	nowN := base
	b.ResetTimer()
	cpu0 := benchCPU()
	for n := 0; n < b.N; n += batch {
		b.StopTimer()
		fill()
		nowN += 1e6
		b.StartTimer()
		for i := range spans {
			r.touch(&spans[i].Trace, spans[i].ID)
		}
		for i := range spans {
			s := &spans[i]
			r.remember(&s.Trace, s.ID, s.Kind, int32(i&7), false, 0, nowN)
		}
		for i := range spans {
			if s := &spans[i]; !s.Parent.IsZero() {
				r.find(&s.Trace, s.Parent, 1)
			}
		}
	}
	b.ReportMetric(float64(benchCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// benchCPU returns the process's user and system CPU time in ns.
func benchCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
