// Package servicegraph exposes the live graph's edges as the Prometheus
// series Grafana's service graph reads: the series Grafana Tempo's
// metrics-generator and the OpenTelemetry Collector's servicegraph
// connector write (traces_service_graph_request_total,
// ..._request_failed_total, the ..._request_server_seconds and
// ..._request_client_seconds histograms, labelled client, server and
// connection_type), so that a Prometheus scraping the collector feeds the
// Node Graph of Grafana's Tempo data source with cartograph's graph:
// databases, topics and queues as nodes, consumers paired through span
// links, uninstrumented callers.
//
// Counters only grow: every time bucket of the graph is added once, when
// it has closed (graph.Graph.ClosedBuckets), never re-read from the
// sliding window. Histograms are re-bucketed from the graph's latency
// sketches of each closed bucket (see docs/grafana.md for the accuracy).
// Series are bounded (Options.MaxSeries) and leave once their edge has
// carried nothing for Options.IdleExpiry, as the graph's edges do.
package servicegraph

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// The exported series, named as Tempo's metrics-generator and the
// Collector's servicegraph connector name them.
const (
	MetricRequests         = "traces_service_graph_request_total"
	MetricFailed           = "traces_service_graph_request_failed_total"
	MetricServerSeconds    = "traces_service_graph_request_server_seconds"
	MetricClientSeconds    = "traces_service_graph_request_client_seconds"
	MetricMessagingSeconds = "traces_service_graph_request_messaging_system_seconds"
)

// Labels of every series: the calling and the called node, the kind of
// connection, and the callers' and callees' service.namespace (the labels
// Tempo writes with the dimension service.namespace and client/server
// prefixes, which Grafana reads when its service graph includes
// namespaces; empty, and so absent, for nodes that are not services).
var labelNames = []string{"client", "server", "connection_type", "client_service_namespace", "server_service_namespace"}

// ConnectionType is the connection_type label.
type ConnectionType string

// Connection types, as Tempo and the connector write them.
const (
	// ConnectionDirect is a call between two services (the label is empty).
	ConnectionDirect ConnectionType = ""
	// ConnectionVirtualNode is a call from an uninstrumented caller or to
	// an uninstrumented callee (external peer).
	ConnectionVirtualNode ConnectionType = "virtual_node"
	// ConnectionMessaging is a hop through a messaging system: producer to
	// destination, destination to consumer.
	ConnectionMessaging ConnectionType = "messaging_system"
	// ConnectionDatabase is a call to a database.
	ConnectionDatabase ConnectionType = "database"
)

// UserNode is the client label of calls whose caller is not instrumented
// (cartograph's client node), as Tempo names it.
const UserNode = "user"

// DefaultBuckets returns the histograms' default upper bounds in seconds:
// the OpenTelemetry Collector servicegraph connector's defaults.
func DefaultBuckets() []float64 {
	return []float64{0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1.4, 2, 5, 10, 15}
}

// Source gives the graph's closed time buckets (graph.Graph.ClosedBuckets):
// those that closed after `after` (the zero time: all the window holds),
// and the start of the newest one returned, or `after` when none closed.
type Source interface {
	ClosedBuckets(after time.Time) ([]graph.EdgeBucket, time.Time)
}

// Options configure an Exporter.
type Options struct {
	// Source gives the closed buckets. Required.
	Source Source
	// MaxSeries bounds the label sets kept (the graph's --max-edges plus
	// its overflow edges, see MaxSeriesFor); buckets of edges beyond it
	// are not exported, and counted. Required.
	MaxSeries int
	// IdleExpiry is how long a label set may carry nothing before its
	// series are deleted (the graph's Options.IdleExpiry). Required.
	IdleExpiry time.Duration
	// Buckets are the histograms' upper bounds in seconds, ascending
	// (default DefaultBuckets).
	Buckets []float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the exported series and the exporter's own
	// metrics (nil: neither is registered; the caller registers the
	// Exporter, a prometheus.Collector, itself).
	Registerer prometheus.Registerer
}

// MaxSeriesFor returns the series bound for a graph of at most maxEdges
// edges: every edge could map to a label set of its own, and the overflow
// edges add at most one per pair of node kinds.
func MaxSeriesFor(maxEdges int) int { return maxEdges + nodeKinds*nodeKinds }

// nodeKinds is the number of graph.NodeKind values (service to client).
const nodeKinds = int(graph.NodeClient)

// Validate reports whether o is usable.
func (o Options) Validate() error {
	var errs []error
	if o.Source == nil {
		errs = append(errs, errors.New("servicegraph: Options.Source is required"))
	}
	if o.MaxSeries < 1 {
		errs = append(errs, errors.New("servicegraph: Options.MaxSeries must be at least 1"))
	}
	if o.IdleExpiry <= 0 {
		errs = append(errs, errors.New("servicegraph: Options.IdleExpiry must be positive"))
	}
	for i, b := range o.Buckets {
		if !(b > 0) || math.IsInf(b, 0) || (i > 0 && b <= o.Buckets[i-1]) {
			errs = append(errs, fmt.Errorf("servicegraph: Options.Buckets %v: want positive, finite, strictly ascending bounds", o.Buckets))
			break
		}
	}
	return errors.Join(errs...)
}

