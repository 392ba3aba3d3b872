package graph

import (
	"math"
	"slices"
	"strings"
	"time"
)

// DiffOptions set when an edge counts as changed between two graphs. Zero
// fields take the defaults.
type DiffOptions struct {
	// RateRatio: the rate changed when it grew or shrank by at least this
	// factor (default 1.5: +50% or -33%).
	RateRatio float64
	// ErrorRatioDelta: the error ratio changed when it moved by at least
	// this much, absolute (default 0.02: two percentage points).
	ErrorRatioDelta float64
	// P95Ratio: the p95 latency changed when it grew or shrank by at least
	// this factor (default 1.5).
	P95Ratio float64
	// MinRequests: edges with fewer requests on both sides are not judged
	// for changes (default 10), so a handful of calls does not flap.
	MinRequests uint64
}

func (o DiffOptions) withDefaults() DiffOptions {
	if !(o.RateRatio > 1) {
		o.RateRatio = 1.5
	}
	if !(o.ErrorRatioDelta > 0) {
		o.ErrorRatioDelta = 0.02
	}
	if !(o.P95Ratio > 1) {
		o.P95Ratio = 1.5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 10
	}
	return o
}

// Diff is what changed between the graph of one window and another's.
type Diff struct {
	From          time.Time    `json:"from"`
	To            time.Time    `json:"to"`
	WindowSeconds float64      `json:"window_seconds"`
	AddedNodes    []Node       `json:"added_nodes"`
	RemovedNodes  []Node       `json:"removed_nodes"`
	AddedEdges    []Edge       `json:"added_edges"`
	RemovedEdges  []Edge       `json:"removed_edges"`
	ChangedEdges  []EdgeChange `json:"changed_edges"`
}

// EdgeChange is an edge present in both graphs whose rate, error ratio or
// p95 moved beyond the DiffOptions.
type EdgeChange struct {
	ID         string  `json:"id"`
	Source     string  `json:"source"`
	Target     string  `json:"target"`
	Rate       Change  `json:"rate_per_s"`
	ErrorRatio Change  `json:"error_ratio"`
	P95        *Change `json:"p95_ms,omitempty"`
	// Changed lists which of rate_per_s, error_ratio, p95_ms moved beyond
	// the thresholds.
	Changed []string `json:"changed"`
}

// Change is a figure's value before and after.
type Change struct {
	From float64 `json:"from"`
	To   float64 `json:"to"`
}

// DiffSnapshots compares from (the earlier graph) with to.
func DiffSnapshots(from, to *Snapshot, o DiffOptions) Diff {
	o = o.withDefaults()
	d := Diff{From: from.GeneratedAt, To: to.GeneratedAt, WindowSeconds: to.WindowSeconds,
		AddedNodes: []Node{}, RemovedNodes: []Node{}, AddedEdges: []Edge{}, RemovedEdges: []Edge{}, ChangedEdges: []EdgeChange{}}
	for _, n := range to.Nodes {
		if _, ok := from.Node(n.ID); !ok {
			d.AddedNodes = append(d.AddedNodes, n)
		}
	}
	for _, n := range from.Nodes {
		if _, ok := to.Node(n.ID); !ok {
			d.RemovedNodes = append(d.RemovedNodes, n)
		}
	}
	before := make(map[string]*Edge, len(from.Edges))
	for i := range from.Edges {
		before[from.Edges[i].ID] = &from.Edges[i]
	}
	seen := make(map[string]bool, len(to.Edges))
	for i := range to.Edges {
		e := &to.Edges[i]
		seen[e.ID] = true
		b, ok := before[e.ID]
		if !ok {
			d.AddedEdges = append(d.AddedEdges, *e)
			continue
		}
		if c, ok := edgeChange(b, e, o); ok {
			d.ChangedEdges = append(d.ChangedEdges, c)
		}
	}
	for i := range from.Edges {
		if !seen[from.Edges[i].ID] {
			d.RemovedEdges = append(d.RemovedEdges, from.Edges[i])
		}
	}
	slices.SortFunc(d.ChangedEdges, func(a, b EdgeChange) int { return strings.Compare(a.ID, b.ID) })
	return d
}

func edgeChange(b, a *Edge, o DiffOptions) (EdgeChange, bool) {
	c := EdgeChange{ID: a.ID, Source: a.Source, Target: a.Target,
		Rate: Change{b.RatePerS, a.RatePerS}, ErrorRatio: Change{b.ErrorRatio, a.ErrorRatio}}
	if a.Requests < o.MinRequests && b.Requests < o.MinRequests {
		return c, false
	}
	if factor(b.RatePerS, a.RatePerS) >= o.RateRatio {
		c.Changed = append(c.Changed, "rate_per_s")
	}
	if math.Abs(a.ErrorRatio-b.ErrorRatio) >= o.ErrorRatioDelta {
		c.Changed = append(c.Changed, "error_ratio")
	}
	if b.Latency != nil && a.Latency != nil {
		c.P95 = &Change{b.Latency.P95, a.Latency.P95}
		if factor(b.Latency.P95, a.Latency.P95) >= o.P95Ratio {
			c.Changed = append(c.Changed, "p95_ms")
		}
	}
	return c, len(c.Changed) > 0
}

// factor is how many times larger the larger of x and y is (Inf when one
// is zero and the other not, 1 when both are zero).
func factor(x, y float64) float64 {
	lo, hi := min(x, y), max(x, y)
	switch {
	case hi == 0:
		return 1
	case lo <= 0:
		return math.Inf(1)
	}
	return hi / lo
}
