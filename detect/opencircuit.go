package detect

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// Defaults of OpenCircuitOptions.
const (
	DefaultCircuitMinCalls            = 5
	DefaultCircuitMinUnansweredRatio  = 0.5
	DefaultCircuitFastRatio           = 0.25
	DefaultCircuitFastAbsolute        = 10 * time.Millisecond
	DefaultCircuitHalfOpenMaxAnswered = 0.2
	DefaultCircuitMaxRemembered       = 50_000
	DefaultCircuitAttemptMin          = 500 * time.Microsecond
	DefaultCircuitMinRecentCalls      = 5
)

// Causes of an open circuit (evidence "cause").
const (
	// causeBreakerOpen: the caller fails its calls without trying to reach
	// the callee (a breaker reports open, the calls fail too fast to have
	// tried connecting, or the trial calls it lets through are answered).
	causeBreakerOpen = "breaker_open"
	// causeCalleeUnreachable: the caller tries and cannot reach the callee
	// (the callee answers no caller while others fail too, or the calls
	// fail in the time a refused connection takes).
	causeCalleeUnreachable = "callee_unreachable"
)

// Evidence values of "cause_basis": what the cause was told by.
const (
	basisBreakerMetric  = "breaker_metric"           // a breaker gauge reports open or half open
	basisErrorType      = "error_type"               // the calls' errors say refused or rejected
	basisProbesAnswered = "callee_answers_probes"    // the trickle that gets through is answered
	basisCalleeSilent   = "callee_answers_nobody"    // no caller is answered, others fail too
	basisAttempts       = "connection_attempts_fail" // failing in a connection attempt's time
	basisNoAttempt      = "no_connection_attempt"    // failing faster than any connection attempt
)

// Evidence values of "normal_from": where the normal latency an edge's
// unanswered calls are compared with came from.
const (
	normalFromWindow   = "window"   // answered calls in this snapshot
	normalFromHistory  = "history"  // answered calls in an earlier snapshot
	normalFromAbsolute = "absolute" // none known: FastAbsolute is the bound
)

// Evidence values of "state".
const (
	circuitStateOpen     = "open"
	circuitStateHalfOpen = "half_open"
)

// OpenCircuitOptions configure an OpenCircuit detector. Zero (or negative)
// fields take the defaults.
type OpenCircuitOptions struct {
	// MinCalls is how many unanswered calls an edge needs before it opens
	// (default 5): over the window, or over the recent buckets among all
	// the callee's callers when the calls try to connect and the callee
	// answers nobody. Calls failing without trying on an edge judged on
	// its recent buckets need one (see MinRecentCalls). An open edge stays
	// open on one.
	MinCalls uint64 `yaml:"min_calls"`
	// MinRecentCalls is how many calls an edge must make, at its rate over
	// the window, in the snapshot's recent buckets (graph.Recent, 10-15s at
	// the default 5s buckets) to be judged on them (default 5). There one
	// unanswered call failing without trying suffices when (almost) none is
	// answered: so busy an edge answers nothing for the whole span only by
	// a chance of e^-5 or less, and a healthy edge does not fail calls
	// faster than a connection attempt. An open circuit then fires within
	// the pair TTL and a few evaluations. Edges calling less often are
	// judged over the whole window, and fire about a window after the
	// circuit opens.
	MinRecentCalls float64 `yaml:"min_recent_calls"`
	// MinUnansweredRatio is the least share of an edge's calls that must go
	// unanswered (default 0.5). With the default HalfOpenMaxAnswered the
	// latter is the stricter bound; this one binds when that is raised.
	MinUnansweredRatio float64 `yaml:"min_unanswered_ratio"`
	// FastRatio is how fast, relative to the edge's normal latency, the
	// unanswered calls must fail: their p50 at most FastRatio x the normal
	// p50 (default 0.25).
	FastRatio float64 `yaml:"fast_ratio"`
	// FastAbsolute bounds the unanswered p50 when the edge's normal latency
	// is not known (default 10ms).
	FastAbsolute time.Duration `yaml:"fast_absolute"`
	// HalfOpenMaxAnswered is the share of calls reaching the callee below
	// which they are a half-open breaker's trial calls (default 0.2). At or
	// above it the edge fails partially, which is not a breaker: nothing
	// fires.
	HalfOpenMaxAnswered float64 `yaml:"half_open_max_answered"`
	// AttemptMin is the unanswered p50 from which the calls are taken to
	// have tried to connect (a refused connection takes a network round
	// trip, about 1 ms); faster ones were failed by the caller without
	// trying (default 0.5ms). It tells a callee that is unreachable from a
	// caller's breaker when nothing else does (see Detect).
	AttemptMin time.Duration `yaml:"attempt_min"`
	// MaxRemembered bounds the edges whose last answered latency is kept
	// across snapshots (default 50,000); beyond it the edges seen least
	// recently are forgotten.
	MaxRemembered int `yaml:"max_remembered"`
	// Message is the template of the observations' summaries (text/template
	// syntax, see Messages; default "": the catalogue's).
	Message string `yaml:"message"`
}

