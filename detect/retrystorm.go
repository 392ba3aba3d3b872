package detect

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// Defaults of RetryStormOptions.
const (
	DefaultRetryBudget           = 0.2
	DefaultRetryMinRetries       = 10
	DefaultCriticalAmplification = 4.0
)

// recentBudgetFactor is how many times the budget the retry ratio of the
// recent part of the window (graph.Edge.Recent) must exceed: a storm that
// just began shows there first and far above the budget, while a burst of
// retries that ends by itself (a replica restarting) may pass the budget
// over a few seconds but not by half again.
const recentBudgetFactor = 1.5

// RetryExitFraction sets the exit thresholds of a retry storm: a firing
// storm keeps firing while its retry ratio is above RetryExitFraction ×
// Budget with at least RetryExitFraction × MinRetries retries, and resolves
// (after the engine's keep-firing time) below either.
const RetryExitFraction = 0.8

const (
	// maxAttemptFactor caps the attempts per request of one edge, used
	// when (nearly) every call on it is a retry.
	maxAttemptFactor = 100.0
	// maxAmplification caps the compounded amplification so that evidence
	// stays finite (and JSON-encodable) on long chains.
	maxAmplification = 1e9
	// cancelEvery is how many loop iterations pass between checks of ctx.
	cancelEvery = 4096
)

// RetryStormOptions configure a RetryStorm detector. Zero (or negative)
// fields take the defaults.
type RetryStormOptions struct {
	// Budget is the retry ratio (retries / calls) above which a sync edge
	// storms (default 0.2).
	Budget float64 `yaml:"budget"`
	// MinRetries is how many retries an edge needs in the window before it
	// is judged (default 10); the recent part of the window
	// (graph.Edge.Recent) is judged from half as many.
	MinRetries uint64 `yaml:"min_retries"`
	// CriticalAmplification is the amplification factor at or above which a
	// storm is critical rather than a warning (default 4).
	CriticalAmplification float64 `yaml:"critical_amplification"`
	// Message is the template of the observations' summaries (text/template
	// syntax, see Messages; default "": the catalogue's).
	Message string `yaml:"message"`
}

// Validate reports an error wrapping ErrInvalidMessage when Message does
// not parse.
func (o RetryStormOptions) Validate() error {
	return validateMessage(finding.KindRetryStorm, o.Message)
}

// retryStormMessage is the data of a retry_storm summary template.
type retryStormMessage struct {
	Source        string              `doc:"the caller"`
	Target        string              `doc:"the callee"`
	Severity      string              `doc:"warning or critical"`
	RetryRatio    float64             `doc:"retries / calls, 0 to 1"`
	RetriesPerMin float64             `doc:"retries per minute seen in traces"`
	Amplification float64             `doc:"attempts reaching the callee per request entering at the root"`
	Budget        float64             `doc:"the budget option"`
	Metric        *retryMetricMessage `doc:"the retry counter reported as metrics, when only it shows the storm (traces do not); else nil"`
}

// retryMetricMessage is a retry counter in a retryStormMessage.
type retryMetricMessage struct {
	Name    string  `doc:"the series' name (Envoy cluster, resilience4j instance)"`
	Retries float64 `doc:"retries in the window"`
	Calls   float64 `doc:"calls in the window"`
	Seconds float64 `doc:"seconds the counters span"`
}

func (o RetryStormOptions) withDefaults() RetryStormOptions {
	if !(o.Budget > 0) {
		o.Budget = DefaultRetryBudget
	}
	if o.MinRetries == 0 {
		o.MinRetries = DefaultRetryMinRetries
	}
	if !(o.CriticalAmplification > 0) {
		o.CriticalAmplification = DefaultCriticalAmplification
	}
	return o
}

// RetryStorm detects retry storms (SPEC.md "retry_storm"): sync edges whose
// callers re-send more than a budget of their calls. Each observation
// carries the edge's amplification factor: the attempts reaching the callee
// per request entering the system at the root, compounded across hops.
type RetryStorm struct {
	opts RetryStormOptions
	msg  summaryTemplate
}

// NewRetryStorm returns a RetryStorm detector configured by o; zero fields
// take the defaults. o.Message is parsed here: when it does not (see
// Validate) the summaries are the default's, marked as failed.
func NewRetryStorm(o RetryStormOptions) *RetryStorm {
	return &RetryStorm{opts: o.withDefaults(), msg: newSummaryTemplate(finding.KindRetryStorm, o.Message)}
}

