package detect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Defaults of ConsumerLagOptions.
const (
	DefaultLagMaxSeconds      = 300.0
	DefaultLagMaxDrainSeconds = 900.0
	DefaultTraceMinDelayMS    = 5000.0
	DefaultTraceGrowthTicks   = 3
	DefaultTraceRateShortfall = 0.9
)

// ConsumerLagOptions configure a ConsumerLag detector. Zero fields take the
// defaults.
type ConsumerLagOptions struct {
	// MaxSeconds is the time lag above which a group is behind even when
	// its lag is not growing (default 300 s).
	MaxSeconds float64 `yaml:"max_seconds"`
	// MaxDrainSeconds is the drain time above which a group is behind
	// (default 900 s).
	MaxDrainSeconds float64 `yaml:"max_drain_seconds"`
	// Trace-based judgement, for destinations without broker metrics: a
	// consumer edge whose producer->consumer delay p95 is at least
	// TraceMinDelayMS and grew on each of the last TraceGrowthTicks
	// evaluations, while its consume rate is below TraceRateShortfall of
	// the destination's produce rate.
	TraceMinDelayMS    float64 `yaml:"trace_min_delay_ms"`
	TraceGrowthTicks   int     `yaml:"trace_growth_ticks"`
	TraceRateShortfall float64 `yaml:"trace_rate_shortfall"`
	// MaxTracked bounds the consumer edges whose delay history is kept
	// (default 50,000).
	MaxTracked int `yaml:"max_tracked"`
	// Message is the template of the observations' summaries (text/template
	// syntax, see Messages; default "": the catalogue's).
	Message string `yaml:"message"`
}

// Validate reports an error wrapping ErrInvalidMessage when Message does
// not parse.
func (o ConsumerLagOptions) Validate() error {
	return validateMessage(finding.KindConsumerLag, o.Message)
}

// Values of consumerLagMessage.Over.
const (
	lagOverMaxSeconds      = "max_seconds"
	lagOverMaxDrainSeconds = "max_drain_seconds"
)

// consumerLagMessage is the data of a consumer_lag summary template.
type consumerLagMessage struct {
	Group           string   `doc:"the consumer group (the consumer's name when the group is unknown)"`
	Destination     string   `doc:"the topic or queue"`
	Consumer        string   `doc:"the consuming service"`
	Source          string   `doc:"what shows the lag: broker_metrics or traces"`
	Status          string   `doc:"the lag status: ok, warning, stalled or stopped (from traces: warning)"`
	Severity        string   `doc:"warning or critical"`
	Over            string   `doc:"with status ok, the threshold crossed: max_seconds or max_drain_seconds"`
	MaxSeconds      float64  `doc:"the max_seconds option"`
	MaxDrainSeconds float64  `doc:"the max_drain_seconds option"`
	LagMessages     *float64 `doc:"messages behind; nil when unknown"`
	LagSeconds      *float64 `doc:"time lag, seconds; nil when unknown"`
	DrainSeconds    *float64 `doc:"time to drain the backlog, seconds; nil when unknown"`
	Reason          string   `doc:"the broker evaluation's reason, if any"`
	ProduceRatePerS float64  `doc:"messages produced per second (0 when unknown)"`
	ConsumeRatePerS float64  `doc:"messages consumed per second (0 when unknown)"`
	DelayP95Seconds float64  `doc:"from traces: the producer-to-consumer delay p95, seconds"`
}

func (o ConsumerLagOptions) withDefaults() ConsumerLagOptions {
	if !(o.MaxSeconds > 0) {
		o.MaxSeconds = DefaultLagMaxSeconds
	}
	if !(o.MaxDrainSeconds > 0) {
		o.MaxDrainSeconds = DefaultLagMaxDrainSeconds
	}
	if !(o.TraceMinDelayMS > 0) {
		o.TraceMinDelayMS = DefaultTraceMinDelayMS
	}
	if o.TraceGrowthTicks <= 0 {
		o.TraceGrowthTicks = DefaultTraceGrowthTicks
	}
	if !(o.TraceRateShortfall > 0) {
		o.TraceRateShortfall = DefaultTraceRateShortfall
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = 50_000
	}
	return o
}