// Validate reports an error wrapping ErrInvalidMessage when Message does
// not parse.
func (o OpenCircuitOptions) Validate() error {
	return validateMessage(finding.KindOpenCircuit, o.Message)
}

// openCircuitMessage is the data of an open_circuit summary template.
type openCircuitMessage struct {
	Source          string          `doc:"the caller (the breaker's service when no edge matched it)"`
	Target          string          `doc:"the callee (the breaker's name when no edge matched it)"`
	State           string          `doc:"open or half_open"`
	Severity        string          `doc:"warning or critical"`
	Window          string          `doc:"the window's length: 60s, 5m"`
	FromTraces      bool            `doc:"traces show the calls failing fast without reaching the callee (else only a breaker reports)"`
	Cause           string          `doc:"breaker_open (the caller fails its calls without trying) or callee_unreachable (it tries and cannot reach the callee)"`
	CauseReason     string          `doc:"what tells the cause, in words"`
	Span            string          `doc:"how far back the call counts go: the recent buckets (10s) for a busy edge, else the window"`
	Requests        uint64          `doc:"calls on the edge in the span (the window when only a breaker reports; 0 when no edge matched the breaker)"`
	Unanswered      uint64          `doc:"calls no server span answered"`
	Answered        uint64          `doc:"calls that reached the callee"`
	UnansweredP50Ms float64         `doc:"p50 latency of the unanswered calls, ms"`
	NormalP50Ms     float64         `doc:"the edge's normal p50, ms (0 when unknown)"`
	NormalFrom      string          `doc:"where the normal p50 comes from: window, history or absolute (none known)"`
	FastBoundMs     float64         `doc:"the p50 at or below which unanswered calls fail fast, ms"`
	Breaker         *breakerMessage `doc:"the circuit breaker reported as metrics; nil when none"`
}

// breakerMessage is a circuit breaker in an openCircuitMessage.
type breakerMessage struct {
	Name  string `doc:"the breaker's name (Envoy cluster, resilience4j instance)"`
	State string `doc:"open, forced_open or half_open"`
}

func (o OpenCircuitOptions) withDefaults() OpenCircuitOptions {
	if o.MinCalls == 0 {
		o.MinCalls = DefaultCircuitMinCalls
	}
	if !(o.MinUnansweredRatio > 0) {
		o.MinUnansweredRatio = DefaultCircuitMinUnansweredRatio
	}
	if !(o.FastRatio > 0) {
		o.FastRatio = DefaultCircuitFastRatio
	}
	if o.FastAbsolute <= 0 {
		o.FastAbsolute = DefaultCircuitFastAbsolute
	}
	if !(o.HalfOpenMaxAnswered > 0) {
		o.HalfOpenMaxAnswered = DefaultCircuitHalfOpenMaxAnswered
	}
	if o.MaxRemembered <= 0 {
		o.MaxRemembered = DefaultCircuitMaxRemembered
	}
	if o.AttemptMin <= 0 {
		o.AttemptMin = DefaultCircuitAttemptMin
	}
	if !(o.MinRecentCalls > 0) {
		o.MinRecentCalls = DefaultCircuitMinRecentCalls
	}
	return o
}