// Options returns the options in force, defaults filled in.
func (d *RetryStorm) Options() RetryStormOptions { return d.opts }

// Kind returns KindRetryStorm.
func (d *RetryStorm) Kind() finding.Kind { return finding.KindRetryStorm }

// stormLevel is how far a retry ratio is past the thresholds.
type stormLevel uint8

const (
	levelNone    stormLevel = iota
	levelSustain            // past the exit thresholds only
	levelPending            // the recent part past the budget, not yet past the recent bar
	levelEnter              // past the enter thresholds
)

// level judges retries out of calls against the enter and exit thresholds:
// minRetries and budget enter, RetryExitFraction of both keeps a storm.
// seen is the share of the calls actually seen (1, or an edge's sample
// ratio when its counts are estimates from sampled traces): the minimum
// guards the sample size, so it counts retries seen, not estimated (at 1%
// sampling one sampled retry stands for 100).
func (d *RetryStorm) level(retries, calls, minRetries, budget, seen float64) stormLevel {
	if !(calls > 0) {
		return levelNone
	}
	r := retries / calls
	n := retries * seen
	switch {
	case n >= minRetries && r > budget:
		return levelEnter
	case n >= math.Ceil(RetryExitFraction*minRetries) && r > RetryExitFraction*budget:
		return levelSustain
	}
	return levelNone
}

// retryCounts are the trace-side numbers a storm is judged on: the whole
// window's, or the recent part's (graph.Edge.Recent) when only it shows the
// storm.
type retryCounts struct {
	retries, calls uint64
	ratio          float64
	seconds        float64 // the span counted
	recent         bool
}

// traceCounts judges sync edge e's trace-side retries over the window and
// over its recent part, and returns the level and the counts that show it.
// The recent part reacts within seconds where a fresh storm is still
// diluted by the window's healthy minute. It needs half of MinRetries
// (rounded up), so that a storm at 1 request/s can fire within seconds
// while a single retry on a quiet edge never does, and half again the
// budget (recentBudgetFactor), so that a short burst does not. Past the
// budget alone it is levelPending: the hold starts there, so that a storm
// whose first seconds are still diluted by the calls made before it fires
// as soon as it passes the recent bar, while a burst that never passes
// that bar pages nobody.
func (d *RetryStorm) traceCounts(s *graph.Snapshot, e *graph.Edge) (stormLevel, retryCounts) {
	c := retryCounts{retries: e.Retries, calls: e.Requests, ratio: e.RetryRatio, seconds: s.WindowSeconds}
	seen := seenShare(e)
	lvl := d.level(float64(e.Retries), float64(e.Requests), float64(d.opts.MinRetries), d.opts.Budget, seen)
	if r := e.Recent; r != nil && r.Requests > 0 {
		minRecent := math.Ceil(float64(d.opts.MinRetries) / 2)
		rl := d.level(float64(r.Retries), float64(r.Requests), minRecent, recentBudgetFactor*d.opts.Budget, seen)
		if rl < levelEnter && d.level(float64(r.Retries), float64(r.Requests), minRecent, d.opts.Budget, seen) == levelEnter {
			rl = levelPending
		}
		if rl > lvl {
			lvl = rl
			c = retryCounts{retries: r.Retries, calls: r.Requests, ratio: round4(float64(r.Retries) / float64(r.Requests)), seconds: s.RecentSeconds, recent: true}
		}
	}
	return lvl, c
}