// ConsumerLag detects consumer groups falling behind their destination
// (SPEC.md "consumer_lag"). From broker metrics it takes the lag status the
// graph joined onto destination -> consumer edges, the verdict JudgeLag
// drew (Burrow-style: growing lag is a warning, a stalled or stopped
// consumer is critical), and flags time lag or drain time above their
// thresholds; a stale reading (broker or poller down) is not judged.
// Without broker metrics it judges traces: the producer->consumer delay
// growing tick after tick while the group consumes slower than the
// destination is fed. It keeps a bounded delay history per consumer edge;
// Detect is called from one goroutine at a time.
type ConsumerLag struct {
	opts  ConsumerLagOptions
	msg   summaryTemplate
	delay map[string][]float64 // edge id -> recent delay p95s, newest last
	order []string             // insertion order of delay, for eviction
}

// NewConsumerLag returns a ConsumerLag detector configured by o. o.Message
// is parsed here: when it does not (see Validate) the summaries are the
// default's, marked as failed.
func NewConsumerLag(o ConsumerLagOptions) *ConsumerLag {
	return &ConsumerLag{opts: o.withDefaults(), msg: newSummaryTemplate(finding.KindConsumerLag, o.Message), delay: map[string][]float64{}}
}

// Kind returns KindConsumerLag.
func (d *ConsumerLag) Kind() finding.Kind { return finding.KindConsumerLag }

// Detect returns one observation per destination -> consumer edge that is
// behind, ordered by edge id (the snapshot's order).
func (d *ConsumerLag) Detect(ctx context.Context, s *graph.Snapshot) []Observation {
	if s == nil {
		return nil
	}
	produced := map[string]float64{} // destination id -> produce rate from traces
	for i := range s.Edges {
		e := &s.Edges[i]
		if e.Kind == graph.EdgeAsync && isDestination(s, e.Target) {
			produced[e.Target] += e.RatePerS
		}
	}
	var out []Observation
	seen := map[string]bool{}
	for i := range s.Edges {
		if i%cancelEvery == 0 && ctx.Err() != nil {
			return nil
		}
		e := &s.Edges[i]
		if e.Kind != graph.EdgeAsync || !isDestination(s, e.Source) {
			continue
		}
		src, _ := s.Node(e.Source)
		dst, _ := s.Node(e.Target)
		subject := finding.Subject{Source: src.Name, Target: dst.Name, EdgeID: e.ID}
		if e.Lag != nil && e.Lag.Status != lag.StateStale {
			if o, ok := d.fromMetrics(e, src, dst, subject); ok {
				out = append(out, o)
			}
			continue
		}
		if e.Lag == nil && e.Delay != nil {
			seen[e.ID] = true
			if o, ok := d.fromTraces(e, src, dst, subject, produced[e.Source]); ok {
				out = append(out, o)
			}
		}
	}
	d.forget(seen)
	return out
}

func isDestination(s *graph.Snapshot, id string) bool {
	n, ok := s.Node(id)
	return ok && (n.Kind == graph.NodeTopic || n.Kind == graph.NodeQueue)
}