// OpenCircuit detects open circuits (SPEC.md "open_circuit"): callers that
// stop calling a callee and fail fast. It judges two signals and reports one
// observation per edge when either points at it:
//
//   - traces: a sync edge whose calls mostly never reach the callee
//     (no server span answered them) and fail, much faster than the edge
//     normally answers. Calls that time out slowly against a dead callee
//     are an outage, not an open circuit, and do not count. The normal
//     latency is the edge's answered client-side p50 in the window when
//     MinCalls answered calls make it, else the last such one remembered
//     from an earlier snapshot, else that of the few answered calls in the
//     window, else unknown (FastAbsolute bounds the failures instead).
//   - metrics: a circuit breaker (graph.Snapshot.Circuits) reported open,
//     forced open or half open and not stale, joined to the edge from its
//     service to the callee it names (see matchesBreaker). A breaker no edge
//     matches is still reported, on the synthetic edge id
//     "circuit:<service>/<name>" ('/' and '%' in either part escaped as
//     %2F and %25) so that it stays a finding of its own.
//
// An edge is judged on the snapshot's recent buckets (graph.Edge.Recent)
// when it calls often enough to fill them (MinRecentCalls), so that an
// open circuit is seen a pair TTL after it opens (the time an unanswered
// call takes to be known) rather than once its failures fill the window;
// other edges, and snapshots without recent figures, are judged over the
// window. Once open, an edge stays open while its recent calls still fail
// unanswered (one suffices) or it makes none, and resolves once calls reach
// the callee again (and a breaker that reports closes).
//
// An OpenCircuit keeps state across snapshots (remembered latencies and
// open edges), so one detector must be used for one graph.
type OpenCircuit struct {
	opts OpenCircuitOptions
	msg  summaryTemplate
	// mem is what is remembered per edge id.
	mem  map[string]*edgeMemory
	tick uint64
}

// edgeMemory is an edge's last answered client-side p50, the evaluation
// at which the edge was last seen, and its trace condition at the last
// evaluation.
type edgeMemory struct {
	p50  float64 // ms; 0: none seen yet
	seen uint64
	open *traceCircuit // nil: not open
}

// NewOpenCircuit returns an OpenCircuit detector configured by o; zero
// fields take the defaults. o.Message is parsed here: when it does not (see
// Validate) the summaries are the default's, marked as failed.
func NewOpenCircuit(o OpenCircuitOptions) *OpenCircuit {
	return &OpenCircuit{opts: o.withDefaults(), msg: newSummaryTemplate(finding.KindOpenCircuit, o.Message), mem: map[string]*edgeMemory{}}
}

// Options returns the options in force, defaults filled in.
func (d *OpenCircuit) Options() OpenCircuitOptions { return d.opts }

// Kind returns KindOpenCircuit.
func (d *OpenCircuit) Kind() finding.Kind { return finding.KindOpenCircuit }

// circuitHit is what holds for one edge (edge < 0: a breaker no edge
// matched).
type circuitHit struct {
	edge    int
	trace   *traceCircuit
	breaker *resilience.Circuit
}

// traceCircuit is the trace-based condition on one edge, over the span it
// was judged on.
type traceCircuit struct {
	state         string // circuitStateOpen or circuitStateHalfOpen
	spanSeconds   float64
	requests      uint64
	unanswered    uint64
	answered      uint64
	ratio         float64 // unanswered / requests
	unansweredP50 float64 // ms
	normal, bound float64 // ms; normal 0 when from is normalFromAbsolute
	from          string
	// What the callee did over the same span: calls it answered from any
	// caller, and the other callers whose calls to it fail unanswered.
	calleeAnswered uint64
	othersFailing  int
	// The unanswered calls whose errors say they were refused connecting,
	// or rejected by the caller without trying.
	refused, rejected uint64
	cause, basis      string
}

// callFigures are an edge's call counts over the span it is judged on.
type callFigures struct {
	requests, errors, unanswered uint64
	refused, rejected            uint64
	unansweredP50                float64 // ms; 0 when none
}

// figures returns e's counts over s's recent buckets when recent, else over
// the window.
func figures(e *graph.Edge, recent bool) callFigures {
	if !recent {
		f := callFigures{requests: e.Requests, errors: e.Errors, unanswered: min(e.Unanswered, e.Requests), refused: e.Stats.Refused, rejected: e.Stats.Rejected}
		if e.UnansweredLatency != nil {
			f.unansweredP50 = e.UnansweredLatency.P50
		}
		return f
	}
	r := e.Recent
	if r == nil {
		return callFigures{}
	}
	f := callFigures{requests: r.Requests, errors: r.Errors, unanswered: min(r.Unanswered, r.Requests), refused: r.Refused, rejected: r.Rejected}
	if r.UnansweredLatency != nil {
		f.unansweredP50 = r.UnansweredLatency.P50
	}
	return f
}

