package critpath

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/seed-a49a8342/cartograph/graph"
)

// The sampler also tells how services call each other within a request,
// which the edges (calls counted one by one) cannot: how many calls one
// parent span makes to the same callee operation (an N+1 loop makes
// dozens), and how a caller repeats a call that failed (at once, or after
// a growing delay). It reads them from the complete traces it assembles
// anyway, once a trace is analysed: off the ingest hot path of decoding
// and pairing, at the cost of one sort of the trace's client spans.

// DefaultMaxCallPatterns bounds the call patterns one time bucket keeps
// (Options.MaxCallPatterns).
const DefaultMaxCallPatterns = 10_000

// MaxAttempts is the last class of CallPattern.Attempts: that many
// attempts or more.
const MaxAttempts = 10

// CallPattern is what the sampled complete traces of a window tell of the
// calls from one service to one operation of one callee.
//
// Calls are grouped by the span that makes them (their parent). Within a
// group, a call that starts after an earlier one to the same operation
// failed and ended is an attempt repeating it (a retry); a call with its
// repeats is one request, so a parent that makes ten calls, one of them
// retried twice, makes ten requests in twelve calls.
type CallPattern struct {
	Caller    string // node id of the calling service
	Callee    string // node id of the service answering, else of the peer the client span names
	Operation string // the client spans' name
	// Parents counts the spans that made such calls; Requests the
	// requests they made (calls less repeats); Calls every call.
	Parents, Requests, Calls int
	// Failed counts the calls that failed.
	Failed int
	// Detached counts the calls whose answer came after the span that
	// made them had ended: the caller replied without waiting for it
	// (fire-and-forget), so the call could have been a message.
	Detached int
	// PerParent is the distribution of requests per parent span.
	PerParent Dist
	// Retried counts the requests repeated at least once; Repeats the
	// repeating calls.
	Retried, Repeats int
	// GapMs is the distribution of the wait between a failed attempt's end
	// and the start of its repeat, ms; nil without repeats.
	GapMs *Dist
	// Growing counts, among requests of three attempts or more
	// (Multi), those whose second wait was at least 1.5 times their
	// first: exponential backoff.
	Growing, Multi int
	// Attempts[k] counts the requests made in k+1 attempts (the last
	// class: MaxAttempts or more).
	Attempts [MaxAttempts]int
}

// Dist summarises a distribution.
type Dist struct {
	P50, P95, Min, Max, Mean float64
}

// callRec is one client call of a trace being analysed.
type callRec struct {
	parent int32
	caller graph.NodeKey
	callee graph.NodeKey
	op     string
	start  int64
	end    int64
	failed bool
	// detached: the call ended after its parent span did.
	detached bool
}

// callKey identifies a CallPattern. Node ids are made only when patterns
// are read.
type callKey struct {
	caller, callee graph.NodeKey
	op             string
}

// callAgg accumulates one call pattern in one time bucket.
type callAgg struct {
	parents, requests, calls, failed int64
	detached                         int64
	retried, repeats                 int64
	growing, multi                   int64
	attempts                         [MaxAttempts]int64
	// perParent[n] counts the parents that made n requests (the last
	// class: perParentClasses-1 or more; maxPer tells the largest).
	perParent                      [perParentClasses]int64
	gaps                           *ddsketch.DDSketch // nil until a repeat
	minPer, maxPer, minGap, maxGap float64
}

// perParentClasses is the number of exact classes of requests per parent;
// beyond, parents are counted together (their quantiles read as the
// largest count seen).
const perParentClasses = 64

// callBucket holds the call patterns of the traces completed in one epoch.
type callBucket struct {
	epoch int64
	m     map[callKey]*callAgg
}

