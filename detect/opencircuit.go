package detect

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
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
	// MinCalls is how many unanswered calls an edge needs in the window
	// before it is judged (default 5).
	MinCalls uint64 `yaml:"min_calls"`
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
func (o OpenCircuitOptions) Validate() error { return validateMessage(KindOpenCircuit, o.Message) }

// openCircuitMessage is the data of an open_circuit summary template.
type openCircuitMessage struct {
	Source          string          `doc:"the caller (the breaker's service when no edge matched it)"`
	Target          string          `doc:"the callee (the breaker's name when no edge matched it)"`
	State           string          `doc:"open or half_open"`
	Severity        string          `doc:"warning or critical"`
	Window          string          `doc:"the window's length: 60s, 5m"`
	FromTraces      bool            `doc:"traces show the calls failing fast without reaching the callee (else only a breaker reports)"`
	Requests        uint64          `doc:"calls on the edge in the window (0 when no edge matched the breaker)"`
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
	return o
}

// OpenCircuit detects open circuits (SPEC.md "open_circuit"): callers that
// stop calling a callee and fail fast. It judges two signals and reports one
// observation per edge when both point at it:
//
//   - traces: a sync edge whose calls mostly never reach the callee
//     (graph.Edge.Unanswered: no server span answered them) and fail, much
//     faster than the edge normally answers. Calls that time out slowly
//     against a dead callee are an outage, not an open circuit, and do not
//     count. The normal latency is the edge's answered client-side p50 in
//     the snapshot, else the last one remembered from an earlier snapshot,
//     else unknown (FastAbsolute bounds the failures instead).
//   - metrics: a circuit breaker (graph.Snapshot.Circuits) reported open,
//     forced open or half open and not stale, joined to the edge from its
//     service to the callee it names (see matchesBreaker). A breaker no edge
//     matches is still reported, on the synthetic edge id
//     "circuit:<service>/<name>" ('/' and '%' in either part escaped as
//     %2F and %25) so that it stays a finding of its own.
//
// The condition stops holding, and the finding resolves, once calls reach
// the callee again and the breaker (if any reports) closes.
//
// An OpenCircuit keeps state across snapshots (the remembered latencies),
// so one detector must be used for one graph.
type OpenCircuit struct {
	opts OpenCircuitOptions
	msg  summaryTemplate
	// normal is the remembered answered latency per edge id.
	normal map[string]*normalLatency
	tick   uint64
}

// normalLatency is an edge's last answered client-side p50 and the
// evaluation at which the edge was last seen.
type normalLatency struct {
	p50  float64 // ms; 0: none seen yet
	seen uint64
}

// NewOpenCircuit returns an OpenCircuit detector configured by o; zero
// fields take the defaults. o.Message is parsed here: when it does not (see
// Validate) the summaries are the default's, marked as failed.
func NewOpenCircuit(o OpenCircuitOptions) *OpenCircuit {
	return &OpenCircuit{opts: o.withDefaults(), msg: newSummaryTemplate(KindOpenCircuit, o.Message), normal: map[string]*normalLatency{}}
}

// Options returns the options in force, defaults filled in.
func (d *OpenCircuit) Options() OpenCircuitOptions { return d.opts }

// Kind returns KindOpenCircuit.
func (d *OpenCircuit) Kind() Kind { return KindOpenCircuit }

// circuitHit is what holds for one edge (edge < 0: a breaker no edge
// matched).
type circuitHit struct {
	edge    int
	trace   *traceCircuit
	breaker *resilience.Circuit
}

// traceCircuit is the trace-based condition on one edge.
type traceCircuit struct {
	state         string // circuitStateOpen or circuitStateHalfOpen
	answered      uint64
	ratio         float64 // unanswered / requests
	unansweredP50 float64 // ms
	normal, bound float64 // ms; normal 0 when from is normalFromAbsolute
	from          string
}

