package ui

import (
	"math"
	"sync"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
)

// point is one refresh's figures for a node or an edge; NaN where absent.
type point struct {
	T                   time.Time
	Rate, ErrorRatio    float64
	P50, P95, P99       float64
	OutRate             float64 // nodes: calls made
	LagMessages, LagSec float64
	DrainSec            float64
	// Edges only: the share of calls that were retries and the attempts
	// per original request (NaN where retries cannot be seen), and the
	// producer-to-consumer delay (NaN where there is none).
	RetryRatio, Attempts float64
	DelayP50, DelayP95   float64
}

// history keeps the recent figures of every node and edge, one point per
// refresh, for the charts of node and edge pages. It holds at most
// maxSeries series of at most points points each; series beyond are not
// kept and counted. Safe for concurrent use.
type history struct {
	mu        sync.Mutex
	points    int
	maxSeries int
	series    map[string]*ring
	dropped   uint64
}

type ring struct {
	p    []point
	next int
	full bool
	seen time.Time
}

func newHistory(points, maxSeries int) *history {
	return &history{points: points, maxSeries: maxSeries, series: map[string]*ring{}}
}

// record adds a snapshot's figures.
func (h *history) record(s *graph.Snapshot) {
	nan := math.NaN()
	byNode := map[string]*point{}
	nodePoint := func(id string) *point {
		p, ok := byNode[id]
		if !ok {
			p = &point{T: s.GeneratedAt, P50: nan, P95: nan, P99: nan, LagMessages: nan, LagSec: nan, DrainSec: nan,
				RetryRatio: nan, Attempts: nan, DelayP50: nan, DelayP95: nan}
			byNode[id] = p
		}
		return p
	}
	for _, n := range s.Nodes {
		nodePoint(n.ID)
	}
	errs := map[string]float64{}
	reqs := map[string]float64{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range s.Edges {
		p := point{T: s.GeneratedAt, Rate: e.RatePerS, ErrorRatio: e.ErrorRatio, P50: nan, P95: nan, P99: nan, LagMessages: nan, LagSec: nan, DrainSec: nan,
			RetryRatio: nan, Attempts: nan, DelayP50: nan, DelayP95: nan}
		if q := e.Latency; q != nil {
			p.P50, p.P95, p.P99 = q.P50, q.P95, q.P99
		}
		if e.RetriesSeen {
			p.RetryRatio = e.RetryRatio
			if e.Requests > e.Retries {
				p.Attempts = float64(e.Requests) / float64(e.Requests-e.Retries)
			}
		}
		if q := e.Delay; q != nil {
			p.DelayP50, p.DelayP95 = q.P50, q.P95
		}
		if l := e.Lag; l != nil {
			p.LagMessages, p.LagSec, p.DrainSec = orNaN(l.Messages), orNaN(l.Seconds), orNaN(l.DrainSeconds)
		}
		h.add("e:"+e.ID, p)
		in := nodePoint(e.Target)
		in.Rate += e.RatePerS
		reqs[e.Target] += float64(e.Requests)
		errs[e.Target] += float64(e.Errors)
		if q := e.Latency; q != nil && (math.IsNaN(in.P95) || q.P95 > in.P95) {
			in.P50, in.P95, in.P99 = q.P50, q.P95, q.P99
		}
		nodePoint(e.Source).OutRate += e.RatePerS
	}
	for id, p := range byNode {
		if reqs[id] > 0 {
			p.ErrorRatio = errs[id] / reqs[id]
		}
		h.add("n:"+id, *p)
	}
	// Forget series not seen for as long as a full ring spans.
	for k, r := range h.series {
		if s.GeneratedAt.Sub(r.seen) > 2*time.Hour {
			delete(h.series, k)
		}
	}
}

func orNaN(p *float64) float64 {
	if p == nil || math.IsInf(*p, 0) {
		return math.NaN()
	}
	return *p
}

func (h *history) add(key string, p point) {
	r, ok := h.series[key]
	if !ok {
		if len(h.series) >= h.maxSeries {
			h.dropped++
			return
		}
		r = &ring{p: make([]point, h.points)}
		h.series[key] = r
	}
	r.p[r.next] = p
	r.next = (r.next + 1) % len(r.p)
	if r.next == 0 {
		r.full = true
	}
	r.seen = p.T
}

// get returns a series' points since `since`, oldest first.
func (h *history) get(key string, since time.Time) []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.series[key]
	if !ok {
		return nil
	}
	var out []point
	n := r.next
	if r.full {
		n = len(r.p)
	}
	start := 0
	if r.full {
		start = r.next
	}
	for i := range n {
		p := r.p[(start+i)%len(r.p)]
		if !p.T.Before(since) {
			out = append(out, p)
		}
	}
	return out
}

func (h *history) size() (series int, dropped uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.series), h.dropped
}
