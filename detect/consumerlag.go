package detect

import (
	"context"
	"fmt"
	"math"

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
// graph joined onto destination -> consumer edges (Burrow-style: growing lag
// is a warning, a stalled or stopped consumer is critical) and flags time
// lag or drain time above their thresholds; a stale reading (broker or
// poller down) is not judged. Without broker metrics it judges traces: the
// producer->consumer delay growing tick after tick while the group consumes
// slower than the destination is fed. It keeps a bounded delay history per
// consumer edge; Detect is called from one goroutine at a time.
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
