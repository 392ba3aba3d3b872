package layout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func chain(n int, clusters int) Graph {
	var g Graph
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		c := ""
		if clusters > 0 {
			c = fmt.Sprintf("ns%d", i%clusters)
		}
		g.Nodes = append(g.Nodes, Node{ID: fmt.Sprintf("service:%d", i), Width: 150, Height: 40, Cluster: c})
	}
	for i := 1; i < n; i++ {
		for _, from := range []int{rnd.IntN(i), rnd.IntN(i)} {
			g.Edges = append(g.Edges, Edge{ID: fmt.Sprintf("%d->%d#%d", from, i, len(g.Edges)), From: fmt.Sprintf("service:%d", from), To: fmt.Sprintf("service:%d", i), LabelWidth: 110, LabelHeight: 14})
		}
	}
	return g
}

func TestLayout(t *testing.T) {
	l, err := New(context.Background(), Options{MaxNodes: 100, MaxCached: 2})
	require.NoError(t, err)
	defer l.Close()

	g := chain(12, 3)
	r, err := l.Layout(context.Background(), g)
	require.NoError(t, err)
	require.Len(t, r.Nodes, 12)
	require.Len(t, r.Edges, len(g.Edges))
	require.Len(t, r.Clusters, 3)
	require.Positive(t, r.Took)
	for id, p := range r.Nodes {
		require.True(t, p.X > 0 && p.X < r.Width && p.Y > 0 && p.Y < r.Height, "node %s at %v outside %vx%v", id, p, r.Width, r.Height)
	}
	for id, e := range r.Edges {
		require.GreaterOrEqual(t, len(e.Points), 4, id)
		require.Equal(t, 0, (len(e.Points)-1)%3, "a B-spline has 3k+1 points: %s", id)
		require.NotNil(t, e.Tip, id)
	}
	// Callers are left of callees (rankdir LR).
	require.Less(t, r.Nodes["service:0"].X, r.Nodes["service:1"].X)
	// Each node lies inside its cluster's box.
	for _, n := range g.Nodes {
		c, p := r.Clusters[n.Cluster], r.Nodes[n.ID]
		require.True(t, p.X > c.X && p.X < c.X+c.W && p.Y > c.Y && p.Y < c.Y+c.H, "node %s outside cluster %s", n.ID, n.Cluster)
	}

	t.Run("same topology, same layout, from the cache", func(t *testing.T) {
		shuffled := g
		shuffled.Nodes = append([]Node(nil), g.Nodes...)
		shuffled.Nodes[0], shuffled.Nodes[5] = shuffled.Nodes[5], shuffled.Nodes[0]
		again, err := l.Layout(context.Background(), shuffled)
		require.NoError(t, err)
		require.Same(t, r, again)
	})
	t.Run("recomputed the same after eviction", func(t *testing.T) {
		for i := range 3 {
			_, err := l.Layout(context.Background(), chain(3+i, 0))
			require.NoError(t, err)
		}
		again, err := l.Layout(context.Background(), g)
		require.NoError(t, err)
		require.NotSame(t, r, again)
		require.Equal(t, r.Nodes, again.Nodes)
	})
	t.Run("too large", func(t *testing.T) {
		_, err := l.Layout(context.Background(), chain(101, 0))
		require.True(t, errors.Is(err, ErrTooLarge), "%v", err)
	})
	t.Run("edge to an unknown node", func(t *testing.T) {
		_, err := l.Layout(context.Background(), Graph{Nodes: []Node{{ID: "a", Width: 10, Height: 10}}, Edges: []Edge{{ID: "x", From: "a", To: "b"}}})
		require.Error(t, err)
	})
	t.Run("empty", func(t *testing.T) {
		r, err := l.Layout(context.Background(), Graph{})
		require.NoError(t, err)
		require.Empty(t, r.Nodes)
	})
}

// BenchmarkLayout measures an uncached layout (go test -bench Layout
// ./web/ui/layout/); figures are in BENCHMARKS.md.
func BenchmarkLayout(b *testing.B) {
	for _, n := range []int{50, 150, 300} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			l, err := New(context.Background(), Options{MaxCached: 1})
			require.NoError(b, err)
			defer l.Close()
			g := chain(n, n/20)
			for i := 0; b.Loop(); i++ {
				g.Nodes[0].Width = float64(150 + i%2) // defeat the cache
				if _, err := l.Layout(context.Background(), g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