// collectCalls lists the client calls of the trace just analysed, sorted
// by parent, callee, operation and start. It keeps the calls whose parent
// is in the trace and whose callee is known.
func (a *analyzer) collectCalls(t *trace) {
	a.calls = a.calls[:0]
	spans := t.spans
	for i := range spans {
		sp := &spans[i]
		if sp.kind != graph.SpanClient || a.parent[i] < 0 {
			continue
		}
		c := callRec{parent: a.parent[i], op: t.str(sp.op), start: sp.start, end: sp.endAt(), failed: sp.failed,
			detached: sp.endAt() > spans[a.parent[i]].endAt(),
			caller:   graph.NodeKey{Kind: graph.NodeService, Group: t.str(sp.namespace), Name: t.str(sp.service)}}
		if srv := a.server(spans, int32(i)); srv >= 0 {
			c.callee = graph.NodeKey{Kind: graph.NodeService, Group: t.str(spans[srv].namespace), Name: t.str(spans[srv].service)}
		} else if sp.calleeKind != 0 {
			c.callee = graph.NodeKey{Kind: sp.calleeKind, Group: t.str(sp.calleeGroup), Name: t.str(sp.calleeName)}
		} else {
			continue
		}
		a.calls = append(a.calls, c)
	}
	slices.SortFunc(a.calls, func(x, y callRec) int {
		if c := cmp.Compare(x.parent, y.parent); c != 0 {
			return c
		}
		if c := cmpKey(x.callee, y.callee); c != 0 {
			return c
		}
		if c := cmpKey(x.caller, y.caller); c != 0 {
			return c
		}
		if c := strings.Compare(x.op, y.op); c != 0 {
			return c
		}
		return cmp.Compare(x.start, y.start)
	})
}

func cmpKey(a, b graph.NodeKey) int {
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Group, b.Group); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// recordCallsLocked adds the calls collectCalls listed to the bucket of
// epoch. Caller holds mu.
func (r *results) recordCallsLocked(calls []callRec, epoch int64) {
	if len(calls) == 0 {
		return
	}
	b := r.callBucket(epoch)
	for i := 0; i < len(calls); {
		j := i + 1
		for j < len(calls) && calls[j].parent == calls[i].parent && calls[j].callee == calls[i].callee &&
			calls[j].caller == calls[i].caller && calls[j].op == calls[i].op {
			j++
		}
		r.recordGroup(b, calls[i:j])
		i = j
	}
}

// callBucket returns the bucket of epoch, resetting the slot that held an
// older one. Caller holds mu.
func (r *results) callBucket(epoch int64) *callBucket {
	if r.calls == nil {
		r.calls = make([]callBucket, r.s.slots)
		for i := range r.calls {
			r.calls[i].epoch = math.MinInt64
		}
	}
	b := &r.calls[int(uint64(epoch)%uint64(len(r.calls)))]
	if b.epoch != epoch {
		b.epoch = epoch
		if b.m == nil {
			b.m = make(map[callKey]*callAgg)
		}
		clear(b.m)
	}
	return b
}

// recordGroup adds the calls of one parent to one callee operation,
// sorted by start. Caller holds mu.
func (r *results) recordGroup(b *callBucket, g []callRec) {
	k := callKey{caller: g[0].caller, callee: g[0].callee, op: g[0].op}
	agg := b.m[k]
	if agg == nil {
		if len(b.m) >= r.s.o.MaxCallPatterns {
			r.s.m.callsDropped.Inc()
			return
		}
		agg = &callAgg{minPer: math.Inf(1), minGap: math.Inf(1)}
		b.m[k] = agg
	}
	agg.parents++
	agg.calls += int64(len(g))
	requests := 0
	var gaps [2]float64 // the first two waits of the request in progress
	attempts := 0
	closeRequest := func() {
		if attempts == 0 {
			return
		}
		agg.attempts[min(attempts, MaxAttempts)-1]++
		if attempts >= 3 {
			agg.multi++
			if gaps[1] >= 1.5*gaps[0] && gaps[1] > 0 {
				agg.growing++
			}
		}
		if attempts > 1 {
			agg.retried++
		}
	}
	for i := range g {
		c := &g[i]
		if c.failed {
			agg.failed++
		}
		if c.detached {
			agg.detached++
		}
		if i > 0 && g[i-1].failed && c.start >= g[i-1].end {
			gap := float64(c.start-g[i-1].end) / 1e6
			if attempts <= 2 {
				gaps[attempts-1] = gap
			}
			attempts++
			agg.repeats++
			if agg.gaps == nil {
				agg.gaps = ddsketch.NewDDSketchFromStoreProvider(r.s.mapping, store.BufferedPaginatedStoreConstructor)
			}
			_ = agg.gaps.Add(gap) // non-negative finite: cannot fail
			agg.minGap, agg.maxGap = min(agg.minGap, gap), max(agg.maxGap, gap)
			continue
		}
		closeRequest()
		requests++
		attempts, gaps = 1, [2]float64{}
	}
	closeRequest()
	agg.requests += int64(requests)
	agg.perParent[min(requests, perParentClasses-1)]++
	per := float64(requests)
	agg.minPer, agg.maxPer = min(agg.minPer, per), max(agg.maxPer, per)
}

