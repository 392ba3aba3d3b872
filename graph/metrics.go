package graph

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
)

// metrics are the graph's own health figures.
type metrics struct {
	spans   prometheus.Counter
	refused *prometheus.CounterVec
	dropped *prometheus.CounterVec
	expired *prometheus.CounterVec
	// rerouted counts the expired half-edges that straddle a change of
	// the collectors (Graph.Rerouted).
	rerouted *prometheus.CounterVec
	pairs    *prometheus.CounterVec
	build    prometheus.Histogram
	// syncPairs and asyncPairs are pairs' counters of the two kinds
	// counted once per pair, resolved on first use (pairCounter) rather
	// than by label on every pair. Guarded by Graph.mu.
	syncPairs, asyncPairs prometheus.Counter
	// pairing are the pairing store's counts last added to dropped and
	// expired (Graph.publishPairing). Guarded by Graph.mu.
	pairing pairing.Stats
}

// pairCounter returns the counter of pairs of kind, kept in *c once
// resolved: the series appears when the first such pair is counted, as
// with WithLabelValues, without hashing the label on every pair. Caller
// holds Graph.mu.
func (m *metrics) pairCounter(c *prometheus.Counter, kind string) prometheus.Counter {
	if *c == nil {
		*c = m.pairs.WithLabelValues(kind)
	}
	return *c
}

func newMetrics(reg prometheus.Registerer, g *Graph) *metrics {
	m := &metrics{
		spans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_graph_spans_total",
			Help: "Spans handed to the graph.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_graph_spans_refused_total",
			Help: "Spans the graph refused, by reason (reported to senders as OTLP partial success).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_graph_observations_dropped_total",
			Help: "Parts of spans that could not be recorded (a latency, a delay, a pairing), by reason.",
		}, []string{"reason"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_graph_half_edges_expired_total",
			Help: "Half-edges that waited out the pair TTL, by kind (client, client_no_peer, server, producer, consumer).",
		}, []string{"kind"}),
		rerouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_graph_half_edges_rerouted_total",
			Help: "Of the half-edges that waited out the pair TTL, those whose span began before and expired after a change of the collectors sharing the traffic (one stopped, started or came back): their other half most likely went to another collector. By kind.",
		}, []string{"kind"}),
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_graph_pairs_total",
			Help: "Span pairs matched, by edge kind.",
		}, []string{"kind"}),
		build: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartograph_graph_snapshot_build_seconds",
			Help:    "Time to build a graph snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
	}
	for _, r := range refusalLabel[1:] {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.spans, m.refused, m.dropped, m.expired, m.rerouted, m.pairs, m.build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_graph_half_edges",
			Help: "Half-edges waiting for their other half.",
		}, func() float64 { return float64(g.nPending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_graph_recent_span_slots",
			Help: "Slots of the table of recently seen spans (grows up to --max-recent-spans, about 36 bytes each).",
		}, func() float64 { return float64(g.nSeenSlots.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cartograph_graph_recent_spans_forgotten_total",
			Help: "Recently seen spans forgotten before twice the pair TTL (the table full or a bucket of it): a parent or a re-sent span arriving after may then be missed.",
		}, func() float64 { return float64(g.nSeenEvicted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_graph_nodes",
			Help: "Nodes known to the graph (all time, bounded by the node limit).",
		}, func() float64 { return float64(g.nNodes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_graph_edges",
			Help: "Edges known to the graph (all time, bounded by the edge limit).",
		}, func() float64 { return float64(g.nEdges.Load()) }),
	)
	return m
}
