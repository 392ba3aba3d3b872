package review_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// BenchmarkReview reviews a graph of 2,000 services (a 3-ary tree with
// cross calls) with 500 entry operations, each path 8 nodes deep, and a
// call pattern per edge: what GET /api/v1/review costs on a large system.
func BenchmarkReview(b *testing.B) {
	const n = 2000
	nodes := make([]graph.Node, n)
	for i := range nodes {
		nodes[i] = svc(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("s%d", i))
	}
	var edges []graph.Edge
	var cp calls
	for i := 1; i < n; i++ {
		p := (i - 1) / 3
		edges = append(edges, syncEdge(nodes[p], nodes[i], 6000, 6, 20))
		cp = append(cp, critpath.CallPattern{Caller: nodes[p].ID, Callee: nodes[i].ID, Operation: "GET", Parents: 100, Requests: 100, Calls: 100,
			PerParent: critpath.Dist{P50: 1, P95: 1, Min: 1, Max: 1, Mean: 1}})
		if i%7 == 0 && i+11 < n {
			edges = append(edges, syncEdge(nodes[i], nodes[i+11], 600, 0, 5))
		}
	}
	s := graph.NewSnapshot(time.Unix(0, 0), time.Minute, nodes, edges)
	for e := 0; e < 500; e++ {
		p := graph.EntryPath{Node: nodes[0].ID, Operation: fmt.Sprintf("GET /%d", e), Traces: 100, P50Ms: 10, P95Ms: 20}
		for k, i := 0, e%n; k < 8; k, i = k+1, 3*i+1+e%3 {
			if i >= n {
				break
			}
			p.Shares = append(p.Shares, graph.PathShare{Node: nodes[i].ID, Share: 0.1})
		}
		s.Paths = append(s.Paths, p)
	}
	r, err := review.New(review.Options{}, cp)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Review(s)
	}
}
