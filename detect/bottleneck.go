package detect

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Defaults of BottleneckOptions.
const (
	DefaultBottleneckMinShare      = 0.5
	DefaultBottleneckMinTraces     = 20
	DefaultBottleneckCriticalShare = 0.8
	DefaultSaturationFlat          = 0.1
	DefaultSaturationRise          = 0.5
	DefaultSaturationTicks         = 4
	DefaultSaturationMinRequests   = 20
	DefaultSaturationMinInFlight   = 1.0
	DefaultBottleneckMaxTracked    = 50_000
	DefaultBottleneckUsualMinutes  = 60
	DefaultBottleneckMinRiseMs     = 5
)

// usualMinTraces is how many traces a window that taught an entry's usual
// latency must have held before the entry is judged against it, at least.
const usualMinTraces = 5

// maxUsualStep bounds the time one evaluation teaches the usual latency:
// an entry back after a pause does not jump to its new value.
const maxUsualStep = time.Minute

// Evidence values of "kind": which rule made a node a bottleneck. A node
// both rules hold for is one observation of kind critical_path that also
// carries "saturation".
const (
	bottleneckCriticalPath = "critical_path"
	bottleneckSaturation   = "saturation"
)

// saturationExplained is the part of a node's latency rise that, when the
// calls it makes rose as much, means the node is waiting, not saturated.
const saturationExplained = 0.5

// BottleneckOptions configure a Bottleneck detector. Zero (or negative)
// fields take the defaults.
type BottleneckOptions struct {
	// MinShare (default 0.5) is the part of an entry operation's slowdown
	// (its mean end-to-end latency over its usual) that the rise of one
	// node's own time on its critical path must account for, that node
	// then being its bottleneck; the slowdown counts as at least
	// DegradedRatio-1 of the usual, so that a node must add at least
	// MinShare x (DegradedRatio-1) of the usual latency by itself. With
	// LatencyObjectiveMs, it is also the self-time share of the critical
	// path at or above which the node doing that work is the bottleneck of
	// an entry over the objective.
	MinShare float64 `yaml:"min_share"`
	// MinTraces is how many complete traces an entry operation needs in the
	// window before its critical path is judged (default 20).
	MinTraces int `yaml:"min_traces"`
	// CriticalShare is the node's self-time share of the critical path at
	// or above which the finding is critical rather than a warning
	// (default 0.8).
	CriticalShare float64 `yaml:"critical_share"`

	// Saturation, judged per node with incoming sync calls (a service by
	// its server-side latency, a database or external peer by its callers'
	// client-side latency) over the last SaturationTicks evaluations
	// (default 4): its incoming request rate stays within
	// SaturationFlat (default 0.1, ±10%) of its mean over them, while its
	// p95 latency and its in-flight concurrency (Little's law: rate x p50)
	// both rise by at least SaturationRise (default 0.5, +50%) from the
	// first to the last. A node whose outgoing calls slowed down by at
	// least half as much as it did is waiting on them, not saturated.
	SaturationFlat  float64 `yaml:"saturation_flat"`
	SaturationRise  float64 `yaml:"saturation_rise"`
	SaturationTicks int     `yaml:"saturation_ticks"`
	// SaturationMinRequests is how many requests a node needs in the window
	// at each of those evaluations to be judged (default 20).
	SaturationMinRequests uint64 `yaml:"saturation_min_requests"`
	// SaturationMinInFlight is the least in-flight concurrency (rate x
	// p50) a node must reach at the last of those evaluations (default 1).
	// A node with less than one request in flight is idle most of the
	// time: its queue cannot be what slows it. A tail that rises while the
	// median stays low (a noisy neighbour, a pause) keeps it under 1; a
	// queue for capacity raises the median and with it the concurrency
	// (a single worker at 60% utilisation already holds about one).
	SaturationMinInFlight float64 `yaml:"saturation_min_in_flight"`
	// MaxTracked bounds the nodes whose history is kept (default 50,000).
	MaxTracked int `yaml:"max_tracked"`
	// DegradedRatio: an entry operation is slow while its p95 end-to-end
	// latency over the window is at least this many times its usual
	// (default 1.5; the tail, which a single outlying request does not
	// move), and a node is its bottleneck only when its own time on the
	// path is also at least this many times its usual. Every path has a
	// node doing most of its work, and a node that always takes 300 ms is
	// that path's normal, not a fault: only a node whose own time rose
	// enough to make the requests slower than usual is paged (and, with
	// LatencyObjectiveMs, one that dominates the path of an entry over the
	// objective). The slowdown of the mean, unlike that of a percentile,
	// adds up exactly from the nodes' self times, so it is what is
	// attributed node by node.
	DegradedRatio float64 `yaml:"degraded_ratio"`
	// UsualMinutes is the horizon of an entry's usual latency and of each
	// node's usual self time on its path (default 60): exponential
	// averages over about that long of evaluations, learnt from the first
	// traces seen (an entry is judged once a window of at least 5 traces
	// taught it) and bounded by MaxTracked entries. Evaluations where the
	// entry is slow teach it four times more slowly, so an outage is not
	// learnt as usual while it lasts, but a permanent shift stops paging
	// after a few horizons (a 2.5x one after about 2.4). A gradual drift
	// within DegradedRatio over about UsualMinutes is followed and never
	// paged; a steeper one is (a tripling over an hour, after about 20
	// minutes).
	UsualMinutes float64 `yaml:"usual_minutes"`
	// MinRiseMs is the least rise of a node's own time per request that
	// makes it a bottleneck (default 5 ms): a fast path a millisecond
	// slower is no page, however large the ratio.
	MinRiseMs float64 `yaml:"min_rise_ms"`
	// LatencyObjectiveMs, when set, also makes the node doing at least
	// MinShare of the work on the critical path of an entry whose p95
	// exceeds it a bottleneck, usual latency or not (default 0: off).
	LatencyObjectiveMs float64 `yaml:"latency_objective_ms"`
	// Message is the template of the observations' summaries (text/template
	// syntax, see Messages; default "": the catalogue's).
	Message string `yaml:"message"`
}

