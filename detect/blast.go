package detect

import (
	"cmp"
	"math"
	"slices"

	"github.com/seed-a49a8342/cartograph/graph"
)

// BlastRadius says what a finding takes down: the nodes upstream of its
// subject whose traffic passes through it, with the share of their requests
// that do, and among them the entry points (nodes the outside world calls).
type BlastRadius struct {
	Upstream    []Affected `json:"upstream"`
	EntryPoints []Affected `json:"entry_points"`
	// Truncated is set when more upstream nodes were affected than listed.
	Truncated bool `json:"truncated,omitempty"`
}

// Affected is one node in a blast radius.
type Affected struct {
	Node   string  `json:"node"` // node name
	NodeID string  `json:"node_id"`
	Share  float64 `json:"share"` // estimated share of its requests that pass through the subject, in (0,1]
	Hops   int     `json:"hops"`
}

// maxAffected bounds the nodes listed in a blast radius.
const maxAffected = 25

// blaster computes blast radii on one snapshot: the reverse adjacency and
// incoming rates are built once per evaluation.
type blaster struct {
	s      *graph.Snapshot
	in     map[string][]*graph.Edge // target id -> edges into it
	inRate map[string]float64       // node id -> requests/s into it
	maxOut map[string]float64       // node id -> largest rate out of it
}

func newBlaster(s *graph.Snapshot) *blaster {
	b := &blaster{s: s, in: map[string][]*graph.Edge{}, inRate: map[string]float64{}, maxOut: map[string]float64{}}
	for i := range s.Edges {
		e := &s.Edges[i]
		b.in[e.Target] = append(b.in[e.Target], e)
		b.inRate[e.Target] += e.RatePerS
		b.maxOut[e.Source] = max(b.maxOut[e.Source], e.RatePerS)
	}
	return b
}

// fraction estimates the share of src's requests that make the call e:
// its rate over the rate of requests into src (or, for a node nothing
// calls, over its busiest outgoing edge), at most 1.
func (b *blaster) fraction(e *graph.Edge) float64 {
	den := b.inRate[e.Source]
	if den <= 0 {
		den = b.maxOut[e.Source]
	}
	if den <= 0 {
		return 1
	}
	return min(1, e.RatePerS/den)
}

// radius walks upstream from the subject: from an edge subject, its source
// is affected in proportion to how much of its traffic takes that edge; from
// a node, all of it. Shares compound along the way (max over paths).
func (b *blaster) radius(subj Subject) *BlastRadius {
	share := map[string]float64{}
	hops := map[string]int{}
	var start string
	switch {
	case subj.EdgeID != "":
		for i := range b.s.Edges {
			if e := &b.s.Edges[i]; e.ID == subj.EdgeID {
				start = e.Source
				share[start] = b.fraction(e)
				break
			}
		}
	case subj.NodeID != "":
		start = subj.NodeID
		share[start] = 1
	}
	if start == "" {
		return nil
	}
	// Bellman-Ford-like relaxation in breadth-first order: a node's share
	// can only grow, and each is bounded by 1, so this terminates; cap the
	// work for huge graphs.
	queue := []string{start}
	for steps := 0; len(queue) > 0 && steps < 200_000; steps++ {
		n := queue[0]
		queue = queue[1:]
		for _, e := range b.in[n] {
			sh := share[n] * b.fraction(e)
			if sh <= share[e.Source]+1e-9 || e.Source == start {
				continue
			}
			share[e.Source] = sh
			hops[e.Source] = hops[n] + 1
			queue = append(queue, e.Source)
		}
	}
	r := &BlastRadius{Upstream: []Affected{}, EntryPoints: []Affected{}}
	for id, sh := range share {
		if id == start && subj.NodeID != "" {
			continue // the subject itself
		}
		nd, ok := b.s.Node(id)
		if !ok || nd.Kind == graph.NodeClient {
			continue
		}
		a := Affected{Node: nd.Name, NodeID: id, Share: math.Round(sh*1e4) / 1e4, Hops: hops[id]}
		if id == start {
			a.Hops = 0
		}
		r.Upstream = append(r.Upstream, a)
		if b.isEntry(id) {
			r.EntryPoints = append(r.EntryPoints, a)
		}
	}
	order := func(a, b Affected) int {
		return cmp.Or(cmp.Compare(b.Share, a.Share), cmp.Compare(a.Hops, b.Hops), cmp.Compare(a.NodeID, b.NodeID))
	}
	slices.SortFunc(r.Upstream, order)
	slices.SortFunc(r.EntryPoints, order)
	if len(r.Upstream) > maxAffected {
		r.Upstream, r.Truncated = r.Upstream[:maxAffected], true
	}
	if len(r.EntryPoints) > maxAffected {
		r.EntryPoints, r.Truncated = r.EntryPoints[:maxAffected], true
	}
	return r
}

// isEntry reports whether the outside world calls id: nothing calls it, or
// the virtual client node does.
func (b *blaster) isEntry(id string) bool {
	in := b.in[id]
	if len(in) == 0 {
		return true
	}
	for _, e := range in {
		if nd, ok := b.s.Node(e.Source); ok && nd.Kind == graph.NodeClient {
			return true
		}
	}
	return false
}