func (d *ConsumerLag) fromMetrics(e *graph.Edge, src, dst graph.Node, subject finding.Subject) (Observation, bool) {
	l := e.Lag
	group := e.ConsumerGroup
	if group == "" {
		group = l.Group // traces name none; the broker does
	}
	ev := map[string]any{"status": l.Status.String(), "source": "broker_metrics"}
	if group != "" {
		ev["group"] = group
	} else {
		group = dst.Name
	}
	if l.Messages != nil {
		ev["lag_messages"] = *l.Messages
	}
	putOpt(ev, "lag_seconds", l.Seconds)
	putOpt(ev, "drain_seconds", l.DrainSeconds)
	putOpt(ev, "produce_rate_per_s", l.ProduceRate)
	putOpt(ev, "consume_rate_per_s", l.ConsumeRate)
	putOpt(ev, "consumers", l.Consumers)
	if l.Reason != "" {
		ev["reason"] = l.Reason
	}
	sev := finding.SeverityWarning
	var over string
	switch {
	case l.Status == lag.StateStopped, l.Status == lag.StateStalled:
		sev = finding.SeverityCritical
	case l.Status == lag.StateWarning:
	case l.Seconds != nil && *l.Seconds > d.opts.MaxSeconds:
		over = lagOverMaxSeconds
		ev["max_seconds"] = d.opts.MaxSeconds
	case l.DrainSeconds != nil && *l.DrainSeconds > d.opts.MaxDrainSeconds:
		over = lagOverMaxDrainSeconds
		ev["max_drain_seconds"] = d.opts.MaxDrainSeconds
	default:
		return Observation{}, false
	}
	msg := consumerLagMessage{Group: group, Destination: src.Name, Consumer: dst.Name, Source: "broker_metrics",
		Status: l.Status.String(), Severity: sev.String(), Over: over,
		MaxSeconds: d.opts.MaxSeconds, MaxDrainSeconds: d.opts.MaxDrainSeconds,
		LagMessages: l.Messages, LagSeconds: l.Seconds, DrainSeconds: l.DrainSeconds, Reason: l.Reason}
	if l.ProduceRate != nil {
		msg.ProduceRatePerS = *l.ProduceRate
	}
	if l.ConsumeRate != nil {
		msg.ConsumeRatePerS = *l.ConsumeRate
	}
	return Observation{Kind: finding.KindConsumerLag, Subject: subject, Severity: sev, Summary: d.msg.render(msg), Evidence: ev}, true
}

func (d *ConsumerLag) fromTraces(e *graph.Edge, src, dst graph.Node, subject finding.Subject, produceRate float64) (Observation, bool) {
	h, ok := d.delay[e.ID]
	if !ok {
		if len(d.order) >= d.opts.MaxTracked {
			delete(d.delay, d.order[0])
			d.order = d.order[1:]
		}
		d.order = append(d.order, e.ID)
	}
	h = append(h, e.Delay.P95)
	if n := d.opts.TraceGrowthTicks + 1; len(h) > n {
		h = h[len(h)-n:]
	}
	d.delay[e.ID] = h
	if len(h) <= d.opts.TraceGrowthTicks || h[len(h)-1] < d.opts.TraceMinDelayMS {
		return Observation{}, false
	}
	for i := 1; i < len(h); i++ {
		if !(h[i] > h[i-1]) {
			return Observation{}, false
		}
	}
	if produceRate <= 0 || e.RatePerS >= d.opts.TraceRateShortfall*produceRate {
		return Observation{}, false
	}
	group := e.ConsumerGroup
	if group == "" {
		group = dst.Name
	}
	hist := slicesClone(h)
	msg := consumerLagMessage{Group: group, Destination: src.Name, Consumer: dst.Name, Source: "traces",
		Status: lag.StateWarning.String(), Severity: finding.SeverityWarning.String(),
		MaxSeconds: d.opts.MaxSeconds, MaxDrainSeconds: d.opts.MaxDrainSeconds,
		ProduceRatePerS: produceRate, ConsumeRatePerS: e.RatePerS, DelayP95Seconds: h[len(h)-1] / 1000}
	return Observation{
		Kind: finding.KindConsumerLag, Subject: subject, Severity: finding.SeverityWarning,
		Summary: d.msg.render(msg),
		Evidence: map[string]any{
			"source": "traces", "status": "warning",
			"produce_rate_per_s": round4(produceRate), "consume_rate_per_s": e.RatePerS,
			"delay_p95_ms": e.Delay.P95, "delay_p95_history_ms": hist,
		},
	}, true
}

