package coupling

import (
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/graph"
)

// csr is a directed graph over nodes [0, n) in compressed sparse row form:
// the successors of v are adj[off[v]:off[v+1]], ascending.
type csr struct {
	off []int32
	adj []int32
}

// newCSR returns the successor lists of g, whose node IDs are [0, n).
func newCSR(g graph.Directed, n int) csr {
	c := csr{off: make([]int32, n+1)}
	for v := range n {
		start := len(c.adj)
		for it := g.From(int64(v)); it.Next(); {
			c.adj = append(c.adj, int32(it.Node().ID()))
		}
		slices.Sort(c.adj[start:])
		c.off[v+1] = int32(len(c.adj))
	}
	return c
}

// betweennessParts is the number of fixed source partitions. Each partition
// accumulates into its own vector and the vectors are summed in partition
// order, so the floating-point result does not depend on GOMAXPROCS or on
// goroutine scheduling.
const betweennessParts = 16

// betweenness returns the raw (unnormalised) betweenness centrality of every
// node of the directed unweighted graph c, summed over ordered pairs of
// distinct other nodes. It is Brandes' algorithm, as in gonum's
// network.Betweenness, on slices instead of maps, with the sources spread
// over up to GOMAXPROCS goroutines.
func betweenness(c csr) []float64 {
	n := len(c.off) - 1
	parts := min(betweennessParts, n)
	acc := make([][]float64, parts)
	workers := min(runtime.GOMAXPROCS(0), parts)
	next := make(chan int, parts)
	for p := range parts {
		next <- p
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			b := newBrandes(n)
			for p := range next {
				cb := make([]float64, n)
				for s := p * n / parts; s < (p+1)*n/parts; s++ {
					b.source(c, int32(s), cb)
				}
				acc[p] = cb
			}
		})
	}
	wg.Wait()
	out := acc[0]
	for _, cb := range acc[1:] {
		for i, v := range cb {
			out[i] += v
		}
	}
	return out
}

// brandes holds the per-source scratch space of Brandes' algorithm.
type brandes struct {
	dist  []int32   // BFS depth from the source, -1 if unreached
	sigma []float64 // number of shortest paths from the source
	coef  []float64 // (1 + dependency of the source on the node) / sigma
	order []int32   // nodes in BFS order; reversed, the accumulation stack
}

func newBrandes(n int) *brandes {
	b := &brandes{
		dist:  make([]int32, n),
		sigma: make([]float64, n),
		coef:  make([]float64, n),
		order: make([]int32, 0, n),
	}
	for i := range b.dist {
		b.dist[i] = -1
	}
	return b
}

// source adds the dependencies of source s on every other node to cb and
// leaves the scratch space clean for the next source.
func (b *brandes) source(c csr, s int32, cb []float64) {
	b.order = append(b.order[:0], s)
	b.dist[s] = 0
	b.sigma[s] = 1
	for i := 0; i < len(b.order); i++ {
		v := b.order[i]
		dv := b.dist[v] + 1
		for _, w := range c.adj[c.off[v]:c.off[v+1]] {
			if b.dist[w] < 0 {
				b.dist[w] = dv
				b.order = append(b.order, w)
			}
			if b.dist[w] == dv {
				b.sigma[w] += b.sigma[v]
			}
		}
	}
	// Walking the BFS order backwards visits every node after all nodes it
	// precedes on a shortest path, so predecessor lists are not needed: a
	// node v pulls its dependency from its shortest-path successors w,
	//	delta[v] = sigma[v] * sum_w (1 + delta[w]) / sigma[w],
	// and keeps only the quotient, which is all its own predecessors need.
	for i := len(b.order) - 1; i >= 0; i-- {
		v := b.order[i]
		dv := b.dist[v] + 1
		var sum float64
		for _, w := range c.adj[c.off[v]:c.off[v+1]] {
			if b.dist[w] == dv {
				sum += b.coef[w]
			}
		}
		delta := b.sigma[v] * sum
		b.coef[v] = (1 + delta) / b.sigma[v]
		if v != s {
			cb[v] += delta
		}
	}
	for _, v := range b.order {
		b.dist[v] = -1
		b.sigma[v] = 0
	}
}