// calleeFigures are what a callee did over a span: the calls it answered,
// from any caller, and the edges into it whose calls failed unanswered.
type calleeFigures struct {
	answered   uint64
	unanswered uint64 // of the failing edges
	failing    int
}

// failingUnanswered reports whether f holds failed calls no server span
// answered.
func (f callFigures) failingUnanswered() bool { return f.unanswered > 0 && f.errors > 0 }

// Detect returns one observation per edge of s whose circuit is open or half
// open, seen in traces, in breaker metrics, or both, ordered by edge id.
// The circuit is open when no call of the judged span reached the callee or
// a breaker reports open or forced open (either suffices when both speak),
// else half open: a trickle of calls (under HalfOpenMaxAnswered) got
// through, or a breaker reports half open.
//
// The cause is breaker_open (the caller fails its calls without trying)
// or callee_unreachable (it tries and cannot reach the callee), told by the
// first of: a breaker reporting for the edge (breaker_open); the calls'
// errors, when at least half of the unanswered ones say why
// (graph.Stats.Refused: callee_unreachable, Rejected: breaker_open, the
// more of the two); the trickle of calls that gets through being answered
// (breaker_open: the callee is up); the callee answering no caller over
// the span while other callers' calls to it fail too (callee_unreachable);
// the unanswered p50 at or above AttemptMin, the time a refused connection
// takes (callee_unreachable); else the calls fail faster than any attempt
// would (breaker_open).
//
// Evidence: "state" (open, half_open); from traces "unanswered",
// "requests", "answered", "unanswered_ratio", "unanswered_p50_ms",
// "normal_p50_ms" (omitted when unknown), "normal_from" (window, history,
// absolute) and "fast_bound_ms"; from metrics "breaker" (name, state,
// source "metrics", updated_at, and open_instances of instances: how many
// of the service's instances report it open), with the edge's "requests", "unanswered"
// and "answered" when an edge matched.
//
// Calls that try to connect and fail while the callee answers some calls
// (a replica restarting) are a partial outage, not an open circuit: over
// the recent buckets they need MinCalls among all the callee's callers
// with none answered, else the window judges, where they do not open an
// edge some of whose calls are answered; an edge they opened closes once
// the callee answers a call. Severity is critical when open and a warning
// when half open.
//
// Evidence: "state" (open, half_open), "cause", "cause_basis"; from traces
// "unanswered", "requests", "answered", "unanswered_ratio",
// "unanswered_p50_ms" over the span judged, "span_seconds",
// "callee_answered" and "other_callers_failing" over the same span,
// "refused" and "rejected" (when errors say so), "normal_p50_ms"
// (omitted when unknown), "normal_from" (window, history, absolute) and
// "fast_bound_ms"; from metrics "breaker" (name, state, source "metrics",
// updated_at), with the edge's window "requests", "unanswered" and
// "answered" when an edge matched and traces do not speak.
//
// Detect does not modify s; it remembers each edge's answered latency and
// whether it is open for later snapshots. When ctx is done it stops and
// returns nil.
func (d *OpenCircuit) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	if s == nil || ctx.Err() != nil {
		return nil
	}
	d.tick++
	defer d.evict()

	recent := s.RecentSeconds > 0
	callees := map[string]*[2]calleeFigures{} // target id -> over the recent buckets, over the window
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		e := &s.Edges[i]
		if e.Kind != graph.EdgeSync {
			continue
		}
		c := callees[e.Target]
		if c == nil {
			c = &[2]calleeFigures{}
			callees[e.Target] = c
		}
		for k, fig := range [2]callFigures{figures(e, recent), figures(e, false)} {
			c[k].answered += fig.requests - fig.unanswered
			if fig.failingUnanswered() {
				c[k].failing++
				c[k].unanswered += fig.unanswered
			}
		}
	}

	var hits []circuitHit
	byEdge := map[int]int{} // edge index -> hits index
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		e := &s.Edges[i]
		if e.Kind != graph.EdgeSync {
			continue
		}
		m, remembered := d.remember(e)
		tc := d.judge(s, e, remembered, m.open, callees[e.Target])
		m.open = tc
		if tc != nil {
			byEdge[i] = len(hits)
			hits = append(hits, circuitHit{edge: i, trace: tc})
		}
	}

	bySource, ok := d.breakerCandidates(ctx, s)
	if !ok {
		return nil
	}
	for i := range s.Circuits {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		c := &s.Circuits[i]
		if !breakerTripped(c) {
			continue
		}
		ei := bestEdge(s, bySource[c.Service], c.Name)
		if ei < 0 {
			hits = append(hits, circuitHit{edge: -1, breaker: c})
			continue
		}
		hi, ok := byEdge[ei]
		if !ok {
			byEdge[ei] = len(hits)
			hits = append(hits, circuitHit{edge: ei, breaker: c})
			continue
		}
		// Two breakers on one edge: the more open one speaks; on a tie the
		// first by key (s.Circuits is sorted).
		if h := &hits[hi]; h.breaker == nil || (c.State.IsOpen() && !h.breaker.State.IsOpen()) {
			h.breaker = c
		}
	}

	out := make([]Observation, 0, len(hits))
	for i := range hits {
		out = append(out, d.observe(s, &hits[i]))
	}
	slices.SortFunc(out, func(a, b Observation) int { return strings.Compare(a.Subject.EdgeID, b.Subject.EdgeID) })
	return out
}

