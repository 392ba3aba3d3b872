package layout

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/web/ui/layout/layouttest"
)

func boxOf(r Rect) layouttest.Box { return layouttest.Box{X: r.X, Y: r.Y, W: r.W, H: r.H} }

// problems returns what makes a layout unreadable: overlapping nodes,
// nodes outside their cluster's box or inside another's, edges without a
// route, anything outside the picture.
func problems(g Graph, r *Result) []string {
	var out []string
	picture := layouttest.Box{W: r.Width, H: r.Height}
	boxes := make([]layouttest.Box, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		p, ok := r.Nodes[n.ID]
		if !ok {
			out = append(out, "node "+n.ID+" not placed")
			continue
		}
		b := layouttest.Box{ID: n.ID, X: p.X - n.Width/2, Y: p.Y - n.Height/2, W: n.Width, H: n.Height}
		boxes = append(boxes, b)
		if !layouttest.Contains(picture, b) {
			out = append(out, fmt.Sprintf("%v outside the picture %.0fx%.0f", b, r.Width, r.Height))
		}
		for name, c := range r.Clusters {
			switch {
			case n.Cluster == name && !layouttest.Contains(boxOf(c), b):
				out = append(out, fmt.Sprintf("%v outside its cluster %s %v", b, name, c))
			case n.Cluster != name && layouttest.Overlap(boxOf(c), b):
				out = append(out, fmt.Sprintf("%v inside cluster %s %v", b, name, c))
			}
		}
	}
	for _, p := range layouttest.Overlaps(boxes) {
		out = append(out, fmt.Sprintf("%v overlaps %v", p[0], p[1]))
	}
	const labelOf = "label of "
	for _, e := range g.Edges {
		p := r.Edges[e.ID]
		if len(p.Points) == 0 {
			out = append(out, "edge "+e.ID+" not routed")
			continue
		}
		// The route joins its own ends: it starts on the source's border
		// and its arrow's tip touches the target.
		near := func(id string, q Point) bool {
			const slack = 3
			i := slices.IndexFunc(g.Nodes, func(n Node) bool { return n.ID == id })
			if i < 0 {
				return false
			}
			n, c := g.Nodes[i], r.Nodes[id]
			return math.Abs(q.X-c.X) <= n.Width/2+slack && math.Abs(q.Y-c.Y) <= n.Height/2+slack
		}
		if !near(e.From, p.Points[0]) {
			out = append(out, fmt.Sprintf("edge %s starts at %v, not at %s", e.ID, p.Points[0], e.From))
		}
		if p.Tip == nil || !near(e.To, *p.Tip) {
			out = append(out, fmt.Sprintf("edge %s ends at %v, not at %s", e.ID, p.Tip, e.To))
		}
		if e.LabelWidth > 0 && e.From != e.To {
			boxes = append(boxes, layouttest.Box{ID: labelOf + e.ID, X: p.Label.X - e.LabelWidth/2, Y: p.Label.Y - e.LabelHeight/2, W: e.LabelWidth, H: e.LabelHeight})
		}
	}
	// Labels: clear of every node and every other label.
	for _, p := range layouttest.Overlaps(boxes) {
		if strings.HasPrefix(p[0].ID, labelOf) || strings.HasPrefix(p[1].ID, labelOf) {
			out = append(out, fmt.Sprintf("%v overlaps %v", p[0], p[1]))
		}
	}
	return out
}

// services returns a graph shaped like a service map: clusters of nodes
// calling later nodes of their cluster, and calls between clusters, some
// of them back (cycles between clusters).
func services(n, clusters, cross int, seed uint64) Graph {
	rnd := rand.New(rand.NewPCG(seed, 3))
	var g Graph
	per := n / clusters
	id := func(c, i int) string { return fmt.Sprintf("service:c%d/s%d", c, i) }
	for c := range clusters {
		for i := range per {
			g.Nodes = append(g.Nodes, Node{ID: id(c, i), Width: 168, Height: 46, Cluster: fmt.Sprintf("c%d", c)})
			if i > 0 {
				from := id(c, rnd.IntN(i))
				g.Edges = append(g.Edges, Edge{ID: from + "->" + id(c, i), From: from, To: id(c, i), LabelWidth: 160, LabelHeight: 26})
			}
		}
	}
	for range cross {
		a, b := rnd.IntN(clusters), rnd.IntN(clusters-1)
		if b >= a {
			b++
		}
		from, to := id(a, rnd.IntN(per)), id(b, rnd.IntN(per))
		g.Edges = append(g.Edges, Edge{ID: from + "->" + to + fmt.Sprint("#", len(g.Edges)), From: from, To: to, LabelWidth: 160, LabelHeight: 26})
	}
	return g
}