// Detect returns one observation per edge of s whose circuit is open or half
// open, seen in traces, in breaker metrics, or both, ordered by edge id.
// The circuit is open when no call in the window reached the callee or a
// breaker reports open or forced open (either suffices when both speak),
// else half open: a trickle of calls (under HalfOpenMaxAnswered) got
// through, or a breaker reports half open. Severity is critical when open
// and a warning when half open.
//
// Evidence: "state" (open, half_open); from traces "unanswered",
// "requests", "answered", "unanswered_ratio", "unanswered_p50_ms",
// "normal_p50_ms" (omitted when unknown), "normal_from" (window, history,
// absolute) and "fast_bound_ms"; from metrics "breaker" (name, state,
// source "metrics", updated_at, and open_instances of instances: how many
// of the service's instances report it open), with the edge's "requests", "unanswered"
// and "answered" when an edge matched.
//
// Detect does not modify s; it remembers each edge's answered latency for
// later snapshots. When ctx is done it stops and returns nil.
func (d *OpenCircuit) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	if s == nil || ctx.Err() != nil {
		return nil
	}
	d.tick++
	defer d.evict()

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
		remembered := d.remember(e)
		if tc, ok := d.judge(e, remembered); ok {
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
// one; it returns the latency remembered from before (0: none).
func (d *OpenCircuit) remember(e *graph.Edge) float64 {
	n := d.normal[e.ID]
	if n == nil {
		n = &normalLatency{}
		d.normal[e.ID] = n
	}
	prev := n.p50
	n.seen = d.tick
	if e.ClientLatency != nil && e.ClientLatency.P50 > 0 {
		n.p50 = e.ClientLatency.P50
	}
	return prev
}

// evict forgets the edges seen least recently (ties by id) until at most
// MaxRemembered are kept.
func (d *OpenCircuit) evict() {
	over := len(d.normal) - d.opts.MaxRemembered
	if over <= 0 {
		return
	}
	type aged struct {
		id   string
		seen uint64
	}
	all := make([]aged, 0, len(d.normal))
	for id, n := range d.normal {
		all = append(all, aged{id, n.seen})
	}
	slices.SortFunc(all, func(a, b aged) int {
		if c := cmp.Compare(a.seen, b.seen); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, a := range all[:over] {
		delete(d.normal, a.id)
	}
}

// judge reports whether the calls of sync edge e fail fast without reaching
// the callee; remembered is the edge's answered p50 from earlier snapshots
// (0: none).
func (d *OpenCircuit) judge(e *graph.Edge, remembered float64) (*traceCircuit, bool) {
	o := &d.opts
	if e.Unanswered < o.MinCalls || e.Unanswered > e.Requests || e.UnansweredLatency == nil {
		return nil, false
	}
	ratio := float64(e.Unanswered) / float64(e.Requests)
	answered := e.Requests - e.Unanswered
	if ratio < o.MinUnansweredRatio || !(float64(answered)/float64(e.Requests) < o.HalfOpenMaxAnswered) {
		return nil, false
	}
	if 2*e.Errors < e.Unanswered {
		return nil, false // unanswered but not failing: not refused calls
	}
	tc := &traceCircuit{state: circuitStateHalfOpen, answered: answered, unansweredP50: e.UnansweredLatency.P50, ratio: round4(ratio)}
	if answered == 0 {
		tc.state = circuitStateOpen
	}
	switch {
	case e.ClientLatency != nil && e.ClientLatency.P50 > 0:
		tc.normal, tc.from = e.ClientLatency.P50, normalFromWindow
	case remembered > 0:
		tc.normal, tc.from = remembered, normalFromHistory
	default:
		tc.from = normalFromAbsolute
	}
	if tc.from == normalFromAbsolute {
		tc.bound = float64(o.FastAbsolute) / float64(time.Millisecond)
	} else {
		tc.bound = o.FastRatio * tc.normal
	}
	if tc.unansweredP50 > tc.bound {
		return nil, false // slow: timeouts against a dead callee, an outage
	}
	return tc, true
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
		subj Subject
		ev   = map[string]any{}
	)
	if h.edge >= 0 {
		e = &s.Edges[h.edge]
		subj = Subject{Source: nodeName(s, e.Source), Target: nodeName(s, e.Target), EdgeID: e.ID}
	} else {
		subj = Subject{Source: h.breaker.Service, Target: h.breaker.Name, EdgeID: circuitEdgeID(h.breaker)}
	}
	msg := openCircuitMessage{Source: subj.Source, Target: subj.Target, Window: windowText(s.WindowSeconds)}

	if tc := h.trace; tc != nil {
		msg.State = tc.state
		ev["unanswered"] = e.Unanswered
		ev["requests"] = e.Requests
		ev["answered"] = tc.answered
		ev["unanswered_ratio"] = tc.ratio
		ev["unanswered_p50_ms"] = tc.unansweredP50
		ev["normal_from"] = tc.from
		ev["fast_bound_ms"] = round4(tc.bound)
		if tc.from != normalFromAbsolute {
			ev["normal_p50_ms"] = tc.normal
		}
		msg.FromTraces = true
		msg.Requests, msg.Unanswered, msg.Answered = e.Requests, e.Unanswered, tc.answered
		msg.UnansweredP50Ms, msg.NormalP50Ms, msg.NormalFrom, msg.FastBoundMs = tc.unansweredP50, tc.normal, tc.from, tc.bound
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
		}
	}
	ev["state"] = msg.State

	sev := SeverityWarning
	if msg.State == circuitStateOpen {
		sev = SeverityCritical
	}
	msg.Severity = sev.String()
	return Observation{Kind: KindOpenCircuit, Subject: subj, Severity: sev, Summary: d.msg.render(msg), Evidence: ev}
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