// forget drops the delay history of consumer edges not seen this tick.
func (d *ConsumerLag) forget(seen map[string]bool) {
	keep := d.order[:0]
	for _, id := range d.order {
		if seen[id] {
			keep = append(keep, id)
		} else {
			delete(d.delay, id)
		}
	}
	d.order = keep
}

func putOpt(ev map[string]any, k string, v *float64) {
	if v != nil {
		ev[k] = *v
	}
}

func slicesClone(h []float64) []float64 { return append([]float64(nil), h...) }

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func fmtSeconds(s float64) string {
	switch {
	case s >= 3600:
		return fmt.Sprintf("%.1fh", s/3600)
	case s >= 60:
		return fmt.Sprintf("%.1fmin", s/60)
	}
	return fmt.Sprintf("%.1fs", s)
}

// The verdict on a group's consumer lag: LagJudge over graph/lag's
// summaries, for the graph's snapshots (graph.LagSource), and JudgeLag,
// the rules and their words. It is the one place a lag status is decided;
// graph/lag only supplies the numbers.

// DefaultLagStaleAfter is LagJudgeOptions.StaleAfter when none is set.
const DefaultLagStaleAfter = 2 * time.Minute

// LagJudgeOptions configure a LagJudge. Zero fields take the defaults.
type LagJudgeOptions struct {
	// StaleAfter is the age of a partition's newest reading beyond which
	// the partition is stale (default 2m; the collector's
	// --lag-stale-after): its readings stopped arriving (the broker or the
	// poller is down), and a group whose partitions all are is
	// lag.StateStale, its numbers old, not zero. It must be below the
	// store's Retention for a silent group to show as stale before it is
	// forgotten.
	StaleAfter time.Duration
}

// ErrInvalidLagJudge is wrapped by the errors of NewLagJudge.
var ErrInvalidLagJudge = errors.New("invalid lag judge options")

// Validate reports an error wrapping ErrInvalidLagJudge when StaleAfter is
// negative.
func (o LagJudgeOptions) Validate() error {
	if o.StaleAfter < 0 {
		return fmt.Errorf("detect: lag stale after %v: must be positive: %w", o.StaleAfter, ErrInvalidLagJudge)
	}
	return nil
}

// LagSummaries is where a LagJudge gets its numbers (graph/lag.Store).
type LagSummaries interface {
	Summarise(q lag.Query) []lag.Summary
}

// LagJudge gives each group's lag summary its verdict: it is the
// graph.LagSource the collector hands the graph, so every snapshot's
// edges[].lag.status and reason come from JudgeLag. It is safe for
// concurrent use when its LagSummaries is.
type LagJudge struct {
	src  LagSummaries
	opts LagJudgeOptions
}

// NewLagJudge returns a LagJudge of src's summaries.
func NewLagJudge(src LagSummaries, o LagJudgeOptions) (*LagJudge, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultLagStaleAfter
	}
	return &LagJudge{src: src, opts: o}, nil
}

// Query returns what the judge needs summarised over window: the readings
// the rules count (MinReadings for a partition's three rises, fewer for
// the group's summed lag), as of StaleAfter.
func (j *LagJudge) Query(window time.Duration) lag.Query {
	return lag.Query{Window: window, StaleAfter: j.opts.StaleAfter, MinReadings: lagMinRises + 1, MinSumReadings: lagMinGroupRises + 1}
}

// Evaluate returns the status of every group with readings, sorted by
// GroupKey: its summary over window (non-positive: the store's retention)
// with JudgeLag's verdict.
func (j *LagJudge) Evaluate(window time.Duration) []lag.Status {
	sums := j.src.Summarise(j.Query(window))
	out := make([]lag.Status, len(sums))
	for i := range sums {
		st, why := JudgeLag(&sums[i])
		out[i] = lag.Status{Summary: sums[i], State: st, Reason: why}
	}
	return out
}