// TestLayoutReadable lays out graphs of 100 and 300 nodes and checks the
// result is readable: no node overlaps another or leaves its cluster, every
// edge has a route, no label covers a node or another label.
func TestLayoutReadable(t *testing.T) {
	l, err := New(context.Background(), Options{MaxNodes: 300})
	require.NoError(t, err)
	defer l.Close()
	for _, c := range []struct {
		name string
		g    Graph
	}{
		{"100 nodes in 5 clusters, no cycles", chain(100, 5)},
		// Labelled edges between clusters in a cycle made dot rank the
		// clusters wrongly: 70 problems on this graph while dot placed
		// the labels itself (before label nodes).
		{"100 nodes in 4 clusters calling each other", services(100, 4, 30, 0)},
		{"300 nodes in 15 clusters, no cycles", chain(300, 15)},
		{"300 nodes in 6 clusters calling each other", services(300, 6, 90, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := l.Layout(context.Background(), c.g)
			require.NoError(t, err)
			require.Len(t, r.Nodes, len(c.g.Nodes))
			require.Empty(t, problems(c.g, r))
			for _, e := range c.g.Edges {
				require.NotZero(t, r.Edges[e.ID].Label, "edge %s has no label position", e.ID)
			}
		})
	}
}

// TestProblemsFound checks the checker: a layout with overlapping nodes, a
// node outside its cluster and an edge without a route fails it.
func TestProblemsFound(t *testing.T) {
	g := Graph{
		Nodes: []Node{
			{ID: "a", Width: 100, Height: 40, Cluster: "c"},
			{ID: "b", Width: 100, Height: 40, Cluster: "c"},
			{ID: "d", Width: 100, Height: 40},
			{ID: "e", Width: 100, Height: 40},
		},
		Edges: []Edge{{ID: "a->b", From: "a", To: "b"}, {ID: "d->e", From: "d", To: "e"}},
	}
	r := &Result{
		Width: 1000, Height: 1000,
		Nodes: map[string]Point{
			"a": {100, 100}, "b": {150, 130}, // overlap
			"d": {500, 100}, // inside cluster c, not of it
			"e": {600, 100}, // touches d: fine
		},
		Clusters: map[string]Rect{"c": {X: 40, Y: 70, W: 480, H: 90}},
		Edges:    map[string]EdgePath{"a->b": {Points: []Point{{100, 100}, {110, 110}, {140, 120}, {150, 130}}, Tip: &Point{120, 130}}},
	}
	p := problems(g, r)
	require.Len(t, p, 3, "%q", p)
	require.Contains(t, p[0], "d [450.0,80.0 100.0x40.0] inside cluster c")
	require.Contains(t, p[1], "overlaps")
	require.Equal(t, "edge d->e not routed", p[2])

	r.Clusters["c"] = Rect{X: 40, Y: 70, W: 200, H: 90}
	r.Nodes["b"] = Point{260, 100}
	r.Edges["a->b"] = EdgePath{Points: []Point{{150, 100}, {170, 100}, {190, 100}, {200, 100}}, Tip: &Point{210, 100}}
	p = problems(g, r)
	require.Len(t, p, 2, "%q", p)
	require.Contains(t, p[0], "b [210.0,80.0 100.0x40.0] outside its cluster c")

	// A label over a node.
	g.Edges[1].LabelWidth, g.Edges[1].LabelHeight = 60, 20
	r.Edges["d->e"] = EdgePath{Points: []Point{{500, 100}, {530, 100}, {570, 100}, {600, 100}}, Tip: &Point{550, 100}, Label: Point{560, 100}}
	p = problems(g, r)
	require.Len(t, p, 3, "%q", p)
	require.Equal(t, "d [450.0,80.0 100.0x40.0] overlaps label of d->e [530.0,90.0 60.0x20.0]", p[1])
	require.Equal(t, "label of d->e [530.0,90.0 60.0x20.0] overlaps e [550.0,80.0 100.0x40.0]", p[2])

	// An edge routed from the wrong node, to the wrong node.
	r.Edges["d->e"] = EdgePath{Points: []Point{{100, 100}, {101, 100}, {102, 100}, {103, 100}}, Tip: &Point{100, 100}, Label: Point{800, 800}}
	p = problems(g, r)
	require.Len(t, p, 3, "%q", p)
	require.Equal(t, "edge d->e starts at {100 100}, not at d", p[1])
	require.Equal(t, "edge d->e ends at &{100 100}, not at e", p[2])
}