// key is a label set.
type key struct {
	client, server     string
	conn               ConnectionType
	clientNS, serverNS string
}

// hist is a histogram's running totals: counts per bucket (the last is
// +Inf), not cumulative. Counts are estimates of calls (sampled calls
// count as the calls they stand for), so they are kept as floats and
// rounded when exposed.
type hist struct {
	counts     []float64
	sum, count float64
}

// series are the running totals of one label set.
type series struct {
	requests, failed          float64
	server, client, messaging hist
	// lastSeen is the end of the newest closed bucket that carried
	// anything on one of the label set's edges.
	lastSeen time.Time
}

// Exporter keeps the running totals of every label set and exposes them
// as a prometheus.Collector. Update (or Receive, on every evaluation
// tick) adds what closed since the last call; Collect may run
// concurrently with it from any goroutine.
type Exporter struct {
	o Options

	requests, failed, server, client, messaging *prometheus.Desc

	upd   sync.Mutex // serialises Update: the cursor
	after time.Time

	mu     sync.Mutex // guards series and order
	series map[key]*series
	// order lists series' keys as the registry sorts the exposed series
	// (by label value, label names ascending), so that its sort on every
	// scrape finds them sorted; nil when it must be rebuilt.
	order []key

	held             prometheus.Gauge
	refused, expired prometheus.Counter
}

