package detect_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
)

// evalSnapshot builds a graph of n services and 5n sync edges through a real
// graph.Graph (mostly layered, some back calls, 5% of edges retrying), then
// gives every tenth service an entry operation with a critical path.
func evalSnapshot(b *testing.B, nodes int) *graph.Snapshot {
	b.Helper()
	edges := 5 * nodes
	rng := rand.New(rand.NewPCG(3, 4))
	name := func(i int) string { return "svc" + strconv.Itoa(i) }
	tr := newTraffic(b)
	seen := make(map[[2]int]bool, edges)
	for len(seen) < edges {
		i := rng.IntN(nodes)
		j := i + 1 + rng.IntN(min(300, nodes))
		if rng.IntN(50) == 0 {
			j = rng.IntN(nodes)
		}
		if j >= nodes || seen[[2]int{i, j}] {
			continue
		}
		seen[[2]int{i, j}] = true
		if len(seen)%20 == 0 {
			tr.call(name(i), name(j), 30, 10+rng.IntN(15))
		} else {
			tr.call(name(i), name(j), 1, 0)
		}
	}
	s := tr.snapshot(b)
	for i := 0; i < nodes; i += 10 {
		id := graph.NodeKey{Kind: graph.NodeService, Name: name(i)}.ID()
		next := graph.NodeKey{Kind: graph.NodeService, Name: name(min(i+1, nodes-1))}.ID()
		s.Paths = append(s.Paths, graph.EntryPath{Node: id, Operation: "GET /", Traces: 50, P50Ms: 40, P95Ms: 90,
			Shares: []graph.PathShare{{Node: next, SelfMs: 30, Share: 0.6}, {Node: id, SelfMs: 20, Share: 0.4}}})
	}
	return s
}

// BenchmarkEngineEval measures one evaluation tick of all four detectors
// (and the blast radius of whatever they find) on large graphs.
func BenchmarkEngineEval(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("services=%d/edges=%d", n, 5*n), func(b *testing.B) {
			s := evalSnapshot(b, n)
			e, err := detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{
				detect.NewRetryStorm(detect.RetryStormOptions{}),
				detect.NewOpenCircuit(detect.OpenCircuitOptions{}),
				detect.NewConsumerLag(detect.ConsumerLagOptions{}),
				detect.NewBottleneck(detect.BottleneckOptions{}),
			}, Now: func() time.Time { return time.Unix(0, 0) }})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			e.Eval(ctx, s) // learn baselines, fill histories
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.Eval(ctx, s)
			}
			b.ReportMetric(float64(len(e.Findings(0))), "findings")
		})
	}
}