// remember notes that e was seen, and its answered latency when it has
// one; it returns e's memory and the latency remembered from before (0:
// none).
func (d *OpenCircuit) remember(e *graph.Edge) (*edgeMemory, float64) {
	m := d.mem[e.ID]
	if m == nil {
		m = &edgeMemory{}
		d.mem[e.ID] = m
	}
	prev := m.p50
	m.seen = d.tick
	if p50, ok := d.windowNormal(e); ok {
		m.p50 = p50
	}
	return m, prev
}

// windowNormal returns e's answered client-side p50 over the window, when
// at least MinCalls answered calls make it: the last few of an edge whose
// calls stopped reaching the callee are too few to say what is normal.
func (d *OpenCircuit) windowNormal(e *graph.Edge) (float64, bool) {
	if e.ClientLatency == nil || !(e.ClientLatency.P50 > 0) || e.Requests-min(e.Unanswered, e.Requests) < d.opts.MinCalls {
		return 0, false
	}
	return e.ClientLatency.P50, true
}

// evict forgets the edges seen least recently (ties by id) until at most
// MaxRemembered are kept.
func (d *OpenCircuit) evict() {
	over := len(d.mem) - d.opts.MaxRemembered
	if over <= 0 {
		return
	}
	type aged struct {
		id   string
		seen uint64
	}
	all := make([]aged, 0, len(d.mem))
	for id, n := range d.mem {
		all = append(all, aged{id, n.seen})
	}
	slices.SortFunc(all, func(a, b aged) int {
		if c := cmp.Compare(a.seen, b.seen); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, a := range all[:over] {
		delete(d.mem, a.id)
	}
}

// judge returns the trace condition of sync edge e, nil when its calls do
// not fail fast without reaching the callee. remembered is the edge's
// answered p50 from earlier snapshots (0: none), prev its condition at
// the last evaluation (nil: not open), callee what its callee did.
func (d *OpenCircuit) judge(s *graph.Snapshot, e *graph.Edge, remembered float64, prev *traceCircuit, callee *[2]calleeFigures) *traceCircuit {
	o := &d.opts
	recent := s.RecentSeconds > 0 && (prev != nil || e.RatePerS*s.RecentSeconds >= o.MinRecentCalls)
	if recent {
		f := figures(e, true)
		if f.requests == 0 && prev != nil {
			return prev // no call lately (a slow edge): nothing has changed
		}
		tc := d.judgeOver(e, f, s.RecentSeconds, remembered, 1, callee[0])
		if tc == nil || !d.attempted(tc) {
			return tc
		}
		// The calls try to connect and fail. A replica restarting does that
		// too, for some of the calls: it takes MinCalls of them, over all
		// the callers, with none answered.
		c := &callee[0]
		switch {
		case c.answered > 0 && prev != nil:
			return nil // the callee answers again: calls reach it
		case c.answered == 0 && (prev != nil || c.unanswered >= o.MinCalls):
			return tc
		}
		// Some calls are answered (a partial outage) or too few failed
		// yet: the window judges.
	}
	minCalls := o.MinCalls
	if prev != nil {
		minCalls = 1
	}
	tc := d.judgeOver(e, figures(e, false), s.WindowSeconds, remembered, minCalls, callee[1])
	if tc != nil && prev == nil && d.attempted(tc) && tc.answered > 0 {
		// The calls try to connect and some get through: a partial
		// outage, not an open circuit.
		return nil
	}
	return tc
}

// judgeOver judges e's calls f over a span of spanSeconds, needing at
// least minCalls unanswered ones.
func (d *OpenCircuit) judgeOver(e *graph.Edge, f callFigures, spanSeconds, remembered float64, minCalls uint64, callee calleeFigures) *traceCircuit {
	o := &d.opts
	if f.unanswered < max(minCalls, 1) {
		return nil
	}
	ratio := float64(f.unanswered) / float64(f.requests)
	answered := f.requests - f.unanswered
	if ratio < o.MinUnansweredRatio || !(float64(answered)/float64(f.requests) < o.HalfOpenMaxAnswered) {
		return nil
	}
	if 2*f.errors < f.unanswered {
		return nil // unanswered but not failing: not refused calls
	}
	tc := &traceCircuit{state: circuitStateHalfOpen, spanSeconds: spanSeconds, requests: f.requests, unanswered: f.unanswered,
		answered: answered, unansweredP50: f.unansweredP50, ratio: round4(ratio), calleeAnswered: callee.answered, othersFailing: callee.failing,
		refused: f.refused, rejected: f.rejected}
	if f.failingUnanswered() {
		tc.othersFailing-- // this edge
	}
	if answered == 0 {
		tc.state = circuitStateOpen
	}
	if p50, ok := d.windowNormal(e); ok {
		tc.normal, tc.from = p50, normalFromWindow
	}
	switch {
	case tc.from != "":
	case remembered > 0:
		tc.normal, tc.from = remembered, normalFromHistory
	case e.ClientLatency != nil && e.ClientLatency.P50 > 0:
		tc.normal, tc.from = e.ClientLatency.P50, normalFromWindow // few, but all there is
	default:
		tc.from = normalFromAbsolute
	}
	if tc.from == normalFromAbsolute {
		tc.bound = float64(o.FastAbsolute) / float64(time.Millisecond)
	} else {
		tc.bound = o.FastRatio * tc.normal
	}
	if tc.unansweredP50 > tc.bound {
		return nil // slow: timeouts against a dead callee, an outage
	}
	tc.cause, tc.basis = d.cause(tc)
	return tc
}

// attempted reports whether tc's unanswered calls tried to reach the
// callee: their errors say refused rather than rejected, when at least
// half of them say; else they took a connection attempt's time.
func (d *OpenCircuit) attempted(tc *traceCircuit) bool {
	if said := tc.refused + tc.rejected; said > 0 && 2*said >= tc.unanswered {
		return tc.refused > tc.rejected
	}
	return tc.unansweredP50 >= float64(d.opts.AttemptMin)/float64(time.Millisecond)
}

// cause tells from traces why tc's calls fail (see Detect); a breaker
// reporting for the edge overrides it.
func (d *OpenCircuit) cause(tc *traceCircuit) (string, string) {
	switch {
	case 2*(tc.refused+tc.rejected) >= tc.unanswered && tc.refused > tc.rejected:
		return causeCalleeUnreachable, basisErrorType
	case 2*(tc.refused+tc.rejected) >= tc.unanswered && tc.rejected > 0:
		return causeBreakerOpen, basisErrorType
	case tc.answered > 0:
		return causeBreakerOpen, basisProbesAnswered
	case tc.calleeAnswered == 0 && tc.othersFailing > 0:
		return causeCalleeUnreachable, basisCalleeSilent
	case tc.unansweredP50 >= float64(d.opts.AttemptMin)/float64(time.Millisecond):
		return causeCalleeUnreachable, basisAttempts
	}
	return causeBreakerOpen, basisNoAttempt
}

// breakerTripped reports whether c refuses calls now: open, forced open or
// half open, and not stale.
func breakerTripped(c *resilience.Circuit) bool {
	return !c.Stale && (c.State.IsOpen() || c.State == resilience.CircuitHalfOpen)
}

// breakerCandidates indexes the sync edges of s by the name of their source
// service, for the services that own a tripped breaker. It reports false
// when ctx was done first.
func (d *OpenCircuit) breakerCandidates(ctx context.Context, s *graph.Snapshot) (map[string][]int, bool) {
	services := map[string]bool{}
	for i := range s.Circuits {
		if c := &s.Circuits[i]; breakerTripped(c) {
			services[c.Service] = true
		}
	}
	if len(services) == 0 {
		return nil, true
	}
	owner := map[string]string{} // source node id -> service name
	for i := range s.Nodes {
		if n := &s.Nodes[i]; n.Kind == graph.NodeService && services[n.Name] {
			owner[n.ID] = n.Name
		}
	}
	bySource := map[string][]int{}
	if len(owner) == 0 {
		return bySource, true
	}
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil, false
		}
		e := &s.Edges[i]
		if name, ok := owner[e.Source]; ok && e.Kind == graph.EdgeSync {
			bySource[name] = append(bySource[name], i)
		}
	}
	return bySource, true
}