// callPatterns merges the call buckets with epochs in [from, to].
func (r *results) callPatterns(from, to int64) []CallPattern {
	r.mu.Lock()
	defer r.mu.Unlock()
	type merged struct {
		agg  callAgg
		gaps *ddsketch.DDSketch
	}
	all := map[callKey]*merged{}
	for i := range r.calls {
		b := &r.calls[i]
		if b.epoch < from || b.epoch > to {
			continue
		}
		for k, a := range b.m {
			m := all[k]
			if m == nil {
				m = &merged{agg: *a}
				if a.gaps != nil {
					m.gaps = a.gaps.Copy()
				}
				all[k] = m
				continue
			}
			x := &m.agg
			x.parents += a.parents
			x.requests += a.requests
			x.calls += a.calls
			x.failed += a.failed
			x.detached += a.detached
			x.retried += a.retried
			x.repeats += a.repeats
			x.growing += a.growing
			x.multi += a.multi
			for j := range x.attempts {
				x.attempts[j] += a.attempts[j]
			}
			x.minPer, x.maxPer = min(x.minPer, a.minPer), max(x.maxPer, a.maxPer)
			x.minGap, x.maxGap = min(x.minGap, a.minGap), max(x.maxGap, a.maxGap)
			for j, n := range a.perParent {
				x.perParent[j] += n
			}
			if a.gaps != nil {
				if m.gaps == nil {
					m.gaps = a.gaps.Copy()
				} else {
					_ = m.gaps.MergeWith(a.gaps)
				}
			}
		}
	}
	out := make([]CallPattern, 0, len(all))
	for k, m := range all {
		x := &m.agg
		p := CallPattern{
			Caller: r.id(k.caller), Callee: r.id(k.callee), Operation: k.op,
			Parents: int(x.parents), Requests: int(x.requests), Calls: int(x.calls), Failed: int(x.failed), Detached: int(x.detached),
			Retried: int(x.retried), Repeats: int(x.repeats), Growing: int(x.growing), Multi: int(x.multi),
			PerParent: perParentDist(x),
		}
		for j, n := range x.attempts {
			p.Attempts[j] = int(n)
		}
		if m.gaps != nil {
			d := distOf(m.gaps, x.minGap, x.maxGap, m.gaps.GetSum()/m.gaps.GetCount())
			p.GapMs = &d
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b CallPattern) int {
		if c := strings.Compare(a.Caller, b.Caller); c != 0 {
			return c
		}
		if c := strings.Compare(a.Callee, b.Callee); c != 0 {
			return c
		}
		return strings.Compare(a.Operation, b.Operation)
	})
	return out
}

// perParentDist reads the distribution of requests per parent from its
// classes: exact below perParentClasses-1.
func perParentDist(x *callAgg) Dist {
	d := Dist{Min: x.minPer, Max: x.maxPer, Mean: round3(float64(x.requests) / float64(max(x.parents, 1)))}
	q := func(p float64) float64 {
		rank := int64(math.Ceil(p * float64(x.parents)))
		var cum int64
		for n, c := range x.perParent {
			if cum += c; cum >= max(rank, 1) {
				if n == perParentClasses-1 {
					return x.maxPer
				}
				return float64(n)
			}
		}
		return x.maxPer
	}
	d.P50, d.P95 = q(0.5), q(0.95)
	return d
}

func distOf(sk *ddsketch.DDSketch, lo, hi, mean float64) Dist {
	d := Dist{Min: round3(lo), Max: round3(hi), Mean: round3(mean)}
	if q, err := sk.GetValuesAtQuantiles([]float64{0.5, 0.95}); err == nil {
		// The sketch's relative error must not put a quantile outside
		// what was seen (5 calls per parent read as 5.04).
		d.P50, d.P95 = round3(min(max(q[0], lo), hi)), round3(min(max(q[1], lo), hi))
	}
	return d
}

// Calls completes the traces that have gone idle, then returns the call
// patterns of the traces completed in the last window (at most
// Options.Window; 0 or less: Options.Window), sorted by caller, callee and
// operation. The result is the caller's.
func (s *Sampler) Calls(window time.Duration) []CallPattern {
	now := s.o.Now().UnixNano()
	s.complete(now)
	if window <= 0 || window > s.o.Window {
		window = s.o.Window
	}
	n := int64((window + s.o.Bucket - 1) / s.o.Bucket)
	cur := s.epoch(now)
	return s.res.callPatterns(cur-n, cur)
}