// Validate reports an error wrapping ErrInvalidMessage when Message does
// not parse.
func (o BottleneckOptions) Validate() error {
	return validateMessage(finding.KindBottleneck, o.Message)
}

// bottleneckMessage is the data of a bottleneck summary template.
type bottleneckMessage struct {
	Node         string                  `doc:"the bottleneck node"`
	Severity     string                  `doc:"warning or critical"`
	Top          *bottleneckEntryMessage `doc:"the entry operation whose critical path the node dominates most; nil when the node is only saturated"`
	OtherEntries int                     `doc:"how many more entry operations' critical paths it dominates"`
	Saturation   *saturationMessage      `doc:"the node's saturation; nil when it is not saturated"`
}

// bottleneckEntryMessage is an entry operation in a bottleneckMessage.
type bottleneckEntryMessage struct {
	Entry       string  `doc:"the entry node's name"`
	Operation   string  `doc:"the entry operation"`
	Share       float64 `doc:"the node's self-time share of the critical path, 0 to 1"`
	SelfMs      float64 `doc:"the node's mean self time per trace, ms"`
	UsualSelfMs float64 `doc:"the node's usual self time per trace, ms"`
	Explained   float64 `doc:"the part of the entry's slowdown the rise of the node's self time accounts for, 0 to 1 (0: fired on the latency objective alone)"`
	MeanMs      float64 `doc:"the entry's end-to-end mean, ms"`
	UsualMeanMs float64 `doc:"the entry's usual mean, ms (0: fired on the latency objective alone)"`
	P95Ms       float64 `doc:"the entry's end-to-end p95, ms"`
	UsualP95Ms  float64 `doc:"the entry's usual p95, ms (0: none learnt yet)"`
	Slowdown    float64 `doc:"MeanMs / UsualMeanMs when the entry is slow, else 0"`
	Traces      int     `doc:"complete traces of the entry in the window"`
}

// saturationMessage is the saturation in a bottleneckMessage.
type saturationMessage struct {
	RatePerS        float64 `doc:"the mean incoming requests per second"`
	FromP95Ms       float64 `doc:"p95 at the first evaluation judged, ms"`
	ToP95Ms         float64 `doc:"p95 at the last, ms"`
	FromConcurrency float64 `doc:"in-flight requests at the first"`
	ToConcurrency   float64 `doc:"in-flight requests at the last"`
	Evaluations     int     `doc:"evaluations judged"`
}