// Detect returns one observation per sync edge of s that storms: at least
// MinRetries retries in the window and a retry ratio above Budget, seen in
// traces or in a retry counter reported as metrics (Envoy
// upstream_rq_retry, resilience4j retry calls) joined to the edge from its
// service to the callee the series names, as breakers are. An edge past
// only the exit thresholds (RetryExitFraction of both) is reported with
// Observation.Sustain set: it keeps a firing storm firing but starts none.
// An edge whose recent part is past the budget but not past the bar the
// recent part needs to fire is reported with Observation.PendingOnly set:
// its storm is pending from then on, and fires at the first evaluation
// past the bar once the hold has run. The observations are ordered by
// edge id.
//
// Traces are judged over the whole window and over its recent part
// (graph.Edge.Recent, the newest graph.RecentBuckets buckets), which needs
// half of MinRetries:
// a storm that began seconds ago is still diluted in the window's minute.
//
// Evidence: "retry_ratio", "retries", "requests", "retries_per_s" of the
// source that shows the storm (traces, over the window or, with
// "over_seconds", over its recent part; or the metric series when only it
// is past the thresholds; the series, when past them, is also given whole
// under "metrics"), "budget", "amplification" and "chain". The edge's own
// attempt factor in the amplification is 1/(1 - retry ratio) of that same
// source, so the two never contradict each other. Severity is critical
// when the amplification is at least CriticalAmplification.
//
// Detect does not modify s. When ctx is done it stops and returns nil.
func (d *RetryStorm) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	if s == nil || ctx.Err() != nil {
		return nil
	}
	metric := d.metricSeries(s)
	type judged struct {
		lvl        stormLevel
		fromMetric bool
		counts     retryCounts
	}
	verdict := make([]judged, len(s.Edges))
	factor := make([]float64, len(s.Edges))
	for i := range s.Edges {
		e := &s.Edges[i]
		factor[i] = attemptFactor(e.Retries, e.Requests)
		if e.Kind != graph.EdgeSync {
			continue
		}
		tl, tc := d.traceCounts(s, e)
		factor[i] = attemptFactor(tc.retries, tc.calls)
		verdict[i].counts = tc
		var ml stormLevel
		if r := metric[i]; r != nil {
			ml = d.level(r.Retries, r.Calls, float64(d.opts.MinRetries), d.opts.Budget, 1)
		}
		if ml == levelNone {
			metric[i] = nil // below its own thresholds: not evidence
		}
		// The metric speaks when only it is past the thresholds the edge
		// is past; its ratio then sets the edge's attempt factor too.
		verdict[i].lvl, verdict[i].fromMetric = max(tl, ml), ml > tl
		if verdict[i].fromMetric {
			factor[i] = metricFactor(metric[i])
		}
	}
	amp, ok := amplify(ctx, s.Edges, factor)
	if !ok {
		return nil
	}
	var out []Observation
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		v := verdict[i]
		if v.lvl == levelNone {
			continue
		}
		o := d.observe(s, &s.Edges[i], &v.counts, amp.amp[i], amp.chain(s.Edges, i), metric[i], v.fromMetric)
		o.Sustain, o.PendingOnly = v.lvl == levelSustain, v.lvl == levelPending
		out = append(out, o)
	}
	return out
}

// metricSeries joins the retry counters reported as metrics to sync edges:
// a series is put on the edge from its service whose callee its name
// matches (as for breakers); when several land on one edge the one with the
// highest ratio is kept. Series with unknown calls, or naming no edge we
// know, are left out. The result is indexed like s.Edges (nil: none).
func (d *RetryStorm) metricSeries(s *graph.Snapshot) []*resilience.RetryRate {
	out := make([]*resilience.RetryRate, len(s.Edges))
	var bySource map[string][]int
	for ri := range s.RetryRates {
		r := &s.RetryRates[ri]
		if !(r.Calls > 0) || r.Retries < 0 {
			continue
		}
		if bySource == nil {
			bySource = map[string][]int{}
			for i := range s.Edges {
				if e := &s.Edges[i]; e.Kind == graph.EdgeSync {
					n := nodeName(s, e.Source)
					bySource[n] = append(bySource[n], i)
				}
			}
		}
		best := bestEdge(s, bySource[r.Service], r.Name)
		if best < 0 {
			continue // names no edge we know: nothing to put it on
		}
		if o := out[best]; o == nil || r.Retries/r.Calls > o.Retries/o.Calls {
			out[best] = r
		}
	}
	return out
}

// metricFactor is the attempts the callee sees per call the caller needs,
// from a retry counter: calls (attempts, retries included) / (calls -
// retries), at most maxAttemptFactor.
func metricFactor(r *resilience.RetryRate) float64 {
	if !(r.Calls > 0) || !(r.Retries > 0) {
		return 1
	}
	if r.Retries >= r.Calls {
		return maxAttemptFactor
	}
	return min(r.Calls/(r.Calls-r.Retries), maxAttemptFactor)
}

