package incident

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// BenchmarkCorrelate is one tick of the tracker on a tree of n services
// (each calling three, each with a database) with a retry storm firing on
// every 50th edge: the cost the runner adds to every evaluation.
func BenchmarkCorrelate(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			sys := &system{rng: rand.New(rand.NewPCG(1, 1)), noise: true}
			sys.flows = append(sys.flows, flow{"c:client", "s:svc0", 100, 0.001, 20})
			for i := range n {
				for c := 3*i + 1; c <= 3*i+3 && c < n; c++ {
					sys.flows = append(sys.flows, flow{fmt.Sprintf("s:svc%d", i), fmt.Sprintf("s:svc%d", c), 10, 0.002, 10})
				}
				sys.flows = append(sys.flows, flow{fmt.Sprintf("s:svc%d", i), fmt.Sprintf("d:db%d", i), 10, 0.001, 2})
			}
			tr, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			snaps := make([]*graph.Snapshot, 4)
			for i := range snaps {
				at = at.Add(5 * time.Second)
				snaps[i] = sys.snapshot(at)
			}
			var fs []finding.Finding
			for i := 1; i < n; i += 50 {
				fs = append(fs, firing(finding.KindRetryStorm, at, fmt.Sprintf("s:svc%d", (i-1)/3), fmt.Sprintf("s:svc%d", i)))
			}
			now := at
			tr.o.Now = func() time.Time { return now }
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				now = now.Add(5 * time.Second)
				tr.Correlate(snaps[i%len(snaps)], fs)
			}
			b.ReportMetric(float64(len(tr.Incidents(0))), "incidents")
		})
	}
}