func (o BottleneckOptions) withDefaults() BottleneckOptions {
	if !(o.MinShare > 0) {
		o.MinShare = DefaultBottleneckMinShare
	}
	if o.MinTraces <= 0 {
		o.MinTraces = DefaultBottleneckMinTraces
	}
	if !(o.CriticalShare > 0) {
		o.CriticalShare = DefaultBottleneckCriticalShare
	}
	if !(o.SaturationFlat > 0) {
		o.SaturationFlat = DefaultSaturationFlat
	}
	if !(o.SaturationRise > 0) {
		o.SaturationRise = DefaultSaturationRise
	}
	if o.SaturationTicks < 2 {
		o.SaturationTicks = DefaultSaturationTicks
	}
	if o.SaturationMinRequests == 0 {
		o.SaturationMinRequests = DefaultSaturationMinRequests
	}
	if !(o.SaturationMinInFlight > 0) {
		o.SaturationMinInFlight = DefaultSaturationMinInFlight
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = DefaultBottleneckMaxTracked
	}
	if !(o.DegradedRatio > 1) {
		o.DegradedRatio = DefaultBottleneckDegradedRatio
	}
	if !(o.UsualMinutes > 0) {
		o.UsualMinutes = DefaultBottleneckUsualMinutes
	}
	if !(o.MinRiseMs > 0) {
		o.MinRiseMs = DefaultBottleneckMinRiseMs
	}
	if o.LatencyObjectiveMs < 0 {
		o.LatencyObjectiveMs = 0
	}
	return o
}

// DefaultBottleneckDegradedRatio is the default of
// BottleneckOptions.DegradedRatio.
const DefaultBottleneckDegradedRatio = 1.5

// usual is what an entry operation's critical path usually looks like.
type usual struct {
	at     time.Time // the last evaluation that taught it
	learnt float64   // seconds of evidence, at most the horizon
	seen   int       // most traces in a window that taught it at full speed
	meanMs float64   // end-to-end mean
	p95Ms  float64   // end-to-end p95
	selfMs map[string]float64
	// riseMs is, by node, the rise of its self time over selfMs at the
	// last evaluation; jumpMs the largest growth of that rise from one
	// evaluation to the next that raised nothing, decaying by half every
	// four horizons: how far one outlying request (a pause now and then,
	// seen in a window of few traces) moves it. A gradual drift grows it
	// by little at a time and is not mistaken for noise.
	riseMs, jumpMs map[string]float64
}

// judged is what an evaluation makes of one entry operation.
type judged struct {
	slow   bool    // p95 at least DegradedRatio x usual
	meanMs float64 // this window's end-to-end mean
	u      *usual  // the usual before this window; nil: none yet
	mature bool    // u learnt from enough traces to judge against
	found  bool    // a node's rise makes it the bottleneck (see regression)
	e      entryFinding
}

