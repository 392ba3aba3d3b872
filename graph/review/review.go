// Package review judges how services talk to each other against the
// patterns that keep a system resilient (issue 21, the communication
// review): long synchronous chains, retries without backoff, callers that
// keep calling a failing callee with no circuit breaker, chatty (N+1)
// edges, hubs whose failure cuts most paths. Each judgement is an
// Observation with its subject (a node or an edge), the numbers that made
// it, why it matters and the common remedy; severity info or warning.
// Observations are no findings: they have no lifecycle and page no one.
//
// A Reviewer reads a graph.Snapshot (edges, coupling figures, critical
// paths) and the call patterns of sampled complete traces (CallSource,
// graph/critpath's Sampler). It keeps no state between reviews.
package review

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Kind is the kind of an observation.
type Kind string

// Kinds of observation, numbered as in issue 21.
const (
	KindSyncChain      Kind = "sync_chain"            // 1
	KindRetryNoBackoff Kind = "retry_without_backoff" // 2
	KindNoTimeout      Kind = "no_timeout"            // 3
	KindNoBreaker      Kind = "no_circuit_breaker"    // 4
	KindChatty         Kind = "chatty_edge"           // 6
	KindAsyncPipeline  Kind = "async_pipeline"        // 8
	KindHub            Kind = "hub"                   // 9
)

// kindOrder is the order of kinds in a report.
var kindOrder = []Kind{KindNoBreaker, KindRetryNoBackoff, KindNoTimeout, KindChatty, KindSyncChain, KindAsyncPipeline, KindHub}

// Severity is how much an observation matters: info (worth knowing in a
// design review) or warning (a pattern that turns a failure into an
// outage).
type Severity string

// Severities.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
)

// Observation is one judgement on one node or edge.
type Observation struct {
	// ID is stable across reviews: the kind and the subject (and for a
	// pattern of calls, the operation).
	ID       string          `json:"id"`
	Kind     Kind            `json:"kind"`
	Severity Severity        `json:"severity"`
	Subject  finding.Subject `json:"subject"`
	// Namespace is the subject node's service.namespace, or for an edge
	// its source's; empty when it has none.
	Namespace string `json:"namespace,omitempty"`
	// Summary says what was seen, in one sentence, with the numbers.
	Summary string `json:"summary"`
	// Why says why it matters, in one sentence.
	Why string `json:"why"`
	// Evidence carries the numbers.
	Evidence map[string]any `json:"evidence"`
	// Remedy is the common remedy.
	Remedy string `json:"remedy"`
}

// Report is a review of one snapshot.
type Report struct {
	GeneratedAt   time.Time     `json:"generated_at"`
	WindowSeconds float64       `json:"window_seconds"`
	Observations  []Observation `json:"observations"`
	// Skipped names the judgements that could not be made, and why.
	Skipped []string `json:"skipped,omitempty"`
}

// CallSource gives the call patterns of the complete traces sampled over
// a window (graph/critpath's Sampler).
type CallSource interface {
	Calls(window time.Duration) []critpath.CallPattern
}

// Reviewer reviews snapshots. It is safe for concurrent use.
type Reviewer struct {
	o     Options
	calls CallSource
}

// New returns a Reviewer with thresholds o (zero fields: defaults) reading
// call patterns from calls (nil: the judgements that need them are
// skipped).
func New(o Options, calls CallSource) (*Reviewer, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	return &Reviewer{o: o.WithDefaults(), calls: calls}, nil
}