// bestEdge returns the index of the edge among candidates (edge indexes,
// in edge-id order) whose callee the breaker named name guards, or -1.
// Exact name matches beat component matches; among equals the edge with
// the most unanswered calls, then the most calls, then the first by id.
func bestEdge(s *graph.Snapshot, candidates []int, name string) int {
	best, bestTier := -1, 0
	for _, i := range candidates {
		e := &s.Edges[i]
		tier := matchesBreaker(name, nodeName(s, e.Target))
		if tier == 0 {
			continue
		}
		if best >= 0 {
			b := &s.Edges[best]
			if c := cmp.Or(cmp.Compare(tier, bestTier), cmp.Compare(e.Unanswered, b.Unanswered), cmp.Compare(e.Requests, b.Requests)); c <= 0 {
				continue
			}
		}
		best, bestTier = i, tier
	}
	return best
}

// matchesBreaker reports how well a breaker's name names a callee: 2 when
// equal; 1 when the callee's name is a whole run of the breaker name's
// components, split at '|', '.', '_' and ':' (an Envoy cluster
// "outbound|9090||payment.default.svc.cluster.local" or a resilience4j
// instance "payment_primary" name "payment"; "payment-cluster" does not,
// since '-' is part of service names); 0 otherwise.
func matchesBreaker(breaker, callee string) int {
	if breaker == "" || callee == "" {
		return 0
	}
	if breaker == callee {
		return 2
	}
	bp, cp := splitName(breaker), splitName(callee)
	for i := 0; i+len(cp) <= len(bp); i++ {
		if slices.Equal(bp[i:i+len(cp)], cp) {
			return 1
		}
	}
	return 0
}