// The rules' constants. A broker poller reads a group every 15 s or so, so
// a one-minute window holds only four or five readings: too few for
// Burrow's "lag never fell" alone, which iid jitter on a dozen partitions
// satisfies on some partition at most polls. Growth must therefore also be
// large against the partition's own noise.
const (
	// lagMinRun is how many readings, spanning at least half the window, a
	// partition must have shown no consumers, or an unmoving position
	// with lag, before it is stopped or stalled. A rebalance that pauses
	// the group for less than two polls is not judged.
	lagMinRun = 3
	// lagMinRises is how many rises in a row, each while the position
	// moved, make a partition falling behind (with the growth conditions
	// below).
	lagMinRises = 3
	// lagMinGroupRises is how many rises in a row of the group's lag,
	// summed over its partitions, make the group falling behind (with the
	// same growth conditions, against the sum's own noise): a sum over n
	// partitions grows n times faster than one of them while its iid
	// jitter grows only about sqrt(n) times, so it shows a slow group (a
	// few messages a poll on each partition) a poll sooner.
	lagMinGroupRises = 2
	// lagBandFactor: the growth must exceed lagBandFactor times the
	// partition's noise band before the rises (lag.Rise.Noise).
	lagBandFactor = 2.0
	// lagMinBaseline is how long the readings before the rises must span
	// to make a noise band on their own. With less history (at start-up,
	// young) the band is at least the oldest lag held (too few steps to
	// know the noise, it is taken to reach the level the lag started at)
	// and the growth must also be at least lagMinDeficitYoung of what was
	// produced.
	lagMinBaseline = 5 * time.Minute
	// lagMinGrowth is the least growth, in messages, that is falling
	// behind.
	lagMinGrowth = 10.0
	// lagMinDeficit is the least share of the messages produced during
	// the rises that the growth must be: the group consumed under 90% of
	// them.
	lagMinDeficit      = 0.1
	lagMinDeficitYoung = 0.25
)

// JudgeLag draws the verdict on one group from its summary: its state and
// one sentence saying why.
//
// Each partition is judged in the manner of Burrow's evaluator: stale when
// the summary says so (no reading in the window or for the stale-after);
// else OK when its lag was zero at the newest reading; else, on the
// readings since its lag last stood at zero, stopped when it had no
// consumers and a lag over at least half the window; else stalled when its
// position (committed offset, or consumed counter) did not move over at
// least half the window while the lag stayed above zero; else warning when
// its lag rose at each of the last three or more readings while the
// position moved, by much more than the partition's own noise (see
// judgeTrend); else OK. The group takes the worst state of its partitions
// that are not stale, and is stale only when all are; a group of OK
// partitions whose summed lag is falling behind (two rises, by the same
// rules) is a warning.
func JudgeLag(s *lag.Summary) (lag.State, string) {
	states := make([]lag.State, len(s.Partitions))
	worst, stale := lag.State(0), 0
	for i := range s.Partitions {
		p := &s.Partitions[i]
		if p.Stale {
			states[i] = lag.StateStale
			stale++
			continue
		}
		states[i] = judgeTrend(&p.Trend, s.Window, lagMinRises)
		worst = max(worst, states[i])
	}
	if worst == 0 {
		return lag.StateStale, lagStaleReason(s)
	}
	state, reason := worst, ""
	if live := len(s.Partitions) - stale; worst == lag.StateOK && live > 1 && s.Sum != nil && judgeTrend(s.Sum, s.Window, lagMinGroupRises) == lag.StateWarning {
		r := &s.Sum.Rise
		state = lag.StateWarning
		reason = fmt.Sprintf("falling behind: the group's lag grew from %s to %s messages in %s over its %d partitions",
			lagNum(r.From), lagNum(r.To), lagDur(float64(r.Length)/1e9), live)
	}
	if reason == "" {
		reason = lagReason(s, states, state)
	}
	if stale == 0 {
		return state, reason
	}
	var latest *lag.Partition
	for i := range s.Partitions {
		if p := &s.Partitions[i]; p.Stale && (latest == nil || p.Newest.After(latest.Newest)) {
			latest = p
		}
	}
	if stale == 1 {
		return state, reason + fmt.Sprintf("; %s has had no reading since %s", lagPartName(latest.Partition), lagTime(latest.Newest))
	}
	return state, reason + fmt.Sprintf("; %d of %d partitions have had no reading for %s or more",
		stale, len(s.Partitions), lagDur(float64(s.At.UnixNano()-latest.Newest.UnixNano())/1e9))
}