// judge compares an entry's window with its usual, then teaches the usual
// the window: fully (a running average weighing windows of fewer than
// MinTraces traces less) until it has UsualMinutes of evidence, then as an
// exponential average over that horizon; four times more slowly while the
// entry is slow (or, before its usual is learnt from usualMinTraces
// traces, while a node's rise would make it the bottleneck), so that a
// fault is not learnt as usual.
func (d *Bottleneck) judge(key string, p *graph.EntryPath, at time.Time) judged {
	var mean float64
	for _, sh := range p.Shares {
		mean += sh.SelfMs
	}
	j := judged{meanMs: mean}
	u := d.usual[key]
	if u == nil {
		if len(d.usual) >= d.opts.MaxTracked {
			d.evictUsual()
		}
		d.usualOrder = append(d.usualOrder, key)
		u = &usual{at: at, meanMs: mean, p95Ms: p.P95Ms, selfMs: map[string]float64{}, riseMs: map[string]float64{}, jumpMs: map[string]float64{}}
		for _, sh := range p.Shares {
			u.selfMs[sh.Node] = sh.SelfMs
		}
		d.usual[key] = u
		return j
	}
	snap := *u
	snap.riseMs = maps.Clone(u.riseMs)
	j.u = &snap // as before this window
	j.mature = u.seen >= usualMinTraces && u.meanMs > 0
	j.slow = u.p95Ms > 0 && p.P95Ms >= d.opts.DegradedRatio*u.p95Ms
	j.e, j.found = d.regression(p, j)
	slowTeach := j.slow && j.mature || j.found && !j.mature
	dt := min(at.Sub(u.at), maxUsualStep).Seconds()
	if dt <= 0 {
		return j
	}
	u.at = at
	horizon := d.opts.UsualMinutes * 60
	raised := j.found && j.slow && j.mature
	decay := math.Exp2(-dt / (4 * horizon))
	for n, ms := range u.jumpMs {
		u.jumpMs[n] = ms * decay
	}
	clear(u.riseMs)
	for _, sh := range p.Shares {
		r := sh.SelfMs - u.selfMs[sh.Node]
		if jump := r - snap.riseMs[sh.Node]; !raised && jump > u.jumpMs[sh.Node] { // raised nothing: noise
			u.jumpMs[sh.Node] = jump
		}
		u.riseMs[sh.Node] = r
	}
	weight := min(1, float64(p.Traces)/float64(d.opts.MinTraces)) // windows of a few traces teach little
	var alpha float64
	if slowTeach {
		alpha = dt / (4 * horizon)
	} else {
		u.learnt = min(u.learnt+dt*weight, horizon)
		u.seen = max(u.seen, p.Traces)
		alpha = min(1, dt*weight/max(u.learnt, 1e-9))
	}
	if alpha <= 0 {
		return j
	}
	u.meanMs += alpha * (mean - u.meanMs)
	u.p95Ms += alpha * (p.P95Ms - u.p95Ms)
	seen := map[string]bool{}
	for _, sh := range p.Shares {
		seen[sh.Node] = true
		u.selfMs[sh.Node] += alpha * (sh.SelfMs - u.selfMs[sh.Node])
	}
	for n, ms := range u.selfMs {
		if !seen[n] {
			if ms *= 1 - alpha; ms < 1e-3 {
				delete(u.selfMs, n)
				delete(u.jumpMs, n)
			} else {
				u.selfMs[n] = ms
			}
		}
	}
	return j
}

// evictUsual forgets the entry learnt first.
func (d *Bottleneck) evictUsual() {
	if len(d.usualOrder) == 0 {
		return
	}
	delete(d.usual, d.usualOrder[0])
	d.usualOrder = d.usualOrder[1:]
}

// BottleneckEntry is one entry operation whose critical path a bottleneck
// node dominates, as listed in the "entries" evidence.
type BottleneckEntry struct {
	EntryNode string  `json:"entry_node"` // entry node id
	Operation string  `json:"operation"`
	Share     float64 `json:"share"`   // the node's self-time share of the path
	SelfMs    float64 `json:"self_ms"` // the node's mean self time per trace
	P95Ms     float64 `json:"p95_ms"`  // the entry's end-to-end p95
	// UsualP95Ms is the entry's learnt usual p95 (0: none, judged against
	// the latency objective).
	UsualP95Ms float64 `json:"usual_p95_ms,omitempty"`
	// MeanMs and UsualMeanMs are the entry's end-to-end mean latency and
	// its usual; UsualSelfMs the node's usual self time; Explained the part
	// of the slowdown (MeanMs - UsualMeanMs) the rise of the node's self
	// time accounts for. Zero when the node fired on the latency objective
	// alone.
	MeanMs      float64 `json:"mean_ms,omitempty"`
	UsualMeanMs float64 `json:"usual_mean_ms,omitempty"`
	UsualSelfMs float64 `json:"usual_self_ms,omitempty"`
	Explained   float64 `json:"explained,omitempty"`
	Traces      int     `json:"traces"`
}

// Bottleneck detects bottlenecks (SPEC.md "bottleneck"): nodes whose own
// work makes the requests entering through some operation slow
// (critical-path self time from graph.Snapshot.Paths: the node whose own
// time rose to make them slower than usual, or, over a latency objective,
// the node doing most of their work), or that are saturated (throughput
// flat while latency and in-flight concurrency rise). A node that always
// does most of the work is the path's normal, not a bottleneck. Callers
// that are slow only because they wait on such a node are not bottlenecks:
// self time excludes waiting, and a node whose outgoing calls slowed down
// with it is not judged saturated. It keeps a bounded history per node and
// per entry operation across evaluations (timed by the snapshots'
// GeneratedAt); Detect is called from one goroutine at a time.
type Bottleneck struct {
	opts  BottleneckOptions
	msg   summaryTemplate
	hist  map[string][]loadPoint // node id -> recent points, newest last
	order []string               // insertion order of hist, for eviction

	usual      map[string]*usual // entry -> its usual critical path
	usualOrder []string          // keys of usual, oldest first, for eviction
}