// retryMetricEvidence is the "metrics" evidence of retry counter r.
func retryMetricEvidence(r *resilience.RetryRate) map[string]any {
	return map[string]any{"name": r.Name, "retries": r.Retries, "calls": r.Calls, "retry_ratio": round4(r.Retries / r.Calls), "seconds": round4(r.Seconds)}
}

// observe reports the storm on sync edge e, seen in traces as c. r, when
// not nil, is the retry counter reported as metrics on the edge; fromMetric
// says that its numbers, not the traces', are the storm's.
func (d *RetryStorm) observe(s *graph.Snapshot, e *graph.Edge, c *retryCounts, amp float64, chain []string, r *resilience.RetryRate, fromMetric bool) Observation {
	src, dst := nodeName(s, e.Source), nodeName(s, e.Target)
	var perS float64
	if c.seconds > 0 {
		perS = float64(c.retries) / c.seconds
	}
	sev := finding.SeverityWarning
	if amp >= d.opts.CriticalAmplification {
		sev = finding.SeverityCritical
	}
	o := Observation{
		Kind:     finding.KindRetryStorm,
		Subject:  finding.Subject{Source: src, Target: dst, EdgeID: e.ID},
		Severity: sev,
		Evidence: map[string]any{
			"retry_ratio":   c.ratio,
			"retries":       c.retries,
			"requests":      c.calls,
			"retries_per_s": round4(perS),
			"budget":        d.opts.Budget,
			"amplification": round4(amp),
			"chain":         chain,
		},
	}
	if c.recent && !fromMetric {
		o.Evidence["over_seconds"] = round4(c.seconds) // the recent part of the window
	}
	msg := retryStormMessage{Source: src, Target: dst, Severity: sev.String(), RetryRatio: c.ratio,
		RetriesPerMin: perS * 60, Amplification: amp, Budget: d.opts.Budget}
	if r != nil {
		o.Evidence["metrics"] = retryMetricEvidence(r)
	}
	if fromMetric {
		ratio := round4(r.Retries / r.Calls)
		if r.Seconds > 0 {
			perS = r.Retries / r.Seconds
		}
		o.Evidence["retry_ratio"], o.Evidence["retries"], o.Evidence["requests"] = ratio, r.Retries, r.Calls
		o.Evidence["retries_per_s"] = round4(perS)
		msg.RetryRatio = ratio
		msg.Metric = &retryMetricMessage{Name: r.Name, Retries: r.Retries, Calls: r.Calls, Seconds: r.Seconds}
	}
	o.Summary = d.msg.render(msg)
	return o
}

// nodeName returns the name of node id in s, or the id when s lacks it.
func nodeName(s *graph.Snapshot, id string) string {
	if n, ok := s.Node(id); ok && n.Name != "" {
		return n.Name
	}
	return id
}

// attemptFactor is the attempts the callee of a sync edge sees per call the
// caller needs: calls / (calls - retries), at most maxAttemptFactor.
func attemptFactor(retries, calls uint64) float64 {
	if retries == 0 || calls == 0 {
		return 1
	}
	if retries >= calls {
		return maxAttemptFactor
	}
	return min(float64(calls)/float64(calls-retries), maxAttemptFactor)
}

// amplification holds, per edge, the amplification factor and, per node, the
// incoming sync edge of the chain that maximises the amplification reaching
// the node.
type amplification struct {
	src  []int32   // per edge: source node index, -1 for non-sync edges
	amp  []float64 // per edge: amplification (1 for non-sync edges)
	pred []int32   // per node: best incoming chain edge, -1 at an entry
}