func splitName(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == '.' || r == '_' || r == ':' })
}

var circuitIDEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// circuitEdgeID is the synthetic edge id of a breaker no edge matched.
func circuitEdgeID(c *resilience.Circuit) string {
	return "circuit:" + circuitIDEscaper.Replace(c.Service) + "/" + circuitIDEscaper.Replace(c.Name)
}

func (d *OpenCircuit) observe(s *graph.Snapshot, h *circuitHit) Observation {
	var (
		e    *graph.Edge
		subj finding.Subject
		ev   = map[string]any{}
	)
	if h.edge >= 0 {
		e = &s.Edges[h.edge]
		subj = finding.Subject{Source: nodeName(s, e.Source), Target: nodeName(s, e.Target), EdgeID: e.ID}
	} else {
		subj = finding.Subject{Source: h.breaker.Service, Target: h.breaker.Name, EdgeID: circuitEdgeID(h.breaker)}
	}
	msg := openCircuitMessage{Source: subj.Source, Target: subj.Target, Window: windowText(s.WindowSeconds)}

	if tc := h.trace; tc != nil {
		msg.State = tc.state
		msg.Cause = tc.cause
		ev["cause_basis"] = tc.basis
		ev["unanswered"] = tc.unanswered
		ev["requests"] = tc.requests
		ev["answered"] = tc.answered
		ev["unanswered_ratio"] = tc.ratio
		ev["unanswered_p50_ms"] = tc.unansweredP50
		ev["span_seconds"] = round4(tc.spanSeconds)
		ev["callee_answered"] = tc.calleeAnswered
		ev["other_callers_failing"] = tc.othersFailing
		if tc.refused+tc.rejected > 0 {
			ev["refused"], ev["rejected"] = tc.refused, tc.rejected
		}
		ev["normal_from"] = tc.from
		ev["fast_bound_ms"] = round4(tc.bound)
		if tc.from != normalFromAbsolute {
			ev["normal_p50_ms"] = tc.normal
		}
		msg.FromTraces = true
		msg.Span = windowText(math.Round(tc.spanSeconds))
		msg.Requests, msg.Unanswered, msg.Answered = tc.requests, tc.unanswered, tc.answered
		msg.UnansweredP50Ms, msg.NormalP50Ms, msg.NormalFrom, msg.FastBoundMs = tc.unansweredP50, tc.normal, tc.from, tc.bound
		msg.CauseReason = d.causeReason(tc, subj.Target)
	}

	if c := h.breaker; c != nil {
		bev := map[string]any{
			"name":       c.Name,
			"state":      c.State.String(),
			"source":     "metrics",
			"updated_at": c.UpdatedAt.UTC(),
		}
		if c.Instances > 0 { // how many of the service's instances report it open
			bev["open_instances"], bev["instances"] = c.Open, c.Instances
		}
		ev["breaker"] = bev
		msg.Breaker = &breakerMessage{Name: c.Name, State: c.State.String()}
		msg.Cause = causeBreakerOpen
		ev["cause_basis"] = basisBreakerMetric
		msg.CauseReason = "breaker " + strconv.Quote(c.Name) + " reports " + c.State.String()
		if c.State.IsOpen() {
			msg.State = circuitStateOpen
		} else if msg.State == "" {
			msg.State = circuitStateHalfOpen
		}
		if h.trace == nil && e != nil {
			answered := e.Requests - min(e.Unanswered, e.Requests)
			ev["requests"] = e.Requests
			ev["unanswered"] = e.Unanswered
			ev["answered"] = answered
			msg.Requests, msg.Unanswered, msg.Answered = e.Requests, e.Unanswered, answered
			msg.Span = msg.Window
		}
	}
	ev["state"] = msg.State
	ev["cause"] = msg.Cause

	sev := finding.SeverityWarning
	if msg.State == circuitStateOpen {
		sev = finding.SeverityCritical
	}
	msg.Severity = sev.String()
	return Observation{Kind: finding.KindOpenCircuit, Subject: subj, Severity: sev, Summary: d.msg.render(msg), Evidence: ev}
}