// loadPoint is a node's load at one evaluation.
type loadPoint struct {
	rate     float64 // incoming requests per second
	requests uint64  // incoming requests in the window
	samples  uint64  // latencies behind p50 and p95
	p50, p95 float64 // latency of the node's own answers, ms
	conc     float64 // in-flight requests: rate x p50
	down     float64 // largest p95 of the calls the node makes, ms
}

// NewBottleneck returns a Bottleneck detector configured by o; zero fields
// take the defaults. o.Message is parsed here: when it does not (see
// Validate) the summaries are the default's, marked as failed.
func NewBottleneck(o BottleneckOptions) *Bottleneck {
	return &Bottleneck{opts: o.withDefaults(), msg: newSummaryTemplate(finding.KindBottleneck, o.Message),
		hist: map[string][]loadPoint{}, usual: map[string]*usual{}}
}

// Options returns the options in force, defaults filled in.
func (d *Bottleneck) Options() BottleneckOptions { return d.opts }

// Kind returns KindBottleneck.
func (d *Bottleneck) Kind() finding.Kind { return finding.KindBottleneck }

// bottleneckHit gathers what makes one node a bottleneck.
type bottleneckHit struct {
	entries []BottleneckEntry
	sat     []loadPoint // the saturation history, when saturated
}

// Detect returns one observation per bottleneck node, ordered by node id.
// A node dominating the critical path of several entry operations is one
// observation listing them all; severity is critical when any share is at
// least CriticalShare. Detect does not modify s. When ctx is done it stops
// and returns nil.
func (d *Bottleneck) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	if s == nil || ctx.Err() != nil {
		return nil
	}
	hits := map[string]*bottleneckHit{}
	hit := func(id string) *bottleneckHit {
		h := hits[id]
		if h == nil {
			h = &bottleneckHit{}
			hits[id] = h
		}
		return h
	}
	for i := range s.Paths {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		p := &s.Paths[i]
		j := d.judge(p.Node+"\x00"+p.Operation, p, s.GeneratedAt) // learns from every window
		if p.Traces < d.opts.MinTraces {
			continue
		}
		if e, ok := d.entryBottleneck(p, j); ok {
			h := hit(e.node)
			h.entries = append(h.entries, e.BottleneckEntry)
		}
	}
	loads, ok := nodeLoads(ctx, s)
	if !ok {
		return nil
	}
	for id, pts := range d.track(loads) {
		hit(id).sat = pts
	}

	ids := make([]string, 0, len(hits))
	for id := range hits {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Observation, 0, len(ids))
	for _, id := range ids {
		var p95 *float64
		if l := loads[id]; l != nil && l.p95 != nil {
			p95 = l.p95
		}
		out = append(out, d.observe(s, id, hits[id], p95))
	}
	return out
}

// entryFinding is the bottleneck of one entry operation.
type entryFinding struct {
	node string
	BottleneckEntry
}

// entryBottleneck returns the bottleneck of entry p, if any: the node
// whose own time rose the most, when the entry is slow, that rise accounts
// for at least MinShare of the slowdown (counted as at least
// DegradedRatio-1 of the usual mean) and the node's own time is at least
// DegradedRatio times its usual (a node that always dominates and is
// somewhat slower for a while, as during a rolling restart, is not); else, when p's p95 exceeds the latency
// objective, the node doing the largest share of the work, when at least
// MinShare.
func (d *Bottleneck) entryBottleneck(p *graph.EntryPath, j judged) (entryFinding, bool) {
	if j.found && j.slow && j.mature {
		return j.e, true
	}
	if d.opts.LatencyObjectiveMs > 0 && p.P95Ms > d.opts.LatencyObjectiveMs {
		if top, ok := topShare(p.Shares); ok && top.Share >= d.opts.MinShare {
			e := BottleneckEntry{EntryNode: p.Node, Operation: p.Operation, Share: top.Share, SelfMs: top.SelfMs,
				P95Ms: p.P95Ms, Traces: p.Traces}
			if j.mature {
				e.UsualP95Ms = round4(j.u.p95Ms)
			}
			return entryFinding{node: top.Node, BottleneckEntry: e}, true
		}
	}
	return entryFinding{}, false
}

