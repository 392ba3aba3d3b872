package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDiffSnapshots(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := func(n string) Node { return Node{ID: "service:" + n, Kind: NodeService, Name: n} }
	edge := func(src, dst string, req uint64, rate, errRatio, p95 float64) Edge {
		return Edge{ID: "service:" + src + "->service:" + dst + " http", Source: "service:" + src, Target: "service:" + dst, Kind: EdgeSync,
			Requests: req, RatePerS: rate, ErrorRatio: errRatio, Latency: &Quantiles{P50: p95 / 2, P95: p95, P99: p95}}
	}
	before := NewSnapshot(at, time.Hour, []Node{svc("a"), svc("b"), svc("c"), svc("old")}, []Edge{
		edge("a", "b", 1000, 10, 0.001, 50),
		edge("a", "c", 1000, 10, 0.001, 50),
		edge("b", "c", 3, 0.1, 0, 10), // too few calls to judge
		edge("a", "old", 100, 1, 0, 5),
	})
	after := NewSnapshot(at.Add(24*time.Hour), time.Hour, []Node{svc("a"), svc("b"), svc("c"), svc("new")}, []Edge{
		edge("a", "b", 1100, 11, 0.001, 52), // within thresholds
		edge("a", "c", 3000, 30, 0.05, 200), // tripled, errors up, 4x slower
		edge("b", "c", 9, 0.3, 0.5, 100),    // still too few calls
		edge("a", "new", 100, 1, 0, 5),
	})
	d := DiffSnapshots(before, after, DiffOptions{})
	require.Equal(t, []string{"service:new"}, ids(d.AddedNodes))
	require.Equal(t, []string{"service:old"}, ids(d.RemovedNodes))
	require.Len(t, d.AddedEdges, 1)
	require.Equal(t, "service:a->service:new http", d.AddedEdges[0].ID)
	require.Len(t, d.RemovedEdges, 1)
	require.Len(t, d.ChangedEdges, 1)
	c := d.ChangedEdges[0]
	require.Equal(t, "service:a->service:c http", c.ID)
	require.Equal(t, []string{"rate_per_s", "error_ratio", "p95_ms"}, c.Changed)
	require.Equal(t, Change{From: 10, To: 30}, c.Rate)
	require.Equal(t, &Change{From: 50, To: 200}, c.P95)
}

func ids(nodes []Node) []string {
	out := []string{}
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}