// causeReason says in words what tells tc's cause; callee names the
// callee.
func (d *OpenCircuit) causeReason(tc *traceCircuit, callee string) string {
	switch tc.basis {
	case basisErrorType:
		if tc.cause == causeCalleeUnreachable {
			return strconv.FormatUint(tc.refused, 10) + " of the " + strconv.FormatUint(tc.unanswered, 10) + " failures are refused or unreachable connections"
		}
		return strconv.FormatUint(tc.rejected, 10) + " of the " + strconv.FormatUint(tc.unanswered, 10) + " failures were rejected by the caller without trying"
	case basisProbesAnswered:
		return "the trickle of calls it lets through is answered, so " + callee + " is up"
	case basisCalleeSilent:
		others := "1 other caller fails"
		if tc.othersFailing > 1 {
			others = strconv.Itoa(tc.othersFailing) + " other callers fail"
		}
		return callee + " answered no caller in the last " + windowText(math.Round(tc.spanSeconds)) + " and " + others + " to reach it too"
	case basisAttempts:
		return "failing in " + formatMs(float64(d.opts.AttemptMin)/float64(time.Millisecond)) + " ms or more, the time a refused connection attempt takes"
	}
	r := "failing in under " + formatMs(float64(d.opts.AttemptMin)/float64(time.Millisecond)) + " ms, too fast to have tried connecting"
	if tc.calleeAnswered > 0 {
		r += ", while " + callee + " answers other callers"
	}
	return r
}

// possessive returns "orders'" for orders and "cart's" for cart.
func possessive(name string) string {
	if strings.HasSuffix(name, "s") {
		return name + "'"
	}
	return name + "'s"
}

// windowText formats a window length: "60s", "5m".
func windowText(seconds float64) string {
	if seconds >= 120 && seconds == float64(int64(seconds)) && int64(seconds)%60 == 0 {
		return strconv.FormatInt(int64(seconds)/60, 10) + "m"
	}
	return strconv.FormatFloat(seconds, 'f', -1, 64) + "s"
}

// formatMs formats milliseconds for a summary: whole from 10, one decimal
// from 1, else two (trailing zeros dropped).
func formatMs(x float64) string {
	prec := 2
	switch {
	case x >= 10:
		prec = 0
	case x >= 1:
		prec = 1
	}
	s := strconv.FormatFloat(x, 'f', prec, 64)
	if prec > 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