// Review judges s (read only) and the call patterns of its window.
func (r *Reviewer) Review(s *graph.Snapshot) Report {
	rep := Report{GeneratedAt: s.GeneratedAt, WindowSeconds: s.WindowSeconds, Observations: []Observation{}}
	var calls []critpath.CallPattern
	if r.calls != nil {
		calls = r.calls.Calls(time.Duration(s.WindowSeconds * float64(time.Second)))
	} else {
		rep.Skipped = append(rep.Skipped, string(KindRetryNoBackoff)+", "+string(KindChatty)+": no trace sampler")
	}
	if len(s.Paths) == 0 {
		rep.Skipped = append(rep.Skipped, string(KindSyncChain)+": no critical paths (no complete traces in the window)")
	}
	j := judge{o: r.o, s: s, calls: calls}
	j.syncChains()
	j.retries()
	j.breakers()
	j.timeouts()
	j.chatty()
	j.pipelines()
	j.hubs()
	rep.Observations = append(rep.Observations, j.out...)
	sortObservations(rep.Observations)
	return rep
}

// InNamespace returns the report's observations in namespace ns (those
// whose subject is in it).
func (rep Report) InNamespace(ns string) Report {
	out := rep
	out.Observations = []Observation{}
	for _, o := range rep.Observations {
		if o.Namespace == ns {
			out.Observations = append(out.Observations, o)
		}
	}
	return out
}

