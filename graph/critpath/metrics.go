package critpath

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a sampled trace is dropped: the reason label of
// cartograph_critpath_traces_dropped_total.
const (
	dropTraceLimit = "trace_limit" // MaxTraces traces were being assembled
	dropSpanLimit  = "span_limit"  // the trace outgrew MaxSpansPerTrace
	dropEntryLimit = "entry_limit" // MaxEntries entry operations were kept
	dropInvalid    = "invalid"     // no usable root interval (overflowing timestamps)
	dropPartial    = "partial"     // started before the sampler took its share of traces again
)

// metrics are the sampler's own health figures.
type metrics struct {
	sampled      prometheus.Counter
	completed    prometheus.Counter
	dropped      *prometheus.CounterVec
	ignored      prometheus.Counter
	nodesDropped prometheus.Counter
	callsDropped prometheus.Counter
	rootless     prometheus.Counter

	spans  atomic.Int64 // spans held
	traces atomic.Int64 // traces being assembled
	level  atomic.Int64 // sampling level
}

// countDropped counts traces dropped at the trace limit, the span limit and
// as partial.
func (m *metrics) countDropped(n [3]int) {
	for i, reason := range [3]string{dropTraceLimit, dropSpanLimit, dropPartial} {
		if n[i] > 0 {
			m.dropped.WithLabelValues(reason).Add(float64(n[i]))
		}
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sampled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_traces_sampled_total",
			Help: "Traces sampled for critical-path analysis (assembly started).",
		}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_traces_completed_total",
			Help: "Sampled traces that went idle and were analysed.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_critpath_traces_dropped_total",
			Help: "Sampled traces not analysed, by reason (trace_limit, span_limit, entry_limit, invalid, partial).",
		}, []string{"reason"}),
		rootless: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_traces_rootless_total",
			Help: "Sampled traces analysed without their root span, which had not arrived after the root wait.",
		}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_spans_ignored_total",
			Help: "Spans of sampled traces that arrived after their trace was completed or dropped.",
		}),
		nodesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_node_self_times_dropped_total",
			Help: "Per-trace node self times not kept because an entry already kept the most nodes it may.",
		}),
		callsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_critpath_call_groups_dropped_total",
			Help: "Groups of calls (one parent span's calls to one callee operation) not counted in the call patterns because a time bucket already kept --max-call-patterns patterns.",
		}),
	}
	for _, r := range []string{dropTraceLimit, dropSpanLimit, dropEntryLimit, dropInvalid, dropPartial} {
		m.dropped.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.sampled, m.completed, m.dropped, m.ignored, m.nodesDropped, m.callsDropped, m.rootless,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_critpath_sampling_level",
			Help: "Halvings of the share of traces sampled forced by load: 0 takes every trace SampleOneIn lets through.",
		}, func() float64 { return float64(m.level.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_critpath_spans",
			Help: "Spans held in traces being assembled.",
		}, func() float64 { return float64(m.spans.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_critpath_traces",
			Help: "Traces being assembled.",
		}, func() float64 { return float64(m.traces.Load()) }),
	)
	return m
}