// judgeTrend applies the rules to the trend of a series (a partition's,
// or the group's summed lag) over window, rises being the rises in a row
// that make it falling behind.
//
// Only the run is judged: the readings since the lag last stood at zero
// (all of them when it did not), so a group that caught up at any reading
// is OK (Burrow's first rule). Then, in order:
//   - stopped: no consumers, with lag, on the last lagMinRun or more
//     readings spanning at least half the window;
//   - stalled: the position the same, with lag, on the last lagMinRun or
//     more readings spanning at least half the window;
//   - warning (falling behind): the lag rose at each of the last rises or
//     more readings, spanning at least half the window, while the position
//     moved at each (a group that is consuming, just too slowly), and the
//     growth is at least lagMinGrowth messages, at least lagMinDeficit of
//     what was produced meanwhile, and, without its largest step, more
//     than lagBandFactor times the series' noise band: steady growth, not
//     one jump.
//
// A rebalance or a commit pause shorter than two polls, a burst that
// drains, and lag jittering within its band are OK.
func judgeTrend(t *lag.Trend, window time.Duration, rises int) lag.State {
	if t.Run == 0 || t.Lag <= 0 {
		return lag.StateOK // caught up at the newest reading, or its lag unknown
	}
	long := func(s lag.Span) bool { return s.Readings >= lagMinRun && s.Length >= window/2 }
	if long(t.Idle) {
		return lag.StateStopped
	}
	if t.Position >= 0 && long(t.Stuck) {
		return lag.StateStalled
	}
	r := &t.Rise
	if r.Rises < rises || r.Length < window/2 {
		return lag.StateOK
	}
	// The growth must be sustained: without its largest step (a burst, a
	// pause) it must still clear the noise band.
	growth, noise := r.To-r.From, r.Noise
	young := r.Baseline < lagMinBaseline
	if young {
		noise = max(noise, r.BaselineLag)
	}
	if growth < lagMinGrowth || growth-r.MaxStep <= lagBandFactor*noise {
		return lag.StateOK
	}
	deficit := lagMinDeficit
	if young {
		deficit = lagMinDeficitYoung
	}
	if r.Produced >= 0 && growth < deficit*r.Produced {
		return lag.StateOK
	}
	return lag.StateWarning
}

func lagStaleReason(s *lag.Summary) string {
	r := fmt.Sprintf("no reading since %s (%s ago)", lagTime(s.UpdatedAt), lagDur(float64(s.At.UnixNano()-s.UpdatedAt.UnixNano())/1e9))
	if s.Messages != nil {
		r += fmt.Sprintf(", when the lag was %s messages", lagNum(*s.Messages))
	}
	return r
}