func sortObservations(obs []Observation) {
	rank := func(k Kind) int { return slices.Index(kindOrder, k) }
	slices.SortFunc(obs, func(a, b Observation) int {
		if a.Severity != b.Severity {
			if a.Severity == SeverityWarning {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(rank(a.Kind), rank(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// judge holds one review in progress.
type judge struct {
	o     Options
	s     *graph.Snapshot
	calls []critpath.CallPattern
	out   []Observation
}

// name is what a node is called in a summary: its name, and for a
// database, topic or queue its system (a service and its database are
// often named alike).
func (j *judge) name(id string) string {
	n, ok := j.s.Node(id)
	if !ok {
		return id
	}
	name := graph.NodeKey{Kind: n.Kind, Name: n.Name}.DisplayName()
	if n.Kind != graph.NodeService && n.System != "" {
		name += " (" + n.System + ")"
	}
	return name
}

func (j *judge) namespace(id string) string {
	n, _ := j.s.Node(id)
	return n.Namespace
}

func (j *judge) edgeSubject(src, dst string) finding.Subject {
	return finding.Subject{Source: j.name(src), Target: j.name(dst), EdgeID: src + "->" + dst}
}

func (j *judge) nodeSubject(id string) finding.Subject {
	return finding.Subject{Node: j.name(id), NodeID: id}
}

func (j *judge) add(o Observation) {
	if o.Namespace == "" {
		if o.Subject.NodeID != "" {
			o.Namespace = j.namespace(o.Subject.NodeID)
		} else if src, _, ok := strings.Cut(o.Subject.EdgeID, "->"); ok {
			o.Namespace = j.namespace(src)
		}
	}
	j.out = append(j.out, o)
}

// --- 1: synchronous chains ------------------------------------------------

// maxChainSteps bounds the search for an entry's longest chain.
const maxChainSteps = 10_000

// syncChains reports entry operations whose requests run through
// ChainMinHops or more synchronous hops: the longest chain of sync edges
// from the entry over the nodes on its critical path.
func (j *judge) syncChains() {
	detached := map[[2]string][2]int{} // caller, callee -> detached, calls
	for _, c := range j.calls {
		k := [2]string{c.Caller, c.Callee}
		d := detached[k]
		detached[k] = [2]int{d[0] + c.Detached, d[1] + c.Calls}
	}
	// The busiest sync edge between each pair of nodes, by source, in
	// edge id order.
	best := map[[2]string]*graph.Edge{}
	for i := range j.s.Edges {
		e := &j.s.Edges[i]
		if e.Kind != graph.EdgeSync || e.Source == e.Target {
			continue
		}
		k := [2]string{e.Source, e.Target}
		if b := best[k]; b == nil || e.Requests > b.Requests {
			best[k] = e
		}
	}
	out := map[string][]*graph.Edge{}
	for _, e := range best {
		out[e.Source] = append(out[e.Source], e)
	}
	for _, es := range out {
		slices.SortFunc(es, func(a, b *graph.Edge) int { return strings.Compare(a.ID, b.ID) })
	}
	for _, p := range j.s.Paths {
		if p.Traces < j.o.ChainMinTraces {
			continue
		}
		on := map[string]bool{p.Node: true}
		for _, sh := range p.Shares {
			on[sh.Node] = true
		}
		// The sync edges between nodes on the path.
		next := make(map[string][]*graph.Edge, len(on))
		for id := range on {
			for _, e := range out[id] {
				if on[e.Target] {
					next[id] = append(next[id], e)
				}
			}
		}
		chain := longestChain(p.Node, next)
		hops := len(chain)
		if hops < j.o.ChainMinHops {
			continue
		}
		avail := 1.0
		hopList := make([]map[string]any, 0, hops)
		names := []string{j.name(p.Node)}
		var queue, adds []string
		for i, e := range chain {
			avail *= 1 - e.ErrorRatio
			h := map[string]any{"source": e.Source, "target": e.Target, "protocol": e.Protocol.String(),
				"error_ratio": e.ErrorRatio, "availability": round4(1 - e.ErrorRatio)}
			if e.Latency != nil {
				h["p50_ms"], h["p95_ms"] = e.Latency.P50, e.Latency.P95
				// A call's latency holds the calls below it: what this
				// hop adds is its p50 less the next hop's.
				add := e.Latency.P50
				if i+1 < len(chain) && chain[i+1].Latency != nil {
					add = max(add-chain[i+1].Latency.P50, 0)
				}
				h["adds_p50_ms"] = round3(add)
				adds = append(adds, num(add))
			}
			if d := detached[[2]string{e.Source, e.Target}]; d[1] > 0 {
				share := round4(float64(d[0]) / float64(d[1]))
				h["answered_after_caller_replied"] = share
				if share >= 0.5 {
					queue = append(queue, j.name(e.Source)+" → "+j.name(e.Target))
				}
			}
			hopList = append(hopList, h)
			names = append(names, j.name(e.Target))
		}
		sev := SeverityInfo
		if hops >= j.o.ChainWarningHops {
			sev = SeverityWarning
		}
		ev := map[string]any{"entry": p.Node, "operation": p.Operation, "hops": hops, "chain": hopList,
			"compounded_availability": round4(avail),
			"entry_p50_ms":            p.P50Ms, "entry_p95_ms": p.P95Ms, "traces": p.Traces}
		summary := fmt.Sprintf("%s at %s runs through %d synchronous hops (%s): their availabilities compound to %s",
			p.Operation, j.name(p.Node), hops, strings.Join(names, " → "), pct(avail))
		if len(adds) == hops {
			summary += fmt.Sprintf(", and each hop adds its own latency (p50 %s ms; the entry's p50 is %s ms)", strings.Join(adds, ", "), num(p.P50Ms))
		}
		if len(queue) > 0 {
			ev["queue_candidates"] = queue
			summary += "; the caller does not wait for the answer of " + strings.Join(queue, ", ")
		}
		o := Observation{
			ID: string(KindSyncChain) + ":" + p.Node + " " + p.Operation, Kind: KindSyncChain, Severity: sev,
			Subject: j.nodeSubject(p.Node), Summary: summary, Evidence: ev,
			Why:    "every synchronous hop adds its latency and multiplies its unavailability into the entry's, so the request fails when any hop does",
			Remedy: "make the hops whose result the caller does not need before replying asynchronous (a queue or topic), cache or denormalise what is read, and give each remaining hop a timeout",
		}
		j.add(o)
	}
}

// longestChain returns the longest simple path of edges from start (depth
// first, bounded by maxChainSteps; ties go to the first found, successors
// taken in the order next lists them).
func longestChain(start string, next map[string][]*graph.Edge) []*graph.Edge {
	var best, cur []*graph.Edge
	onPath := map[string]bool{start: true}
	steps := 0
	var walk func(n string)
	walk = func(n string) {
		if len(cur) > len(best) {
			best = slices.Clone(cur)
		}
		for _, e := range next[n] {
			if steps++; steps > maxChainSteps {
				return
			}
			if onPath[e.Target] {
				continue
			}
			onPath[e.Target] = true
			cur = append(cur, e)
			walk(e.Target)
			cur = cur[:len(cur)-1]
			delete(onPath, e.Target)
		}
	}
	walk(start)
	return best
}

// --- 2: retries without backoff ------------------------------------------

// retries reports callers that repeat failed calls back-to-back (warning)
// or after a fixed delay that never grows (info).
func (j *judge) retries() {
	for _, c := range j.calls {
		if c.Retried < j.o.RetryMinRetried || c.GapMs == nil {
			continue
		}
		attempts := map[string]int{}
		for k, n := range c.Attempts {
			if n > 0 {
				key := fmt.Sprint(k + 1)
				if k+1 == critpath.MaxAttempts {
					key += "+"
				}
				attempts[key] = n
			}
		}
		ev := map[string]any{"operation": c.Operation, "requests": c.Requests, "retried": c.Retried, "retries": c.Repeats,
			"attempts_per_request": attempts,
			"wait_before_retry_ms": map[string]any{"p50": c.GapMs.P50, "p95": c.GapMs.P95, "min": c.GapMs.Min, "max": c.GapMs.Max}}
		var growing float64
		if c.Multi > 0 {
			growing = round4(float64(c.Growing) / float64(c.Multi))
			ev["requests_of_3_attempts_or_more"] = c.Multi
			ev["growing_wait_share"] = growing
		}
		o := Observation{Kind: KindRetryNoBackoff, Subject: j.edgeSubject(c.Caller, c.Callee), Evidence: ev,
			ID:     string(KindRetryNoBackoff) + ":" + c.Caller + "->" + c.Callee + " " + c.Operation,
			Remedy: "retry with exponential backoff and jitter (e.g. 100 ms × 2^attempt, randomised), within a retry budget, and only idempotent calls",
		}
		switch {
		case c.GapMs.P50 <= j.o.RetryMaxGapMs:
			o.Severity = SeverityWarning
			o.Summary = fmt.Sprintf("%s retries failed %s calls to %s back-to-back: the median wait before a retry is %s ms (p95 %s ms); %d of %d requests were retried, with %d retries",
				j.name(c.Caller), c.Operation, j.name(c.Callee), num(c.GapMs.P50), num(c.GapMs.P95), c.Retried, c.Requests, c.Repeats)
			o.Why = "retries that do not wait hit a struggling callee again at once, multiplying its load exactly when it can least take it (a retry storm)"
		case c.Multi >= j.o.RetryMinRetried && growing < j.o.RetryMinGrowing:
			o.Severity = SeverityInfo
			o.Summary = fmt.Sprintf("%s waits a fixed %s ms (median) before retrying %s calls to %s: the wait grew in %s of the %d requests retried twice or more",
				j.name(c.Caller), num(c.GapMs.P50), c.Operation, j.name(c.Callee), pct(growing), c.Multi)
			o.Why = "a fixed delay keeps the retries of many callers in step, so they arrive at the callee together, wave after wave"
		default:
			continue
		}
		j.add(o)
	}
}

// --- 4: missing circuit breaking -----------------------------------------

// breakers reports sync edges to services whose calls keep reaching a
// callee that fails most of them, over the window and recently: no
// breaker opens, no load is shed.
func (j *judge) breakers() {
	inbound := map[string]uint64{}
	for _, e := range j.s.Edges {
		if e.Source != e.Target {
			inbound[e.Target] += e.Requests
		}
	}
	entries := map[string]uint64{}
	for _, p := range j.s.Paths {
		entries[p.Node] += uint64(p.Traces)
	}
	for i := range j.s.Edges {
		e := &j.s.Edges[i]
		if e.Kind != graph.EdgeSync || e.Requests < j.o.BreakerMinCalls || e.Source == e.Target {
			continue
		}
		if n, ok := j.s.Node(e.Target); !ok || n.Kind != graph.NodeService {
			continue
		}
		reached := e.Requests - min(e.Unanswered, e.Requests)
		failed := e.Errors - min(e.Unanswered, e.Errors) // failures that reached the callee
		if reached == 0 {
			continue
		}
		reachedShare := float64(reached) / float64(e.Requests)
		ratio := float64(failed) / float64(reached)
		if reachedShare < j.o.BreakerMinReached || ratio < j.o.BreakerMinErrorRatio {
			continue
		}
		r := e.Recent
		if r == nil || r.Requests == 0 {
			continue
		}
		served := inbound[e.Source]
		if served == 0 {
			served = entries[e.Source]
		}
		if served == 0 {
			continue // no telling what full rate is
		}
		perRequest := float64(e.Requests) / float64(served)
		if perRequest < j.o.BreakerMinCallRatio {
			continue
		}
		rReached := r.Requests - min(r.Unanswered, r.Requests)
		rFailed := r.Errors - min(r.Unanswered, r.Errors)
		if rReached == 0 || float64(rReached)/float64(r.Requests) < j.o.BreakerMinReached || float64(rFailed)/float64(rReached) < j.o.BreakerMinErrorRatio {
			continue
		}
		ev := map[string]any{"calls": e.Requests, "rate_per_s": e.RatePerS, "reached_callee": reached, "reached_share": round4(reachedShare),
			"error_ratio": round4(ratio), "wasted_calls": failed, "wasted_per_s": round3(e.RatePerS * float64(failed) / float64(e.Requests)),
			"recent_error_ratio": round4(float64(rFailed) / float64(rReached)), "recent_calls": r.Requests,
			"calls_per_request_served": round3(perRequest), "requests_served": served}
		if j.s.RecentSeconds > 0 {
			ev["recent_rate_per_s"] = round3(float64(r.Requests) / j.s.RecentSeconds)
		}
		j.add(Observation{
			ID: string(KindNoBreaker) + ":" + e.Source + "->" + e.Target, Kind: KindNoBreaker, Severity: SeverityWarning,
			Subject: j.edgeSubject(e.Source, e.Target), Evidence: ev,
			Summary: fmt.Sprintf("%s keeps calling %s at %s/s (%s per request it serves) while %s of the calls fail (%s recently): %d wasted calls in the window (%s/s), %s of the calls reaching %s rather than failing fast",
				j.name(e.Source), j.name(e.Target), num(e.RatePerS), numUnit(perRequest, "call", "calls"), pct(ratio), pct(float64(rFailed)/float64(rReached)), failed, num(e.RatePerS*float64(failed)/float64(e.Requests)), pct(reachedShare), j.name(e.Target)),
			Why:    "a caller that keeps calling a failing callee holds its own threads and connections on calls that fail, and keeps the callee from recovering",
			Remedy: "put a circuit breaker on the calls (open after a failure ratio, fail fast, probe half-open) and shed or degrade the work that needs them",
		})
	}
}

// --- 3: callers without timeouts --------------------------------------------

// timeouts reports sync edges to services whose callee has a long tail
// that the caller's own durations follow all the way: no cut-off, so no
// timeout shorter than the callee's worst cases.
func (j *judge) timeouts() {
	for i := range j.s.Edges {
		e := &j.s.Edges[i]
		if e.Kind != graph.EdgeSync || e.Requests < j.o.TimeoutMinCalls || e.ClientLatency == nil || e.ServerLatency == nil {
			continue
		}
		srv, cli := e.ServerLatency, e.ClientLatency
		if srv.P99 < j.o.TimeoutMinTailMs || srv.P99 < j.o.TimeoutMinTailRatio*srv.P50 || cli.P99 < j.o.TimeoutMinFollow*srv.P99 {
			continue
		}
		j.add(Observation{
			ID: string(KindNoTimeout) + ":" + e.Source + "->" + e.Target, Kind: KindNoTimeout, Severity: SeverityWarning,
			Subject: j.edgeSubject(e.Source, e.Target),
			Evidence: map[string]any{"calls": e.Requests,
				"callee_ms": map[string]any{"p50": srv.P50, "p95": srv.P95, "p99": srv.P99},
				"caller_ms": map[string]any{"p50": cli.P50, "p95": cli.P95, "p99": cli.P99}},
			Summary: fmt.Sprintf("%s waits for %s as long as its worst cases take: %s answers in %s ms at p50 but %s ms at p99, and %s's own calls last %s ms at p99, with no cut-off",
				j.name(e.Source), j.name(e.Target), j.name(e.Target), num(srv.P50), num(srv.P99), j.name(e.Source), num(cli.P99)),
			Why:    "a caller without a timeout holds a thread or connection for as long as the callee's slowest answer, so one slow dependency exhausts the caller and everything that calls it",
			Remedy: "set a timeout on the client a little above the callee's normal p99 (and propagate a deadline down the chain), so that its worst cases fail fast; retry them only within a budget",
		})
	}
}

// --- 6: chatty edges -----------------------------------------------------

// chatty reports callers making many requests to the same callee operation
// within one parent span (N+1).
func (j *judge) chatty() {
	for _, c := range j.calls {
		if c.Parents < j.o.ChattyMinParents || c.PerParent.P50 < j.o.ChattyMinCalls {
			continue
		}
		j.add(Observation{
			ID: string(KindChatty) + ":" + c.Caller + "->" + c.Callee + " " + c.Operation, Kind: KindChatty, Severity: SeverityWarning,
			Subject: j.edgeSubject(c.Caller, c.Callee),
			Evidence: map[string]any{"operation": c.Operation, "parents": c.Parents, "requests": c.Requests,
				"calls_per_parent": map[string]any{"p50": c.PerParent.P50, "p95": c.PerParent.P95, "max": c.PerParent.Max, "mean": c.PerParent.Mean}},
			Summary: fmt.Sprintf("%s calls %s %s %s times per request (median; p95 %s, max %s) over %d requests",
				j.name(c.Caller), j.name(c.Callee), c.Operation, num(c.PerParent.P50), num(c.PerParent.P95), num(c.PerParent.Max), c.Parents),
			Why:    "each call pays a network round trip and the callee's fixed cost, so latency and load grow with the number of items instead of the number of requests (N+1)",
			Remedy: "batch the calls (one request for many items), or fetch the items with the parent data",
		})
	}
}

// --- 8: async pipelines ---------------------------------------------------

// maxPipelineSteps bounds the search for pipelines.
const maxPipelineSteps = 100_000

// pipelines reports chains of consumer stages, producer -> destination
// -> consumer -> destination -> consumer, with AsyncMinStages stages or
// more: each stage's wait in the queue (the delay from the produce's end
// to the consume's start) and processing (the consumer span), their sums
// end to end, and the share of it spent waiting.
func (j *judge) pipelines() {
	isDest := func(id string) bool {
		n, ok := j.s.Node(id)
		return ok && (n.Kind == graph.NodeTopic || n.Kind == graph.NodeQueue)
	}
	stagesFrom := map[string][]*graph.Edge{} // destination -> its consumer edges
	produces := map[string][]string{}        // service -> destinations it produces to
	consumed := map[string]bool{}            // services that consume
	for i := range j.s.Edges {
		e := &j.s.Edges[i]
		if e.Kind != graph.EdgeAsync {
			continue
		}
		switch {
		case isDest(e.Source) && !isDest(e.Target):
			stagesFrom[e.Source] = append(stagesFrom[e.Source], e)
			consumed[e.Target] = true
		case isDest(e.Target) && !isDest(e.Source):
			produces[e.Source] = append(produces[e.Source], e.Target)
		}
	}
	// Pipelines start at a producer that consumes nothing.
	var starts []string
	for p := range produces {
		if !consumed[p] {
			starts = append(starts, p)
		}
	}
	slices.Sort(starts)
	steps := 0
	for _, p := range starts {
		var cur []*graph.Edge
		var walk func(svc string)
		onPath := map[string]bool{p: true}
		walk = func(svc string) {
			ended := true
			for _, d := range produces[svc] {
				for _, st := range stagesFrom[d] {
					if steps++; steps > maxPipelineSteps || onPath[st.Target] {
						continue
					}
					ended = false
					onPath[st.Target] = true
					cur = append(cur, st)
					walk(st.Target)
					cur = cur[:len(cur)-1]
					delete(onPath, st.Target)
				}
			}
			if ended && len(cur) >= j.o.AsyncMinStages {
				j.pipeline(p, cur)
			}
		}
		walk(p)
	}
}

// pipeline reports one pipeline from producer through stages.
func (j *judge) pipeline(producer string, stages []*graph.Edge) {
	var waitP50, waitP95, workP50, workP95 float64
	list := make([]map[string]any, 0, len(stages))
	names := []string{j.name(producer)}
	var lagging []string
	for _, st := range stages {
		s := map[string]any{"destination": st.Source, "consumer": st.Target, "rate_per_s": st.RatePerS}
		if st.ConsumerGroup != "" {
			s["consumer_group"] = st.ConsumerGroup
		}
		if st.Delay != nil {
			waitP50 += st.Delay.P50
			waitP95 += st.Delay.P95
			s["wait_ms"] = map[string]any{"p50": st.Delay.P50, "p95": st.Delay.P95}
		}
		if st.Latency != nil {
			workP50 += st.Latency.P50
			workP95 += st.Latency.P95
			s["processing_ms"] = map[string]any{"p50": st.Latency.P50, "p95": st.Latency.P95}
		}
		if l := st.Lag; l != nil && l.Seconds != nil {
			s["time_lag_s"] = *l.Seconds
			lagging = append(lagging, fmt.Sprintf("%s on %s %s s behind", j.name(st.Target), j.name(st.Source), num(*l.Seconds)))
		}
		list = append(list, s)
		names = append(names, j.name(st.Source), j.name(st.Target))
	}
	e2e := waitP50 + workP50
	var share float64
	if e2e > 0 {
		share = waitP50 / e2e
	}
	sev := SeverityInfo
	if e2e >= j.o.AsyncWarningMs {
		sev = SeverityWarning
	}
	ids := make([]string, len(stages))
	for i, st := range stages {
		ids[i] = st.Target
	}
	summary := fmt.Sprintf("messages from %s take %s ms end to end at p50 (at most %s ms at p95) through %d stages (%s), %s of it waiting in queues",
		j.name(producer), num(e2e), num(waitP95+workP95), len(stages), strings.Join(names, " → "), pct(share))
	if len(lagging) > 0 {
		summary += "; " + strings.Join(lagging, ", ")
	}
	j.add(Observation{
		ID: string(KindAsyncPipeline) + ":" + producer + "->" + strings.Join(ids, "->"), Kind: KindAsyncPipeline, Severity: sev,
		Subject: j.nodeSubject(producer),
		Evidence: map[string]any{"stages": list, "end_to_end_ms": map[string]any{"p50": round3(e2e), "p95_at_most": round3(waitP95 + workP95)},
			"queue_wait_share": round4(share)},
		Summary: summary,
		Why:     "a pipeline is as fresh as its slowest stage: messages wait in every queue along it, and a consumer falling behind risks the broker deleting what it has not read",
		Remedy:  "scale the consumer of the stage where messages wait most (more partitions and consumers, or batching), and alert on each group's time lag against the destination's retention",
	})
}

// --- 9: hubs and gateways --------------------------------------------------

// maxListed bounds the ids listed in one observation's evidence.
const maxListed = 20

// hubs reports nodes on most paths: high betweenness, or crossed by most
// entry traffic, with what depends on them.
func (j *judge) hubs() {
	var total int
	through := map[string]int{}
	entries := map[string][]string{}
	for _, p := range j.s.Paths {
		total += p.Traces
		seen := map[string]bool{p.Node: true}
		for _, sh := range p.Shares {
			seen[sh.Node] = true
		}
		for id := range seen {
			through[id] += p.Traces
			entries[id] = append(entries[id], p.Operation+" at "+j.name(p.Node))
		}
	}
	callers := map[string][]string{}
	for _, e := range j.s.Edges {
		if e.Source != e.Target {
			callers[e.Target] = append(callers[e.Target], e.Source)
		}
	}
	for _, n := range j.s.Nodes {
		if n.Kind != graph.NodeService || n.FanIn+n.FanOut < j.o.HubMinDegree {
			continue
		}
		var share float64
		if total > 0 {
			share = float64(through[n.ID]) / float64(total)
		}
		bw := !n.BetweennessSkipped && n.Betweenness >= j.o.HubMinBetweenness
		if !bw && share < j.o.HubMinEntryShare {
			continue
		}
		deps := upstream(n.ID, callers)
		ev := map[string]any{"fan_in": n.FanIn, "fan_out": n.FanOut, "entry_traffic_share": round4(share), "dependents": len(deps)}
		if !n.BetweennessSkipped {
			ev["betweenness"] = n.Betweenness
		}
		listed := deps[:min(len(deps), maxListed)]
		ev["depend_on_it"] = listed
		ent := entries[n.ID]
		slices.Sort(ent)
		if len(ent) > 0 {
			ev["entry_operations"] = ent[:min(len(ent), maxListed)]
		}
		var why []string
		if bw {
			why = append(why, fmt.Sprintf("on %s of the shortest paths between other nodes", pct(n.Betweenness)))
		}
		if share >= j.o.HubMinEntryShare {
			why = append(why, fmt.Sprintf("on the critical path of %s of the requests entering the system", pct(share)))
		}
		names := make([]string, len(listed))
		for i, id := range listed {
			names[i] = j.name(id)
		}
		dep := "no service calls it"
		if len(deps) > 0 {
			dep = fmt.Sprintf("%s on it (%s)", plural(len(deps), "node depends", "nodes depend"), strings.Join(names, ", "))
		}
		j.add(Observation{
			ID: string(KindHub) + ":" + n.ID, Kind: KindHub, Severity: SeverityInfo, Subject: j.nodeSubject(n.ID), Evidence: ev,
			Summary: fmt.Sprintf("%s is a hub: %s, with %s and %s; %s",
				j.name(n.ID), strings.Join(why, " and "), plural(n.FanIn, "caller", "callers"), plural(n.FanOut, "callee", "callees"), dep),
			Why:    "when a node on most paths fails or slows, most of the system does too: it needs the most capacity headroom, replicas and isolation",
			Remedy: "run it with redundancy across failure domains, keep it thin (no business logic), give its callers timeouts and breakers, and split it along the traffic it carries",
		})
	}
}

// upstream returns every node that reaches id through edges, sorted.
func upstream(id string, callers map[string][]string) []string {
	seen := map[string]bool{id: true}
	queue := []string{id}
	var out []string
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, c := range callers[n] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// --- formatting ------------------------------------------------------------

// plural writes n with the singular or plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// numUnit writes v (num) with the singular noun when it reads 1.
func numUnit(v float64, one, many string) string {
	if s := num(v); s != "1" {
		return s + " " + many
	}
	return "1 " + one
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// pct writes a ratio as a percentage with up to two decimals: 99.5%.
func pct(r float64) string { return num(r*100) + "%" }

// num writes v with at most three significant digits before the point
// and two after it, trailing zeros dropped.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	prec := 2
	if math.Abs(v) >= 100 {
		prec = 0
	} else if math.Abs(v) >= 10 {
		prec = 1
	}
	s := fmt.Sprintf("%.*f", prec, v)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