// New returns an Exporter for o, registered on o.Registerer when set.
func New(o Options) (*Exporter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(o.Buckets) == 0 {
		o.Buckets = DefaultBuckets()
	}
	o.Buckets = slices.Clone(o.Buckets)
	if o.Now == nil {
		o.Now = time.Now
	}
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labelNames, nil) }
	e := &Exporter{
		o:         o,
		requests:  desc(MetricRequests, "Calls and messages between two nodes of cartograph's graph (Grafana service graph)."),
		failed:    desc(MetricFailed, "Failed calls between two nodes of cartograph's graph (Grafana service graph)."),
		server:    desc(MetricServerSeconds, "Duration of calls between two nodes as the callee saw it (SERVER or CONSUMER span), or as the caller did where no callee span exists (databases, external peers)."),
		client:    desc(MetricClientSeconds, "Duration of calls between two nodes as the caller saw it (CLIENT or PRODUCER span)."),
		messaging: desc(MetricMessagingSeconds, "Time from the end of a PRODUCER span to the start of its CONSUMER span, on destination -> consumer edges."),
		series:    map[key]*series{},
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_grafana_service_graph_series",
			Help: "Label sets (client, server, connection type, namespaces) of the Grafana service graph series held.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_grafana_service_graph_buckets_refused_total",
			Help: "Closed edge buckets not exported because the Grafana service graph series were at their bound.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_grafana_service_graph_series_expired_total",
			Help: "Grafana service graph label sets deleted after carrying nothing for the idle expiry.",
		}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e, e.held, e.refused, e.expired} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("servicegraph: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Receive implements the evaluation tick's receiver (detect/runner): it
// ignores the snapshot, a sliding window, and calls Update.
func (e *Exporter) Receive(*graph.Snapshot, []finding.Finding, []finding.Incident) { e.Update() }

// Update adds the buckets that closed since the last call (on the first,
// every closed bucket the graph's window holds), then deletes the label
// sets idle for longer than Options.IdleExpiry. Safe for concurrent use.
func (e *Exporter) Update() {
	e.upd.Lock()
	defer e.upd.Unlock()
	buckets, next := e.o.Source.ClosedBuckets(e.after)
	e.after = next
	cutoff := e.o.Now().Add(-e.o.IdleExpiry)

	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range buckets {
		b := &buckets[i]
		k := keyOf(b)
		s := e.series[k]
		if s == nil {
			if len(e.series) >= e.o.MaxSeries {
				e.refused.Inc()
				continue
			}
			s = e.newSeries()
			e.series[k] = s
			e.order = nil
		}
		s.add(b, e.o.Buckets)
	}
	for k, s := range e.series {
		if s.lastSeen.Before(cutoff) {
			delete(e.series, k)
			e.order = nil
			e.expired.Inc()
		}
	}
	e.held.Set(float64(len(e.series)))
}

func (e *Exporter) newSeries() *series {
	n := len(e.o.Buckets) + 1
	return &series{
		server:    hist{counts: make([]float64, n)},
		client:    hist{counts: make([]float64, n)},
		messaging: hist{counts: make([]float64, n)},
	}
}

// keyOf returns the label set of an edge bucket's edge.
func keyOf(b *graph.EdgeBucket) key {
	return key{
		client: nodeName(b.Source), server: nodeName(b.Target),
		conn:     connectionOf(b.Source.Kind, b.Target.Kind),
		clientNS: namespaceOf(b.Source), serverNS: namespaceOf(b.Target),
	}
}

// nodeName is a node's client or server label: its name as cartograph
// shows it ("(other services)" for an overflow node), "user" for the
// uninstrumented caller.
func nodeName(k graph.NodeKey) string {
	if k.Kind == graph.NodeClient {
		return UserNode
	}
	return strings.ToValidUTF8(k.DisplayName(), "\uFFFD")
}

// namespaceOf is a service's service.namespace; other nodes have none.
func namespaceOf(k graph.NodeKey) string {
	if k.Kind != graph.NodeService {
		return ""
	}
	return strings.ToValidUTF8(k.Group, "\uFFFD")
}

// connectionOf returns the connection type of an edge between nodes of
// kinds src and dst: a database at either end makes it a database call,
// a destination a messaging hop, the uninstrumented caller or an
// external callee a virtual node; calls between services are direct.
func connectionOf(src, dst graph.NodeKind) ConnectionType {
	switch {
	case src == graph.NodeDatabase || dst == graph.NodeDatabase:
		return ConnectionDatabase
	case src == graph.NodeTopic || src == graph.NodeQueue || dst == graph.NodeTopic || dst == graph.NodeQueue:
		return ConnectionMessaging
	case src == graph.NodeClient || src == graph.NodeExternal || dst == graph.NodeExternal || dst == graph.NodeClient:
		return ConnectionVirtualNode
	}
	return ConnectionDirect
}

// add adds one closed bucket of one edge.
func (s *series) add(b *graph.EdgeBucket, bounds []float64) {
	s.requests += float64(b.Requests)
	s.failed += float64(b.Errors)
	// Sketches hold one latency per call seen; counts, when sampled,
	// count each seen call as the calls it stands for. Weighting the
	// latencies alike keeps sum/count and request_total in step (Grafana
	// divides the one by the other).
	w := 1.0
	if seen := b.SeenCalls(); b.Sampled > 0 && seen > 0 {
		w = float64(b.Requests) / float64(seen)
	}
	if !b.Server.Empty() {
		s.server.observe(b.Server, w, bounds)
	} else {
		// No callee span: a database, an external peer, an unanswered or
		// a producer's call. The caller's view is the only one.
		s.server.observe(b.Client, w, bounds)
		s.server.observe(b.UnansweredLatency, w, bounds)
	}
	s.client.observe(b.Client, w, bounds)
	s.client.observe(b.UnansweredLatency, w, bounds)
	s.messaging.observe(b.Delay, w, bounds)
	if end := b.Start.Add(b.Width); end.After(s.lastSeen) {
		s.lastSeen = end
	}
}

// observe adds latency sketch bins (milliseconds), each count weighted w.
func (h *hist) observe(bins graph.Bins, w float64, bounds []float64) {
	bins.Each(func(ms float64, n uint64) {
		sec := ms / 1000
		c := float64(n) * w
		h.counts[sort.SearchFloat64s(bounds, sec)] += c
		h.sum += c * sec
		h.count += c
	})
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.requests, e.failed, e.server, e.client, e.messaging} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every label set's counters,
// and each histogram that holds an observation.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.order == nil && len(e.series) > 0 {
		e.order = make([]key, 0, len(e.series))
		for k := range e.series {
			e.order = append(e.order, k)
		}
		slices.SortFunc(e.order, compareKeys)
	}
	for _, k := range e.order {
		s := e.series[k]
		lv := []string{k.client, k.server, string(k.conn), k.clientNS, k.serverNS}
		ch <- prometheus.MustNewConstMetric(e.requests, prometheus.CounterValue, s.requests, lv...)
		ch <- prometheus.MustNewConstMetric(e.failed, prometheus.CounterValue, s.failed, lv...)
		for _, h := range []struct {
			d *prometheus.Desc
			h *hist
		}{{e.server, &s.server}, {e.client, &s.client}, {e.messaging, &s.messaging}} {
			if h.h.count == 0 {
				continue
			}
			ch <- h.h.metric(h.d, e.o.Buckets, lv)
		}
	}
}

// compareKeys orders label sets as the registry orders series: by the
// values of the label names in ascending order (client,
// client_service_namespace, connection_type, server,
// server_service_namespace).
func compareKeys(a, b key) int {
	return cmp.Or(strings.Compare(a.client, b.client), strings.Compare(a.clientNS, b.clientNS),
		strings.Compare(string(a.conn), string(b.conn)), strings.Compare(a.server, b.server), strings.Compare(a.serverNS, b.serverNS))
}

// metric returns h as a constant histogram. Counts are rounded from
// their running totals, so they only grow from one scrape to the next.
func (h *hist) metric(d *prometheus.Desc, bounds []float64, lv []string) prometheus.Metric {
	cum := make(map[float64]uint64, len(bounds))
	var acc float64
	for i, b := range bounds {
		acc += h.counts[i]
		cum[b] = uint64(math.Round(acc))
	}
	return prometheus.MustNewConstHistogram(d, uint64(math.Round(h.count)), h.sum, cum, lv...)
}
