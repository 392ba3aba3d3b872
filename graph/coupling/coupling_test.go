package coupling

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/graph/network"
	"gonum.org/v1/gonum/graph/simple"
)

func syncCall(from, to int) Edge  { return Edge{From: from, To: to, Sync: true} }
func asyncCall(from, to int) Edge { return Edge{From: from, To: to} }

func TestCompute(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		// fan holds {FanIn, FanOut} per node; nil skips the check.
		fan         [][2]int
		instability []float64
		betweenness []float64
		cycles      [][]int
		chain       []int
	}{
		{
			name: "empty",
			in:   Input{},
		},
		{
			name:        "isolated nodes",
			in:          Input{Nodes: 3},
			fan:         [][2]int{{0, 0}, {0, 0}, {0, 0}},
			instability: []float64{0, 0, 0},
			betweenness: []float64{0, 0, 0},
		},
		{
			name:        "chain",
			in:          Input{Nodes: 3, Edges: []Edge{syncCall(0, 1), syncCall(1, 2)}},
			fan:         [][2]int{{0, 1}, {1, 1}, {1, 0}},
			instability: []float64{1, 0.5, 0},
			// Only the pair (0,2) of the (n-1)(n-2) = 2 ordered pairs
			// passes through 1.
			betweenness: []float64{0, 0.5, 0},
			chain:       []int{0, 1, 2},
		},
		{
			name: "parallel edges count once",
			in: Input{Nodes: 3, Edges: []Edge{
				syncCall(0, 1), syncCall(0, 1), asyncCall(0, 1), syncCall(1, 2), asyncCall(1, 2), syncCall(2, 1),
			}},
			fan:         [][2]int{{0, 1}, {2, 1}, {1, 1}},
			instability: []float64{1, 1.0 / 3, 0.5},
			cycles:      [][]int{{1, 2}},
			chain:       []int{0, 1},
		},
		{
			name: "cycles and self-loop",
			in: Input{Nodes: 8, Edges: []Edge{
				asyncCall(6, 0),
				asyncCall(3, 4), asyncCall(4, 2), asyncCall(2, 3), // 3-cycle, listed out of order
				asyncCall(1, 0), asyncCall(0, 1), // 2-cycle
				asyncCall(5, 5), // self-loop
				asyncCall(4, 7), // leaves the 3-cycle
			}},
			fan: [][2]int{{2, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 2}, {0, 0}, {0, 1}, {1, 0}},
			// A self-loop is no coupling: node 5 stays at 0.
			instability: []float64{1.0 / 3, 0.5, 0.5, 0.5, 2.0 / 3, 0, 1, 0},
			cycles:      [][]int{{0, 1}, {2, 3, 4}, {5}},
		},
		{
			name:        "async edges counted but not chained",
			in:          Input{Nodes: 4, Edges: []Edge{asyncCall(0, 1), syncCall(1, 2), asyncCall(2, 3)}},
			fan:         [][2]int{{0, 1}, {1, 1}, {1, 1}, {1, 0}},
			instability: []float64{1, 0.5, 0.5, 0},
			chain:       []int{1, 2},
		},
		{
			name:  "only async edges",
			in:    Input{Nodes: 3, Edges: []Edge{asyncCall(0, 1), asyncCall(1, 2)}},
			fan:   [][2]int{{0, 1}, {1, 1}, {1, 0}},
			chain: nil,
		},
		{
			name: "diamond tie-break",
			// Two diamonds 3->{2,1}->0 and a chain 4->5->6 all have two
			// edges; the lexicographically smallest sequence wins whatever
			// the edge order.
			in: Input{Nodes: 7, Edges: []Edge{
				syncCall(5, 6), syncCall(4, 5), syncCall(3, 2), syncCall(2, 0), syncCall(3, 1), syncCall(1, 0),
			}},
			fan: [][2]int{{2, 0}, {1, 1}, {1, 1}, {0, 2}, {0, 1}, {1, 1}, {1, 0}},
			// 1 and 2 each carry half of the shortest paths from 3 to 0;
			// 5 carries the pair (4,6). Normalised by 6*5 = 30.
			betweenness: []float64{0, 0.5 / 30, 0.5 / 30, 0, 0, 1.0 / 30, 0},
			chain:       []int{3, 1, 0},
		},
		{
			name: "sync cycle does not loop",
			// 1 and 2 form a sync cycle; its internal edges are dropped,
			// leaving 0->1 and 2->3.
			in:     Input{Nodes: 4, Edges: []Edge{syncCall(0, 1), syncCall(1, 2), syncCall(2, 1), syncCall(2, 3), syncCall(3, 3)}},
			cycles: [][]int{{1, 2}, {3}},
			chain:  []int{0, 1},
		},
		{
			name:   "sync cycle only",
			in:     Input{Nodes: 3, Edges: []Edge{syncCall(0, 1), syncCall(1, 2), syncCall(2, 0)}},
			cycles: [][]int{{0, 1, 2}},
			chain:  nil,
		},
		{
			name: "longest chain beats lower index",
			in: Input{Nodes: 6, Edges: []Edge{
				syncCall(0, 1), syncCall(2, 3), syncCall(3, 4), syncCall(4, 5),
			}},
			chain: []int{2, 3, 4, 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(tt.in)
			require.NoError(t, err)
			require.Len(t, got.Nodes, tt.in.Nodes)
			for i, f := range tt.fan {
				assert.Equal(t, f, [2]int{got.Nodes[i].FanIn, got.Nodes[i].FanOut}, "node %d fan in/out", i)
			}
			for i, want := range tt.instability {
				assert.InDelta(t, want, got.Nodes[i].Instability, delta, "node %d instability", i)
			}
			for i, want := range tt.betweenness {
				assert.InDelta(t, want, got.Nodes[i].Betweenness, delta, "node %d betweenness", i)
			}
			assert.Equal(t, tt.cycles, got.Cycles, "cycles")
			assert.Equal(t, tt.chain, got.LongestSyncChain, "longest sync chain")
			assert.False(t, got.BetweennessSkipped, "betweenness skipped")
		})
	}
}

func TestComputeInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want error
	}{
		{"negative nodes", Input{Nodes: -1}, ErrNegativeNodes},
		{"from too large", Input{Nodes: 2, Edges: []Edge{syncCall(0, 1), syncCall(2, 0)}}, ErrNodeOutOfRange},
		{"to negative", Input{Nodes: 2, Edges: []Edge{asyncCall(0, -1)}}, ErrNodeOutOfRange},
		{"edge without nodes", Input{Edges: []Edge{syncCall(0, 0)}}, ErrNodeOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compute(tt.in)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestComputeBetweennessLimit(t *testing.T) {
	chain := Input{Nodes: 3, Edges: []Edge{syncCall(0, 1), syncCall(1, 2)}}
	tests := []struct {
		name        string
		max         int
		wantSkipped bool
	}{
		{"default", 0, false},
		{"at limit", 3, false},
		{"over limit", 2, true},
		{"unbounded", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := chain
			in.MaxBetweennessNodes = tt.max
			got, err := Compute(in)
			require.NoError(t, err)
			require.Equal(t, tt.wantSkipped, got.BetweennessSkipped, "betweenness skipped")
			want := 0.5
			if tt.wantSkipped {
				want = 0
			}
			assert.InDelta(t, want, got.Nodes[1].Betweenness, delta, "betweenness of node 1")
			assert.Equal(t, 1, got.Nodes[1].FanIn, "fan-in of node 1")
			assert.Equal(t, []int{0, 1, 2}, got.LongestSyncChain, "longest sync chain")
		})
	}
}

// TestComputeDeterministic checks that repeated runs over a random graph with
// cycles give identical cycles and chains, and that the chain is a valid path
// over sync edges.
func TestComputeDeterministic(t *testing.T) {
	in := randomInput(500, 2500, 1)
	first, err := Compute(in)
	require.NoError(t, err)
	require.NotEmpty(t, first.Cycles, "generator produced no cycles")
	require.GreaterOrEqual(t, len(first.LongestSyncChain), 2, "generator produced no chain")
	syncEdge := make(map[[2]int]bool)
	for _, e := range in.Edges {
		if e.Sync {
			syncEdge[[2]int{e.From, e.To}] = true
		}
	}
	chain := first.LongestSyncChain
	seen := make(map[int]bool)
	for i, v := range chain {
		require.False(t, seen[v], "chain %v repeats node %d", chain, v)
		seen[v] = true
		if i > 0 {
			require.True(t, syncEdge[[2]int{chain[i-1], v}], "chain %v uses missing sync edge %d -> %d", chain, chain[i-1], v)
		}
	}
	for range 3 {
		again, err := Compute(in)
		require.NoError(t, err)
		// Exact equality, floats included.
		require.Equal(t, first, again)
	}
}

// BenchmarkCompute runs Compute with default options. Betweenness is
// computed at 1,000 and 2,000 nodes (DefaultMaxBetweennessNodes) and skipped
// at 10,000.
// TestBetweennessMatchesGonum checks the slice-based Brandes implementation
// against gonum's network.Betweenness on random graphs with cycles, parallel
// edges and self-loops.
func TestBetweennessMatchesGonum(t *testing.T) {
	for _, size := range []struct{ nodes, edges int }{{3, 4}, {20, 40}, {150, 600}, {300, 900}} {
		t.Run(fmt.Sprintf("nodes=%d/edges=%d", size.nodes, size.edges), func(t *testing.T) {
			in := randomInput(size.nodes, size.edges, uint64(size.nodes))
			in.Edges = append(in.Edges, in.Edges[0], Edge{From: 1, To: 1})
			in.MaxBetweennessNodes = -1
			got, err := Compute(in)
			require.NoError(t, err)
			g := simple.NewDirectedGraph()
			for i := range in.Nodes {
				g.AddNode(simple.Node(i))
			}
			for _, e := range in.Edges {
				if e.From != e.To {
					g.SetEdge(simple.Edge{F: simple.Node(e.From), T: simple.Node(e.To)})
				}
			}
			want := network.Betweenness(g)
			norm := float64(in.Nodes-1) * float64(in.Nodes-2)
			nonZero := 0
			for i, nd := range got.Nodes {
				w := want[int64(i)] / norm
				assert.InDelta(t, w, nd.Betweenness, delta, "node %d betweenness", i)
				assert.True(t, nd.Betweenness >= 0 && nd.Betweenness <= 1, "node %d betweenness %v outside [0,1]", i, nd.Betweenness)
				if w != 0 {
					nonZero++
				}
			}
			if size.nodes > 3 {
				require.Positive(t, nonZero, "no node has non-zero betweenness; the check is vacuous")
			}
		})
	}
}

func BenchmarkCompute(b *testing.B) {
	for _, size := range []struct{ nodes, edges int }{{1000, 5000}, {2000, 10000}, {10000, 50000}} {
		in := randomInput(size.nodes, size.edges, 42)
		b.Run(fmt.Sprintf("nodes=%d/edges=%d", size.nodes, size.edges), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compute(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// randomInput returns a mostly layered DAG of about 100 nodes per layer
// whose edges point one to three layers down, with 5% back edges to earlier
// layers and 80% sync edges, generated from seed.
func randomInput(nodes, edges int, seed uint64) Input {
	r := rand.New(rand.NewPCG(seed, seed))
	const perLayer = 100
	layers := max(1, (nodes+perLayer-1)/perLayer)
	layerOf := func(layer int) int { // random node of layer, clamped to the graph
		layer = min(max(layer, 0), layers-1)
		lo := layer * perLayer
		hi := min(lo+perLayer, nodes)
		return lo + r.IntN(hi-lo)
	}
	in := Input{Nodes: nodes, Edges: make([]Edge, 0, edges)}
	for range edges {
		from := r.IntN(nodes)
		l := from / perLayer
		var to int
		if r.IntN(100) < 5 {
			to = layerOf(l - 1 - r.IntN(3))
		} else {
			to = layerOf(l + 1 + r.IntN(3))
		}
		in.Edges = append(in.Edges, Edge{From: from, To: to, Sync: r.IntN(100) < 80})
	}
	return in
}

// delta is the tolerance for floating-point figures.
const delta = 1e-9