// noiseFactor is how many times the largest jump of its self time a node
// showed from one evaluation to the next without raising anything (its
// noise) a rise must be.
const noiseFactor = 2

// regression returns the node whose own time rose the most on p's path
// compared with the usual j.u, when that rise is at least MinRiseMs,
// accounts for at least MinShare
// of the slowdown (counted as at least DegradedRatio-1 of the usual mean),
// the node's own time is at least DegradedRatio times its usual, and the
// rise is at least noiseFactor times the largest jump the node showed
// while nothing was raised (a node whose own time jumps now and then, seen
// through few traces, needs more to be judged).
func (d *Bottleneck) regression(p *graph.EntryPath, j judged) (entryFinding, bool) {
	u := j.u
	var best graph.PathShare
	var rise float64
	for _, sh := range p.Shares {
		if r := sh.SelfMs - u.selfMs[sh.Node]; r > rise {
			best, rise = sh, r
		}
	}
	slowdown := j.meanMs - u.meanMs
	if !(rise > 0 && rise >= d.opts.MinRiseMs && rise >= d.opts.MinShare*max(slowdown, (d.opts.DegradedRatio-1)*u.meanMs) &&
		best.SelfMs >= d.opts.DegradedRatio*u.selfMs[best.Node] && rise >= noiseFactor*u.jumpMs[best.Node]) {
		return entryFinding{}, false
	}
	return entryFinding{node: best.Node, BottleneckEntry: BottleneckEntry{EntryNode: p.Node, Operation: p.Operation,
		Share: best.Share, SelfMs: best.SelfMs, P95Ms: p.P95Ms, UsualP95Ms: round4(u.p95Ms),
		MeanMs: round4(j.meanMs), UsualMeanMs: round4(u.meanMs), UsualSelfMs: round4(u.selfMs[best.Node]),
		Explained: round4(min(rise/max(slowdown, 1e-9), 1)), Traces: p.Traces}}, true
}

// topShare returns the largest share (the first on ties).
func topShare(shares []graph.PathShare) (graph.PathShare, bool) {
	if len(shares) == 0 {
		return graph.PathShare{}, false
	}
	top := shares[0]
	for _, sh := range shares[1:] {
		if sh.Share > top.Share {
			top = sh
		}
	}
	return top, true
}

func (d *Bottleneck) observe(s *graph.Snapshot, id string, h *bottleneckHit, p95 *float64) Observation {
	name := nodeLabel(s, id)
	o := Observation{
		Kind:     finding.KindBottleneck,
		Subject:  finding.Subject{Node: name, NodeID: id},
		Severity: finding.SeverityWarning,
		Evidence: map[string]any{},
	}
	if p95 != nil {
		o.Evidence["p95_ms"] = *p95
	}
	msg := bottleneckMessage{Node: name}
	if len(h.entries) > 0 {
		slices.SortFunc(h.entries, func(a, b BottleneckEntry) int {
			return cmp.Or(cmp.Compare(b.Share, a.Share), strings.Compare(a.EntryNode, b.EntryNode), strings.Compare(a.Operation, b.Operation))
		})
		top := h.entries[0]
		if top.Share >= d.opts.CriticalShare {
			o.Severity = finding.SeverityCritical
		}
		o.Evidence["kind"] = bottleneckCriticalPath
		o.Evidence["self_time_share"] = top.Share
		o.Evidence["entries"] = h.entries
		msg.Top = &bottleneckEntryMessage{Entry: nodeLabel(s, top.EntryNode), Operation: top.Operation, Share: top.Share,
			SelfMs: top.SelfMs, UsualSelfMs: top.UsualSelfMs, Explained: top.Explained, MeanMs: top.MeanMs,
			UsualMeanMs: top.UsualMeanMs, P95Ms: top.P95Ms, UsualP95Ms: top.UsualP95Ms, Traces: top.Traces}
		if top.UsualMeanMs > 0 {
			msg.Top.Slowdown = top.MeanMs / top.UsualMeanMs
		}
		msg.OtherEntries = len(h.entries) - 1
	} else {
		o.Evidence["kind"] = bottleneckSaturation
	}
	if pts := h.sat; len(pts) > 0 {
		first, last := pts[0], pts[len(pts)-1]
		var mean float64
		rates, p95s, concs := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
		for i, p := range pts {
			mean += p.rate / float64(len(pts))
			rates[i], p95s[i], concs[i] = round4(p.rate), round4(p.p95), round4(p.conc)
		}
		o.Evidence["saturation"] = map[string]any{
			"ticks":       len(pts),
			"rate_per_s":  rates,
			"p95_ms":      p95s,
			"concurrency": concs,
		}
		msg.Saturation = &saturationMessage{RatePerS: mean, FromP95Ms: first.p95, ToP95Ms: last.p95,
			FromConcurrency: first.conc, ToConcurrency: last.conc, Evaluations: len(pts)}
	}
	msg.Severity = o.Severity.String()
	o.Summary = d.msg.render(msg)
	return o
}