// lagReason explains a group's state from its partitions in that state
// (states[i] is partition i's).
func lagReason(s *lag.Summary, states []lag.State, state lag.State) string {
	parts := s.Partitions
	var in []*lag.Partition
	for i := range parts {
		if states[i] == state {
			in = append(in, &parts[i])
		}
	}
	// The representative: the largest lag, then the lowest partition.
	byLag := func(a, b *lag.Partition) int {
		return cmp.Or(cmp.Compare(b.Lag, a.Lag), cmp.Compare(a.Partition, b.Partition))
	}
	where := ""
	if len(in) > 0 && len(parts) > 1 {
		switch len(in) {
		case 1:
			where = " on " + lagPartName(in[0].Partition)
		case len(parts):
			where = fmt.Sprintf(" on all %d partitions", len(parts))
		default:
			where = fmt.Sprintf(" on %d of %d partitions", len(in), len(parts))
		}
	}
	switch state {
	case lag.StateStopped:
		var l float64
		for _, p := range in {
			l += p.Lag
		}
		return fmt.Sprintf("no consumers while lag is %s messages%s", lagNum(l), where)
	case lag.StateStalled:
		rep := slices.MinFunc(in, byLag)
		what := "position"
		if rep.Trend.OnCounter {
			what = "consumed count"
		}
		r := fmt.Sprintf("%s stuck at %s while lag is %s messages", what, lagNum(rep.Trend.Position), lagNum(rep.Lag))
		switch {
		case len(parts) == 1:
		case len(in) == 1:
			r += where
		default:
			r += fmt.Sprintf(" on %s and %s", lagPartName(rep.Partition), otherPartitions(len(in)-1))
		}
		return r
	case lag.StateWarning:
		// One partition's numbers, the one that grew most: partitions'
		// growths span different readings and do not add up.
		rep := slices.MinFunc(in, func(a, b *lag.Partition) int {
			return cmp.Or(cmp.Compare(b.Trend.Rise.To-b.Trend.Rise.From, a.Trend.Rise.To-a.Trend.Rise.From), cmp.Compare(a.Partition, b.Partition))
		})
		r := fmt.Sprintf("falling behind: lag grew from %s to %s messages in %s", lagNum(rep.Trend.Rise.From), lagNum(rep.Trend.Rise.To), lagDur(float64(rep.Trend.Rise.Length)/1e9))
		switch {
		case len(parts) == 1:
		case len(in) == 1:
			r += " on " + lagPartName(rep.Partition)
		default:
			r += fmt.Sprintf(" on %s (and on %s)", lagPartName(rep.Partition), otherPartitions(len(in)-1))
		}
		return r
	}
	// OK.
	var m float64
	if s.Messages != nil {
		m = *s.Messages
	}
	var zeroAt time.Time
	for i := range parts {
		if parts[i].Trend.ZeroAt.After(zeroAt) {
			zeroAt = parts[i].Trend.ZeroAt
		}
	}
	switch {
	case s.Messages == nil:
		return "no lag reported"
	case m == 0 && s.ProduceRate != nil && *s.ProduceRate == 0:
		return "idle: no lag and nothing produced"
	case m == 0 && !zeroAt.IsZero():
		return fmt.Sprintf("caught up at %s: no lag", lagTime(zeroAt))
	case m == 0:
		return "no lag"
	case !zeroAt.IsZero():
		return fmt.Sprintf("caught up at %s, %s messages behind now", lagTime(zeroAt), lagNum(m))
	case s.DrainSeconds != nil:
		return fmt.Sprintf("behind by %s messages but catching up, drained in about %s at the current rates", lagNum(m), lagDur(*s.DrainSeconds))
	case s.ProduceRate != nil && s.ConsumeRate != nil && math.Abs(*s.ConsumeRate-*s.ProduceRate) < lag.DrainShare*max(*s.ConsumeRate, *s.ProduceRate):
		return fmt.Sprintf("keeping pace, %s messages behind", lagNum(m))
	default:
		return fmt.Sprintf("behind by %s messages, not growing steadily", lagNum(m))
	}
}

// otherPartitions counts other partitions: "1 other partition", "2 other
// partitions".
func otherPartitions(n int) string {
	if n == 1 {
		return "1 other partition"
	}
	return strconv.Itoa(n) + " other partitions"
}

func lagPartName(p int32) string {
	if p < 0 {
		return "the destination"
	}
	return "partition " + strconv.Itoa(int(p))
}

// lagTime formats a time for a lag reason.
func lagTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// lagDur formats seconds for a lag reason, to the second.
func lagDur(secs float64) string {
	return (time.Duration(math.Round(secs)) * time.Second).String()
}

// lagNum formats a count or an offset for a lag reason: whole numbers in
// full, others to four significant digits.
func lagNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'g', 4, 64), ".0")
}