// amplify computes the amplification of every sync edge with one pass over
// a topological order of the sync subgraph; factor holds each edge's attempt
// factor (indexed like edges). The amplification of an edge is
// the largest product of attempt factors along a chain of sync edges from an
// entry (a node with no incoming sync edge, cycle edges aside) down to and
// including the edge; among chains of equal product the shortest wins. Edges
// within a strongly connected component do not carry the product onwards:
// their own amplification is that reaching their source times their own
// factor. It reports false when ctx was done first.
func amplify(ctx context.Context, edges []graph.Edge, factor []float64) (amplification, bool) {
	a := amplification{src: make([]int32, len(edges)), amp: make([]float64, len(edges))}
	dst := make([]int32, len(edges))
	ids := make(map[string]int32)
	intern := func(id string) int32 {
		if i, ok := ids[id]; ok {
			return i
		}
		i := int32(len(ids))
		ids[id] = i
		return i
	}
	for i := range edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return a, false
		}
		a.amp[i] = 1
		if e := &edges[i]; e.Kind == graph.EdgeSync {
			a.src[i], dst[i] = intern(e.Source), intern(e.Target)
		} else {
			a.src[i], dst[i] = -1, -1
		}
	}
	n := len(ids)

	// Out-adjacency in compressed rows; edges keep their input order.
	off := make([]int32, n+1)
	for i, s := range a.src {
		if s >= 0 {
			off[a.src[i]+1]++
		}
	}
	for v := range n {
		off[v+1] += off[v]
	}
	adj := make([]int32, off[n])
	fill := slices.Clone(off[:n])
	for i, s := range a.src {
		if s >= 0 {
			adj[fill[s]] = int32(i)
			fill[s]++
		}
	}

	comp, order, ok := tarjan(ctx, n, off, adj, dst)
	if !ok {
		return a, false
	}

	// Tarjan emits components in reverse topological order.
	best := make([]float64, n)
	hops := make([]int32, n)
	a.pred = make([]int32, n)
	for v := range n {
		best[v], a.pred[v] = 1, -1
	}
	for k := len(order) - 1; k >= 0; k-- {
		if k%cancelEvery == 0 && ctx.Err() != nil {
			return a, false
		}
		v := order[k]
		for _, ei := range adj[off[v]:off[v+1]] {
			x := min(best[v]*factor[ei], maxAmplification)
			a.amp[ei] = x
			w := dst[ei]
			if comp[w] == comp[v] {
				continue // a cycle edge: the product does not run on
			}
			h := hops[v] + 1
			if a.pred[w] < 0 || x > best[w] || (x == best[w] && h < hops[w]) {
				best[w], hops[w], a.pred[w] = x, h, ei
			}
		}
	}
	return a, true
}

// chain returns the ids of the edges of the maximising chain ending in edge
// i, entry first.
func (a *amplification) chain(edges []graph.Edge, i int) []string {
	if a.src[i] < 0 {
		return []string{edges[i].ID}
	}
	var rev []string
	rev = append(rev, edges[i].ID)
	for p := a.pred[a.src[i]]; p >= 0; p = a.pred[a.src[p]] {
		rev = append(rev, edges[p].ID)
	}
	slices.Reverse(rev)
	return rev
}

// tarjan finds the strongly connected components of the graph of n nodes
// with out-edges adj[off[v]:off[v+1]] leading to dst[edge]. It returns each
// node's component and the nodes in the order their components complete
// (reverse topological order of the components). It is iterative, so deep
// graphs do not grow the goroutine stack. It reports false when ctx was done
// first.
func tarjan(ctx context.Context, n int, off, adj, dst []int32) (comp, order []int32, ok bool) {
	type frame struct{ v, next int32 }
	var (
		index   = make([]int32, n) // discovery number + 1; 0: unvisited
		low     = make([]int32, n)
		onStack = make([]bool, n)
		stack   []int32
		call    []frame
		counter int32
		ncomp   int32
		steps   int
	)
	comp = make([]int32, n)
	order = make([]int32, 0, n)
	visit := func(v int32) {
		counter++
		index[v], low[v] = counter, counter
		stack = append(stack, v)
		onStack[v] = true
		call = append(call, frame{v: v, next: off[v]})
	}
	for root := range int32(n) {
		if index[root] != 0 {
			continue
		}
		visit(root)
		for len(call) > 0 {
			if steps++; steps%cancelEvery == 0 && ctx.Err() != nil {
				return nil, nil, false
			}
			f := &call[len(call)-1]
			v := f.v
			if f.next < off[v+1] {
				w := dst[adj[f.next]]
				f.next++
				if index[w] == 0 {
					visit(w)
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				if u := call[len(call)-1].v; low[v] < low[u] {
					low[u] = low[v]
				}
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					order = append(order, w)
					if w == v {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp, order, true
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// formatNum formats x for a summary: whole numbers from 100, else one or
// two decimals.
func formatNum(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 1:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}
