package detect

import (
	"cmp"
	"container/heap"
	"math"
	"slices"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// maxAffected bounds the nodes listed in a blast radius.
const maxAffected = 25

// maxSettled bounds the nodes one upstream walk settles: the walk settles
// nodes in decreasing share, so the most affected come first and the bound
// only cuts the long tail (marked Truncated).
const maxSettled = 256

// blaster computes blast radii on one snapshot. The reverse adjacency,
// rates and entry flags are built once per evaluation, over node indices;
// upstream walks are memoised per start node. Not safe for concurrent use.
type blaster struct {
	s      *graph.Snapshot
	src    []int32   // edge -> source node index
	in     [][]int32 // node -> edges into it
	inRate []float64 // node -> requests/s into it
	maxOut []float64 // node -> largest rate out of it
	entry  []bool    // node -> the outside world calls it
	byID   map[string]int32
	memo   map[int32]upstreamResult

	// scratch of one walk
	best    []float64
	hops    []int32
	settled []bool
	touched []int32
}

// Blaster computes the blast radii of subjects on one snapshot, as the
// Engine does for its findings: what a problem on a node or an edge takes
// down upstream, and the share of each upstream node's requests that
// reaches it. Other judges of the same tick (detect/incident) weigh user
// impact with it, so that one package owns that estimate. Not safe for
// concurrent use; it must not outlive the snapshot's use.
type Blaster struct{ b *blaster }

// NewBlaster returns a Blaster on s, which it reads and does not modify.
func NewBlaster(s *graph.Snapshot) *Blaster { return &Blaster{b: newBlaster(s)} }

// Radius returns the blast radius of subj (its EdgeID or NodeID), nil when
// the subject is not on the snapshot.
func (b *Blaster) Radius(subj finding.Subject) *finding.BlastRadius { return b.b.radius(subj) }

func newBlaster(s *graph.Snapshot) *blaster {
	n := len(s.Nodes)
	b := &blaster{
		s: s, src: make([]int32, len(s.Edges)), in: make([][]int32, n),
		inRate: make([]float64, n), maxOut: make([]float64, n), entry: make([]bool, n),
		byID: make(map[string]int32, len(s.Edges)), memo: map[int32]upstreamResult{},
		best: make([]float64, n), hops: make([]int32, n), settled: make([]bool, n),
	}
	for i := range s.Edges {
		e := &s.Edges[i]
		si, _ := s.NodeIndex(e.Source)
		ti, _ := s.NodeIndex(e.Target)
		b.src[i] = int32(si)
		b.in[ti] = append(b.in[ti], int32(i))
		b.inRate[ti] += e.RatePerS
		b.maxOut[si] = max(b.maxOut[si], e.RatePerS)
		b.byID[e.ID] = int32(i)
		if s.Nodes[si].Kind == graph.NodeClient {
			b.entry[ti] = true
		}
	}
	for i := range b.in {
		if len(b.in[i]) == 0 {
			b.entry[i] = true
		}
	}
	return b
}

// fraction estimates the share of its source's requests that make the call
// e: its rate over the rate of requests into the source (or, for a node
// nothing calls, over its busiest outgoing edge), at most 1.
func (b *blaster) fraction(e int32) float64 {
	src := b.src[e]
	den := b.inRate[src]
	if den <= 0 {
		den = b.maxOut[src]
	}
	if den <= 0 {
		return 1
	}
	return min(1, b.s.Edges[e].RatePerS/den)
}

// radius walks upstream from the subject: from an edge subject, its source
// is affected in proportion to how much of its traffic takes that edge; from
// a node, all of it. Shares compound along the way; a node's share is the
// best over its paths.
func (b *blaster) radius(subj finding.Subject) *finding.BlastRadius {
	var (
		start int32
		scale = 1.0
	)
	switch {
	case subj.EdgeID != "":
		e, ok := b.byID[subj.EdgeID]
		if !ok {
			return nil
		}
		start, scale = b.src[e], b.fraction(e)
	case subj.NodeID != "":
		i, ok := b.s.NodeIndex(subj.NodeID)
		if !ok {
			return nil
		}
		start = int32(i)
	default:
		return nil
	}
	res := b.upstream(start)
	r := &finding.BlastRadius{Upstream: []finding.Affected{}, EntryPoints: []finding.Affected{}, Truncated: res.truncated}
	for _, u := range res.list {
		if u.node == start && subj.NodeID != "" {
			continue // the subject itself
		}
		nd := &b.s.Nodes[u.node]
		a := finding.Affected{Node: nd.Name, NodeID: nd.ID, Share: math.Round(u.share*scale*1e4) / 1e4, Hops: int(u.hops)}
		if len(r.Upstream) < maxAffected {
			r.Upstream = append(r.Upstream, a)
		} else {
			r.Truncated = true
		}
		if b.entry[u.node] && len(r.EntryPoints) < maxAffected {
			r.EntryPoints = append(r.EntryPoints, a)
		}
	}
	return r
}

type upstreamNode struct {
	node  int32
	share float64
	hops  int32
}

type upstreamResult struct {
	list      []upstreamNode
	truncated bool
}

// upstream returns the nodes upstream of start with the share of their
// traffic that reaches start (start itself at 1), most affected first: a
// Dijkstra walk on the product of shares (each at most 1, so a settled share
// is final), stopped after maxSettled nodes.
func (b *blaster) upstream(start int32) upstreamResult {
	if r, ok := b.memo[start]; ok {
		return r
	}
	defer func() {
		for _, i := range b.touched {
			b.best[i], b.hops[i], b.settled[i] = 0, 0, false
		}
		b.touched = b.touched[:0]
	}()
	b.best[start] = 1
	b.touched = append(b.touched, start)
	h := &shareHeap{{node: start, share: 1}}
	var r upstreamResult
	for h.Len() > 0 {
		it := heap.Pop(h).(upstreamNode)
		if b.settled[it.node] {
			continue
		}
		if len(r.list) >= maxSettled {
			r.truncated = true
			break
		}
		b.settled[it.node] = true
		if b.s.Nodes[it.node].Kind != graph.NodeClient {
			r.list = append(r.list, it)
		}
		for _, e := range b.in[it.node] {
			src := b.src[e]
			if b.settled[src] {
				continue
			}
			if sh := it.share * b.fraction(e); sh > b.best[src] {
				if b.best[src] == 0 {
					b.touched = append(b.touched, src)
				}
				b.best[src], b.hops[src] = sh, it.hops+1
				heap.Push(h, upstreamNode{node: src, share: sh, hops: it.hops + 1})
			}
		}
	}
	slices.SortStableFunc(r.list, func(x, y upstreamNode) int {
		return cmp.Or(cmp.Compare(y.share, x.share), cmp.Compare(x.hops, y.hops), cmp.Compare(b.s.Nodes[x.node].ID, b.s.Nodes[y.node].ID))
	})
	b.memo[start] = r
	return r
}

// shareHeap is a max-heap of shares.
type shareHeap []upstreamNode

func (h shareHeap) Len() int           { return len(h) }
func (h shareHeap) Less(i, j int) bool { return h[i].share > h[j].share }
func (h shareHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *shareHeap) Push(x any)        { *h = append(*h, x.(upstreamNode)) }
func (h *shareHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