// nodeLabel returns the name of node id: from s when it has the node, else
// read from the id ("<kind>:<group>/<name>", parts escaped).
func nodeLabel(s *graph.Snapshot, id string) string {
	if n, ok := s.Node(id); ok && n.Name != "" {
		return n.Name
	}
	name := id
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return idUnescaper.Replace(name)
}

var idUnescaper = strings.NewReplacer("%2F", "/", "%25", "%")

// nodeLoad is what a snapshot says of the load on one node.
type nodeLoad struct {
	rate     float64
	requests uint64
	// samples is how many latencies the node's latency is made of (its
	// requests when no sketch says): a p95 of a handful of calls (the
	// pairs two independent samplers both kept) is no trend.
	samples uint64
	down    float64 // largest p95 of the node's outgoing sync calls

	// The latencies of the node's answers on its incoming sync edges:
	// server side, or client side for uninstrumented nodes.
	n        int              // edges with a latency
	one      *graph.Quantiles // the first of them
	noSketch bool             // some has no sketch: merging is not possible
	merged   *ddsketch.DDSketch
	maxP95   float64
	p50Sum   float64 // request-weighted
	weight   float64

	p50, p95 *float64 // the node's latency, set by nodeLoads
}

// edgeLatency returns the latency of the callee's answers on e.
func edgeLatency(e *graph.Edge) (*graph.Quantiles, *ddsketch.DDSketch) {
	if e.ServerLatency != nil {
		return e.ServerLatency, e.Stats.Server
	}
	return e.ClientLatency, e.Stats.Client
}

// nodeLoads gathers the load on every node with incoming sync calls: a
// node's latency is its one incoming edge's, or its incoming edges'
// sketches merged, or (when some edge has no sketch) the largest p95 and
// the request-weighted p50. It reports false when ctx was done first.
func nodeLoads(ctx context.Context, s *graph.Snapshot) (map[string]*nodeLoad, bool) {
	loads := map[string]*nodeLoad{}
	get := func(id string) *nodeLoad {
		l := loads[id]
		if l == nil {
			l = &nodeLoad{}
			loads[id] = l
		}
		return l
	}
	several := false
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil, false
		}
		e := &s.Edges[i]
		if e.Kind != graph.EdgeSync {
			continue
		}
		l := get(e.Target)
		l.rate += e.RatePerS
		// The minimum guards the sample size: calls seen, not estimated.
		l.requests += seenCalls(e)
		if q, sk := edgeLatency(e); q != nil {
			if sk != nil {
				l.samples += uint64(math.Round(sk.GetCount()))
			} else {
				l.samples += seenCalls(e)
			}
			if l.n++; l.n == 1 {
				l.one = q
			} else {
				several = true
			}
			l.noSketch = l.noSketch || sk == nil
			l.maxP95 = max(l.maxP95, q.P95)
			l.p50Sum += q.P50 * float64(e.Requests)
			l.weight += float64(e.Requests)
		}
		waited := e.ClientLatency
		if waited == nil {
			waited = e.Latency
		}
		if waited != nil {
			src := get(e.Source)
			src.down = max(src.down, waited.P95)
		}
	}
	for i := range s.Edges {
		if !several {
			break
		}
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil, false
		}
		e := &s.Edges[i]
		if e.Kind != graph.EdgeSync {
			continue
		}
		l := loads[e.Target]
		if l.n < 2 || l.noSketch {
			continue
		}
		if _, sk := edgeLatency(e); sk == nil {
			continue
		} else if l.merged == nil {
			l.merged = sk.Copy() // the snapshot's sketches are read-only
		} else if l.merged.MergeWith(sk) != nil {
			l.noSketch = true
		}
	}
	for _, l := range loads {
		l.finish()
	}
	return loads, true
}

