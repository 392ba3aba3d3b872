package detect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// BucketSource hands on the buckets of the edges from the client node
// that closed after a bucket start (graph.Graph.ClosedEntryBuckets): each
// bucket's calls once, as the graph counted them.
type BucketSource interface {
	ClosedEntryBuckets(after time.Time) ([]graph.EdgeBucket, time.Time)
}

// EdgeHistory reads stored edge buckets (storage.Storage.Edges): what
// SLOBurn.Seed fills its windows from after a restart.
type EdgeHistory interface {
	Edges(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error)
}

// maxSLOSlots bounds the slots of one objective's ring: the longest window
// is cut into at most this many (5 s slots for 6 h windows).
const maxSLOSlots = 4320

// SLOBurnOptions configure an SLOBurn detector.
type SLOBurnOptions struct {
	// Config are the objectives and windows (ParseSLOConfig fills its
	// defaults). Required.
	Config SLOConfig
	// Buckets gives each evaluation the buckets closed since the last
	// (the live graph). Required.
	Buckets BucketSource
	// Bucket is the graph's bucket width (default 5s): a ring slot is a
	// whole number of them.
	Bucket     time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// SLOBurn judges service level objectives per entry point with the
// multi-window, multi-burn-rate alerts of the Google SRE workbook: for
// each objective it keeps a ring of good and bad request counts per slot,
// fed from the graph's closed buckets of the calls the client node makes
// to the entry point, and reports a slo_burn condition on the entry point
// while any pair of windows burns the error budget faster than its
// factor. Detect is called from one goroutine at a time (the Engine's);
// Seed before the first Detect; the metrics read under mu.
type SLOBurn struct {
	o     SLOBurnOptions
	slot  time.Duration
	slots int

	mu        sync.Mutex
	objs      []*sloState
	byService map[string][]*sloState // objectives of whole entry points
	// byOp holds the objectives of one entry operation, by service name;
	// read without mu (never written after NewSLOBurn).
	byOp    map[string][]*sloState
	cursor  time.Time // newest bucket start taken
	started time.Time

	burnDesc, budgetDesc, objDesc *prometheus.Desc
}

// sloState is one objective's ring and last evaluation.
type sloState struct {
	obj Objective
	// ring: slot epoch (start / slot width) per position, good and bad
	// requests in it; float so that stored rows wider than a slot spread
	// over the slots they cover.
	ep          []int64
	total, bad  []float64
	entry       graph.NodeKey // the entry point seen with the most calls
	entryCalls  float64
	seen        bool
	warned      bool
	last        sloEval
	lastUpdated bool
}

// sloEval is one objective's figures at an evaluation.
type sloEval struct {
	// per window length: requests, bad requests, burn rate
	total, bad, burn map[time.Duration]float64
	fired            []BurnWindow
	budgetRemaining  float64
}

// NewSLOBurn returns an SLOBurn detector for o.
func NewSLOBurn(o SLOBurnOptions) (*SLOBurn, error) {
	if o.Buckets == nil {
		return nil, errors.New("slo: Options.Buckets is required")
	}
	if o.Bucket <= 0 {
		o.Bucket = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Config = o.Config.withDefaults()
	if err := o.Config.Validate(len(o.Config.Objectives)); err != nil {
		return nil, fmt.Errorf("slo: %w", err)
	}
	longest := o.Config.longest()
	slot := o.Bucket
	if n := (longest + slot - 1) / slot; n > maxSLOSlots {
		k := (longest/maxSLOSlots + o.Bucket - 1) / o.Bucket // whole buckets a slot
		slot = k * o.Bucket
	}
	d := &SLOBurn{o: o, slot: slot, slots: int((longest+slot-1)/slot) + 1, started: o.Now(), byService: map[string][]*sloState{}, byOp: map[string][]*sloState{}}
	for _, obj := range o.Config.Objectives {
		s := &sloState{obj: obj, ep: make([]int64, d.slots), total: make([]float64, d.slots), bad: make([]float64, d.slots)}
		for i := range s.ep {
			s.ep[i] = -1
		}
		d.objs = append(d.objs, s)
		if obj.Operation != "" {
			d.byOp[obj.Service] = append(d.byOp[obj.Service], s)
			continue
		}
		d.byService[obj.Service] = append(d.byService[obj.Service], s)
	}
	d.burnDesc = prometheus.NewDesc("cartograph_slo_burn_rate",
		"Error budget burn rate of each objective over each window (1: the budget lasts exactly the period).",
		[]string{"objective", "service", "window"}, nil)
	d.budgetDesc = prometheus.NewDesc("cartograph_slo_error_budget_remaining",
		"Share of the period's error budget left at the rate the longest window spent it (estimate: the collector keeps only the longest window).",
		[]string{"objective", "service"}, nil)
	d.objDesc = prometheus.NewDesc("cartograph_slo_objectives",
		"Objectives of --slo-config, by whether their entry point has carried a call (unseen: check the objective's service and namespace).",
		[]string{"entry"}, nil)
	if o.Registerer != nil {
		if err := o.Registerer.Register(sloCollector{d}); err != nil {
			return nil, fmt.Errorf("slo: register metrics: %w", err)
		}
	}
	return d, nil
}

// Kind implements Detector.
func (d *SLOBurn) Kind() finding.Kind { return finding.KindSLOBurn }

// Slot is the width of one slot of the rings: the graph's bucket, or a
// whole number of them when the longest window would need more than
// maxSLOSlots.
func (d *SLOBurn) Slot() time.Duration { return d.slot }

// Seed fills the windows from stored history, so that a restart does not
// empty them: the edge buckets of the longest window before now, read in
// chunks (a minute each over the last hour, ten minutes before). The
// live graph takes over after the newest bucket stored. Call it before
// the first Detect.
func (d *SLOBurn) Seed(ctx context.Context, h EdgeHistory) (int, error) {
	now := d.o.Now()
	from := now.Add(-d.o.Config.longest()).Truncate(d.slot)
	n := 0
	for t := from; t.Before(now); {
		step := 10 * time.Minute
		if now.Sub(t) <= time.Hour {
			step = time.Minute
		}
		to := t.Add(max(step, d.slot))
		if to.After(now) {
			to = now
		}
		bs, err := h.Edges(ctx, t, to)
		if err != nil {
			return n, fmt.Errorf("slo: seed [%v, %v): %w", t, to, err)
		}
		d.mu.Lock()
		for i := range bs {
			if d.take(&bs[i]) {
				n++
			}
		}
		d.mu.Unlock()
		t = to
	}
	if n > 0 {
		// The stored history ends at the last closed bucket; the live
		// graph (whose window storage.Restore filled from the same rows)
		// hands on the buckets that close from now on.
		d.mu.Lock()
		if c := now.Truncate(d.o.Bucket).Add(-d.o.Bucket); c.After(d.cursor) {
			d.cursor = c
		}
		d.mu.Unlock()
	}
	return n, nil
}

// Detect implements Detector: it takes the buckets closed since the last
// evaluation into the rings, evaluates every pair of windows of every
// objective, and reports one condition per entry point with an objective
// burning, listing each.
func (d *SLOBurn) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	bs, cur := d.o.Buckets.ClosedEntryBuckets(d.cursor)
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range bs {
		d.take(&bs[i])
	}
	if cur.After(d.cursor) {
		d.cursor = cur
	}
	end := d.cursor.Add(d.o.Bucket) // the end of the newest closed bucket
	// Entry operations are counted as their spans arrive: their windows
	// end where the current bucket begins.
	opEnd := d.o.Now().Truncate(d.o.Bucket)
	byEntry := map[graph.NodeKey][]*sloState{}
	var order []graph.NodeKey
	for _, st := range d.objs {
		switch {
		case st.obj.Operation != "":
			st.evaluate(d, opEnd)
		case d.cursor.IsZero():
			continue
		default:
			st.evaluate(d, end)
		}
		d.warnUnmatched(st, s)
		if len(st.last.fired) == 0 {
			continue
		}
		if _, ok := byEntry[st.entry]; !ok {
			order = append(order, st.entry)
		}
		byEntry[st.entry] = append(byEntry[st.entry], st)
	}
	var out []Observation
	for _, k := range order {
		out = append(out, d.observe(k, byEntry[k]))
	}
	return out
}

// CountsOperations reports whether an objective names an entry operation:
// only then does ObserveSpans need the spans.
func (d *SLOBurn) CountsOperations() bool { return len(d.byOp) > 0 }

// ObserveSpans counts the root server spans of the entry operations that
// objectives name into their rings, at the slot of each span's start:
// each span once, as the graph passes them on after leaving out re-sent
// ones (graph.PathSource). A span that arrives late still lands in its
// own slot, and counts from the next evaluation. Safe for concurrent use;
// it takes mu only for a batch holding such a span.
func (d *SLOBurn) ObserveSpans(spans []graph.Span) {
	if len(d.byOp) == 0 {
		return
	}
	locked := false
	for i := range spans {
		sp := &spans[i]
		if sp.Parent != (graph.SpanID{}) || sp.Kind != graph.SpanServer {
			continue
		}
		sts := d.byOp[sp.Service]
		for _, st := range sts {
			if st.obj.Operation != sp.Operation || st.obj.Namespace != "" && st.obj.Namespace != sp.Namespace {
				continue
			}
			if !locked {
				d.mu.Lock()
				defer d.mu.Unlock()
				locked = true
			}
			n := max(sp.Weight, 1)
			bad := 0.0
			switch st.obj.SLI {
			case SLIAvailability:
				if sp.Error {
					bad = n
				}
			case SLILatency:
				if time.Duration(sp.End-sp.Start) > time.Duration(st.obj.Threshold) {
					bad = n
				}
			}
			st.seen = true
			if st.entry == (graph.NodeKey{}) {
				st.entry = graph.NodeKey{Kind: graph.NodeService, Group: sp.Namespace, Name: sp.Service}
			}
			d.spread(st, time.Unix(0, sp.Start-sp.Start%int64(d.slot)), d.slot, n, bad)
		}
	}
}

// take adds one edge bucket to the rings of the objectives whose entry
// point it is a call into; d.mu must be held.
func (d *SLOBurn) take(b *graph.EdgeBucket) bool {
	if b.Source.Kind != graph.NodeClient || b.Target.Kind != graph.NodeService {
		return false
	}
	took := false
	for _, st := range d.byService[b.Target.Name] {
		if st.obj.Namespace != "" && b.Target.Group != st.obj.Namespace {
			continue
		}
		var total, bad float64
		switch st.obj.SLI {
		case SLIAvailability:
			total, bad = float64(b.Requests), float64(b.Errors)
		case SLILatency:
			bins := b.Server
			if bins.Empty() {
				bins = b.Client
			}
			limit := float64(time.Duration(st.obj.Threshold)) / float64(time.Millisecond)
			bins.Each(func(ms float64, n uint64) {
				total += float64(n)
				if ms > limit {
					bad += float64(n)
				}
			})
		}
		if total == 0 {
			continue
		}
		st.seen, took = true, true
		if b.Target != st.entry {
			if calls := float64(b.Requests); calls > st.entryCalls || st.entry == (graph.NodeKey{}) {
				st.entry, st.entryCalls = b.Target, calls
			}
		}
		d.spread(st, b.Start, max(b.Width, d.o.Bucket), total, bad)
	}
	return took
}

// spread adds total and bad requests of [start, start+width) into st's
// ring, evenly over the slots the span covers.
func (d *SLOBurn) spread(st *sloState, start time.Time, width time.Duration, total, bad float64) {
	first := start.UnixNano() / int64(d.slot)
	last := (start.Add(width).UnixNano() - 1) / int64(d.slot)
	n := float64(last - first + 1)
	for ep := first; ep <= last; ep++ {
		i := int(ep % int64(d.slots))
		if st.ep[i] != ep {
			if st.ep[i] > ep {
				continue // older than the ring holds
			}
			st.ep[i], st.total[i], st.bad[i] = ep, 0, 0
		}
		st.total[i] += total / n
		st.bad[i] += bad / n
	}
}

// evaluate sums st's ring over every window ending at end and judges each
// pair.
func (st *sloState) evaluate(d *SLOBurn, end time.Time) {
	lastEp := (end.UnixNano() - 1) / int64(d.slot)
	lens := make([]time.Duration, 0, 2*len(d.o.Config.Windows))
	for _, w := range d.o.Config.Windows {
		lens = append(lens, time.Duration(w.Long), time.Duration(w.Short))
	}
	slices.Sort(lens)
	lens = slices.Compact(lens)
	ev := sloEval{total: map[time.Duration]float64{}, bad: map[time.Duration]float64{}, burn: map[time.Duration]float64{}}
	// Walk the ring back from the newest slot once, noting the sums as
	// each window's length is reached: the slots of a window of length L
	// are the ceil(L/slot) newest.
	span := make([]int64, len(lens))
	for k, l := range lens {
		span[k] = int64((l + d.slot - 1) / d.slot)
	}
	var total, bad float64
	k, n := 0, int64(d.slots)
	i := int(((lastEp % n) + n) % n)
	for back := int64(0); k < len(lens); back++ {
		for k < len(lens) && back >= span[k] {
			ev.total[lens[k]], ev.bad[lens[k]] = total, bad
			k++
		}
		if k >= len(lens) {
			break
		}
		if st.ep[i] == lastEp-back {
			total += st.total[i]
			bad += st.bad[i]
		}
		if i--; i < 0 {
			i = d.slots - 1
		}
	}
	budget := st.obj.budget()
	for l, t := range ev.total {
		if t > 0 {
			ev.burn[l] = ev.bad[l] / t / budget
		}
	}
	for _, w := range d.o.Config.Windows {
		long, short := time.Duration(w.Long), time.Duration(w.Short)
		if ev.total[short] < float64(d.o.Config.MinRequests) {
			continue
		}
		if ev.burn[long] > w.Factor && ev.burn[short] > w.Factor {
			ev.fired = append(ev.fired, w)
		}
	}
	longest := d.o.Config.longest()
	ev.budgetRemaining = 1 - ev.burn[longest]*float64(longest)/float64(time.Duration(st.obj.Period))
	st.last, st.lastUpdated = ev, true
}

// warnUnmatched logs once an objective whose entry point has carried no
// call a minute after start, naming the entry points the graph knows.
func (d *SLOBurn) warnUnmatched(st *sloState, s *graph.Snapshot) {
	if st.seen || st.warned || d.o.Now().Sub(d.started) < time.Minute {
		return
	}
	st.warned = true
	var known []string
	if s != nil {
		for _, e := range s.Edges {
			if n, ok := s.Node(e.Source); ok && n.Kind == graph.NodeClient {
				if t, ok := s.Node(e.Target); ok && !slices.Contains(known, t.Name) && len(known) < 10 {
					known = append(known, t.Name)
				}
			}
		}
	}
	slices.Sort(known)
	d.o.Logger.Warn("slo: no calls into the objective's entry point yet; check its service and namespace",
		"objective", st.obj.Name, "service", st.obj.Service, "namespace", st.obj.Namespace, "entry_points_seen", known)
}

// observe makes the condition of one entry point from its burning
// objectives: the worst pair's severity, a summary naming the fastest
// burn, and every objective's figures in evidence.
func (d *SLOBurn) observe(entry graph.NodeKey, sts []*sloState) Observation {
	slices.SortFunc(sts, func(a, b *sloState) int {
		return cmp.Or(cmp.Compare(b.worst().Severity, a.worst().Severity), cmp.Compare(b.topBurn(), a.topBurn()), cmp.Compare(a.obj.Name, b.obj.Name))
	})
	sev := finding.SeverityWarning
	objs := make([]any, 0, len(sts))
	for _, st := range sts {
		sev = max(sev, st.worst().Severity)
		objs = append(objs, st.evidence(d))
	}
	top := sts[0]
	w := top.worst()
	ratio := 0.0
	if t := top.last.total[time.Duration(w.Long)]; t > 0 {
		ratio = top.last.bad[time.Duration(w.Long)] / t
	}
	what := "failing"
	if top.obj.SLI == SLILatency {
		what = "slower than " + time.Duration(top.obj.Threshold).String()
	}
	summary := fmt.Sprintf("%s's %s objective (%s%%) burns its error budget %.1fx as fast as the %s period allows over the last %s and %s (%s of requests %s): at this rate the budget lasts %s",
		entry.Name, top.obj.SLI, fmtPct(top.obj.Target), top.last.burn[time.Duration(w.Long)], fmtWindow(top.obj.Period),
		fmtWindow(w.Long), fmtWindow(w.Short), pctText(ratio), what, exhaustion(top.obj.Period, top.last.burn[time.Duration(w.Long)]))
	if len(sts) > 1 {
		summary += fmt.Sprintf("; %d more of its objectives burn too", len(sts)-1)
	}
	ev := map[string]any{
		"objective":        top.obj.Name,
		"sli":              string(top.obj.SLI),
		"target":           top.obj.Target,
		"windows":          w.Name(),
		"burn_rate":        finite4(top.last.burn[time.Duration(w.Long)]),
		"burn_rate_short":  finite4(top.last.burn[time.Duration(w.Short)]),
		"factor":           w.Factor,
		"budget_remaining": finite4(top.last.budgetRemaining),
		"objectives":       objs,
	}
	return Observation{Kind: finding.KindSLOBurn, Subject: finding.Subject{Node: entry.Name, NodeID: entry.ID()},
		Severity: sev, Summary: summary, Evidence: ev}
}

// worst is the most severe pair that fired, the first listed among equals.
func (st *sloState) worst() BurnWindow {
	var w BurnWindow
	for _, f := range st.last.fired {
		if f.Severity > w.Severity {
			w = f
		}
	}
	return w
}

func (st *sloState) topBurn() float64 { return st.last.burn[time.Duration(st.worst().Long)] }

// evidence is one objective's figures, for a finding's evidence.
func (st *sloState) evidence(d *SLOBurn) map[string]any {
	burn := map[string]any{}
	ratio := map[string]any{}
	req := map[string]any{}
	for l, b := range st.last.burn {
		burn[fmtWindow(Duration(l))] = finite4(b)
		ratio[fmtWindow(Duration(l))] = finite4(st.last.bad[l] / st.last.total[l])
	}
	for l, t := range st.last.total {
		req[fmtWindow(Duration(l))] = math.Round(t)
	}
	var fired []any
	for _, w := range st.last.fired {
		fired = append(fired, map[string]any{"windows": w.Name(), "factor": w.Factor, "severity": w.Severity.String()})
	}
	w := st.worst()
	m := map[string]any{
		"name": st.obj.Name, "sli": string(st.obj.SLI), "target": st.obj.Target,
		"windows": w.Name(), "severity": w.Severity.String(),
		"burn_rate":       finite4(st.last.burn[time.Duration(w.Long)]),
		"burn_rate_short": finite4(st.last.burn[time.Duration(w.Short)]),
		"period":          fmtWindow(st.obj.Period),
		"burn_rates":      burn, "bad_ratio": ratio, "requests": req,
		"firing":           fired,
		"budget_remaining": finite4(st.last.budgetRemaining),
	}
	if st.obj.SLI == SLILatency {
		m["threshold_ms"] = float64(time.Duration(st.obj.Threshold)) / float64(time.Millisecond)
	}
	return m
}

// exhaustion is how long the budget of a period lasts at a burn rate.
func exhaustion(period Duration, burn float64) string {
	if burn <= 0 {
		return "the period"
	}
	d := time.Duration(float64(period) / burn)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.0f min", math.Ceil(d.Minutes()))
}

func fmtPct(p float64) string { return fmt.Sprintf("%g", p) }

// pctText is a ratio as a percentage with enough digits for small ones.
func pctText(r float64) string {
	switch p := r * 100; {
	case p >= 10:
		return fmt.Sprintf("%.0f%%", p)
	case p >= 1:
		return fmt.Sprintf("%.1f%%", p)
	default:
		return fmt.Sprintf("%.2f%%", p)
	}
}

func finite4(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}

// sloCollector exposes each objective's burn rate per window and budget
// left as of the last evaluation: objectives x windows series, bounded
// by --slo-max-objectives.
type sloCollector struct{ d *SLOBurn }

func (c sloCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.d.burnDesc
	ch <- c.d.budgetDesc
	ch <- c.d.objDesc
}

func (c sloCollector) Collect(ch chan<- prometheus.Metric) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	seen := 0
	for _, st := range c.d.objs {
		if st.seen {
			seen++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.d.objDesc, prometheus.GaugeValue, float64(seen), "seen")
	ch <- prometheus.MustNewConstMetric(c.d.objDesc, prometheus.GaugeValue, float64(len(c.d.objs)-seen), "unseen")
	for _, st := range c.d.objs {
		if !st.lastUpdated || !st.seen {
			continue
		}
		for l, b := range st.last.burn {
			ch <- prometheus.MustNewConstMetric(c.d.burnDesc, prometheus.GaugeValue, b, st.obj.Name, st.obj.Service, fmtWindow(Duration(l)))
		}
		ch <- prometheus.MustNewConstMetric(c.d.budgetDesc, prometheus.GaugeValue, st.last.budgetRemaining, st.obj.Name, st.obj.Service)
	}
}