// seenShare returns the share of e's calls actually seen: 1, or on an
// edge estimated from sampled traces its sample ratio. Minimum counts
// guard the sample size, so they count calls seen, not estimated.
func seenShare(e *graph.Edge) float64 {
	if e.Estimated && e.SampleRatio != nil && *e.SampleRatio > 0 {
		return *e.SampleRatio
	}
	return 1
}

// seenCalls returns the calls of e actually seen.
func seenCalls(e *graph.Edge) uint64 {
	return uint64(math.Round(float64(e.Requests) * seenShare(e)))
}

func (l *nodeLoad) finish() {
	switch {
	case l.n == 0:
		return
	case l.n == 1:
		l.p50, l.p95 = &l.one.P50, &l.one.P95
		return
	case !l.noSketch && l.merged != nil:
		if v, err := l.merged.GetValuesAtQuantiles([]float64{0.5, 0.95}); err == nil {
			p50, p95 := round4(v[0]), round4(v[1])
			l.p50, l.p95 = &p50, &p95
			return
		}
	}
	p50, p95 := l.one.P50, l.maxP95
	if l.weight > 0 {
		p50 = round4(l.p50Sum / l.weight)
	}
	l.p50, l.p95 = &p50, &p95
}

// track adds this evaluation's load of every node with latency to its
// history, forgets nodes not seen, and returns the histories of the nodes
// that are saturated.
func (d *Bottleneck) track(loads map[string]*nodeLoad) map[string][]loadPoint {
	n := d.opts.SaturationTicks
	sat := map[string][]loadPoint{}
	for id, l := range loads {
		if l.p95 == nil {
			continue
		}
		h, ok := d.hist[id]
		if !ok {
			if len(d.order) >= d.opts.MaxTracked {
				delete(d.hist, d.order[0])
				d.order = d.order[1:]
			}
			d.order = append(d.order, id)
		}
		h = append(h, loadPoint{rate: l.rate, requests: l.requests, samples: l.samples, p50: *l.p50, p95: *l.p95,
			conc: l.rate * *l.p50 / 1000, down: l.down})
		if len(h) > n {
			h = append(h[:0], h[len(h)-n:]...)
		}
		d.hist[id] = h
		if d.saturated(h) {
			sat[id] = slices.Clone(h)
		}
	}
	keep := d.order[:0]
	for _, id := range d.order {
		if l := loads[id]; l != nil && l.p95 != nil {
			keep = append(keep, id)
		} else {
			delete(d.hist, id)
		}
	}
	d.order = keep
	return sat
}

// saturated reports whether a full history shows saturation.
func (d *Bottleneck) saturated(h []loadPoint) bool {
	if len(h) < d.opts.SaturationTicks {
		return false
	}
	var mean float64
	for _, p := range h {
		if p.requests < d.opts.SaturationMinRequests || p.samples < d.opts.SaturationMinRequests {
			return false
		}
		mean += p.rate / float64(len(h))
	}
	if !(mean > 0) {
		return false
	}
	for _, p := range h {
		if p.rate < mean*(1-d.opts.SaturationFlat) || p.rate > mean*(1+d.opts.SaturationFlat) {
			return false // more (or less) load: latency follows it
		}
	}
	first, last := h[0], h[len(h)-1]
	rise := 1 + d.opts.SaturationRise
	if !(first.p95 > 0 && last.p95 >= first.p95*rise && first.conc > 0 && last.conc >= first.conc*rise && last.conc >= d.opts.SaturationMinInFlight) {
		return false
	}
	// Waiting on slower calls is not saturation: the callee is judged.
	return last.down-first.down < saturationExplained*(last.p95-first.p95)
}
