package servicegraph_test

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/servicegraph"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

const ms = int64(time.Millisecond)

// fixture is a real graph and an exporter reading it, on one test clock.
type fixture struct {
	g   *graph.Graph
	clk *clock
	reg *prometheus.Registry
	exp *servicegraph.Exporter
}

func newFixture(t *testing.T, maxSeries int) *fixture {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, PairTTL: time.Second, Now: clk.now})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	exp, err := servicegraph.New(servicegraph.Options{Source: g, MaxSeries: maxSeries, IdleExpiry: 2 * time.Minute, Now: clk.now, Registerer: reg})
	require.NoError(t, err)
	return &fixture{g: g, clk: clk, reg: reg, exp: exp}
}

// consume feeds spans starting now.
func (f *fixture) consume(t *testing.T, spans ...graph.Span) {
	t.Helper()
	rej, why := f.g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
}

// closeBuckets lets the pair TTL run out and the current bucket close,
// then has the exporter take what closed.
func (f *fixture) closeBuckets() {
	f.clk.advance(2 * time.Second)
	f.g.Expire()
	f.clk.advance(5 * time.Second)
	f.g.Expire()
	f.exp.Update()
}

var traceN byte

// shop is one round of a shop's traffic, starting at the clock: a user
// calls front (namespace shop); front calls back three times (3 ms,
// 150 ms, 1.5 s on the server, the last failing), queries the database
// orders, publishes to the topic events which billing consumes, and
// calls an external peer that never answers.
func shop(now time.Time) []graph.Span {
	traceN++
	tr := graph.TraceID{traceN, 0xaa}
	id := func(b byte) graph.SpanID { return graph.SpanID{traceN, b} }
	t0 := now.UnixNano()
	sp := func(k graph.SpanKind, n, parent byte, svc string, dur int64) graph.Span {
		return graph.Span{Trace: tr, ID: id(n), Parent: parent0(parent, id), Kind: k, Service: svc, Start: t0, End: t0 + dur, Protocol: graph.ProtocolHTTP, Operation: fmt.Sprintf("op%d", n)}
	}
	root := sp(graph.SpanServer, 1, 0, "front", 2000*ms)
	root.Namespace = "shop"
	var out []graph.Span
	out = append(out, root)
	for i, d := range []int64{3 * ms, 150 * ms, 1500 * ms} {
		c := sp(graph.SpanClient, byte(10+i), 1, "front", d+ms)
		c.Namespace = "shop"
		s := sp(graph.SpanServer, byte(20+i), byte(10+i), "back", d)
		s.Error = i == 2
		out = append(out, c, s)
	}
	db := sp(graph.SpanClient, 30, 1, "front", 3*ms)
	db.Namespace, db.Protocol, db.Peer = "shop", graph.ProtocolDB, graph.NodeKey{Kind: graph.NodeDatabase, Group: "postgresql", Name: "orders"}
	events := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "events"}
	prod := sp(graph.SpanProducer, 40, 1, "front", ms)
	prod.Namespace, prod.Protocol, prod.Messaging, prod.Destination = "shop", graph.ProtocolKafka, graph.MessagingPublish, events
	cons := sp(graph.SpanConsumer, 41, 40, "billing", 5*ms)
	cons.Start, cons.End = t0+20*ms, t0+25*ms
	cons.Protocol, cons.Messaging, cons.Destination, cons.ConsumerGroup = graph.ProtocolKafka, graph.MessagingProcess, events, "billing"
	ext := sp(graph.SpanClient, 50, 1, "front", 300*ms)
	ext.Namespace, ext.Peer, ext.Error = "shop", graph.NodeKey{Kind: graph.NodeExternal, Name: "api.stripe.com:443"}, true
	return append(out, db, prod, cons, ext)
}

func parent0(b byte, id func(byte) graph.SpanID) graph.SpanID {
	if b == 0 {
		return graph.SpanID{}
	}
	return id(b)
}

// series is one label set's exposed values.
type series struct {
	requests, failed    float64
	server, client, msg *dto.Histogram
}

// scrape gathers the exporter's series by "client->server conn ns/ns".
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]*series {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*series{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "traces_service_graph_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			k := fmt.Sprintf("%s->%s %q %s/%s", l["client"], l["server"], l["connection_type"], l["client_service_namespace"], l["server_service_namespace"])
			s := out[k]
			if s == nil {
				s = &series{}
				out[k] = s
			}
			switch mf.GetName() {
			case servicegraph.MetricRequests:
				s.requests = m.GetCounter().GetValue()
			case servicegraph.MetricFailed:
				s.failed = m.GetCounter().GetValue()
			case servicegraph.MetricServerSeconds:
				s.server = m.GetHistogram()
			case servicegraph.MetricClientSeconds:
				s.client = m.GetHistogram()
			case servicegraph.MetricMessagingSeconds:
				s.msg = m.GetHistogram()
			}
		}
	}
	return out
}

func keys(m map[string]*series) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cumulative returns h's cumulative count at upper bound le.
func cumulative(t *testing.T, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", le)
	return 0
}

// TestLabelsAndConnectionTypes: every kind of edge cartograph draws maps
// to the label set Tempo would write for it, and the counts are the
// graph's.
func TestLabelsAndConnectionTypes(t *testing.T) {
	f := newFixture(t, 100)
	f.consume(t, shop(f.clk.now())...)
	f.closeBuckets()

	got := scrape(t, f.reg)
	require.Equal(t, []string{
		`events->billing "messaging_system" /`,
		`front->api.stripe.com:443 "virtual_node" shop/`,
		`front->back "" shop/`,
		`front->events "messaging_system" shop/`,
		`front->orders "database" shop/`,
		`user->front "virtual_node" /shop`,
	}, keys(got))

	back := got[`front->back "" shop/`]
	require.EqualValues(t, 3, back.requests)
	require.EqualValues(t, 1, back.failed)
	require.EqualValues(t, 3, back.server.GetSampleCount())
	require.EqualValues(t, 1, cumulative(t, back.server, 0.004), "3 ms")
	require.EqualValues(t, 1, cumulative(t, back.server, 0.1))
	require.EqualValues(t, 2, cumulative(t, back.server, 0.2), "150 ms")
	require.EqualValues(t, 2, cumulative(t, back.server, 1.4))
	require.EqualValues(t, 3, cumulative(t, back.server, 2), "1.5 s")
	require.InDelta(t, 1.653, back.server.GetSampleSum(), 1.653*graph.LatencyRelativeAccuracy)
	require.InDelta(t, 1.656, back.client.GetSampleSum(), 1.656*graph.LatencyRelativeAccuracy, "the callers' durations")

	db := got[`front->orders "database" shop/`]
	require.EqualValues(t, 1, db.requests)
	require.NotNil(t, db.server, "a database has no span of its own: the caller's duration stands for the server's, as Tempo does")
	require.InDelta(t, 0.003, db.server.GetSampleSum(), 0.003*graph.LatencyRelativeAccuracy)

	ext := got[`front->api.stripe.com:443 "virtual_node" shop/`]
	require.EqualValues(t, 1, ext.requests)
	require.EqualValues(t, 1, ext.failed)
	require.EqualValues(t, 1, ext.server.GetSampleCount())

	billing := got[`events->billing "messaging_system" /`]
	require.EqualValues(t, 1, billing.requests)
	require.NotNil(t, billing.msg)
	require.InDelta(t, 0.019, billing.msg.GetSampleSum(), 0.019*graph.LatencyRelativeAccuracy, "producer end to consumer start")
	require.Nil(t, got[`user->front "virtual_node" /shop`].client, "nobody measured the uninstrumented caller's side")

	// The same edges and counts as the graph's own snapshot.
	snap, err := f.g.Snapshot(0)
	require.NoError(t, err)
	var total float64
	for _, s := range got {
		total += s.requests
	}
	var want uint64
	for _, e := range snap.Edges {
		want += e.Requests
	}
	require.EqualValues(t, want, total)
	require.Len(t, snap.Edges, len(got))
}

// TestCountersGrowOnce: counters add each closed bucket once, however
// often the exporter is updated, and only ever grow while the graph's
// window slides past the traffic.
func TestCountersGrowOnce(t *testing.T) {
	f := newFixture(t, 100)
	var prev map[string]*series
	for round := 1; round <= 20; round++ {
		f.consume(t, shop(f.clk.now())...)
		f.closeBuckets()
		f.exp.Update() // nothing new closed: nothing added twice
		got := scrape(t, f.reg)
		back := got[`front->back "" shop/`]
		require.EqualValues(t, 3*round, back.requests, "round %d", round)
		require.EqualValues(t, 3*round, back.server.GetSampleCount())
		require.EqualValues(t, round, back.failed)
		for k, s := range prev {
			n := got[k]
			require.NotNil(t, n, k)
			require.GreaterOrEqual(t, n.requests, s.requests, k)
			if s.server != nil {
				for i, b := range s.server.GetBucket() {
					require.GreaterOrEqual(t, n.server.GetBucket()[i].GetCumulativeCount(), b.GetCumulativeCount(), k)
				}
			}
		}
		prev = got
	}
	snap, err := f.g.Snapshot(0)
	require.NoError(t, err)
	for _, e := range snap.Edges {
		require.Less(t, e.Requests, uint64(3*20), "the graph's window has slid past the first rounds; the counters have not")
	}
}

// TestSeriesBoundedAndExpire: label sets beyond the bound are not
// exported, and counted; those idle past the expiry leave.
func TestSeriesBoundedAndExpire(t *testing.T) {
	f := newFixture(t, 3)
	f.consume(t, shop(f.clk.now())...)
	f.closeBuckets()
	require.Len(t, scrape(t, f.reg), 3)
	require.EqualValues(t, 3, value(t, f.reg, "cartograph_grafana_service_graph_series"))
	require.EqualValues(t, 3, value(t, f.reg, "cartograph_grafana_service_graph_buckets_refused_total"))

	f.clk.advance(3 * time.Minute)
	f.g.Expire()
	f.exp.Update()
	require.Empty(t, scrape(t, f.reg), "idle past the expiry")
	require.EqualValues(t, 3, value(t, f.reg, "cartograph_grafana_service_graph_series_expired_total"))

	// Room again: new traffic is exported.
	f.consume(t, shop(f.clk.now())...)
	f.closeBuckets()
	require.Len(t, scrape(t, f.reg), 3)
}

// TestSampledCallsWeighted: a sampled call counts as the calls it stands
// for, in the counters and the histograms alike, so that Grafana's
// average (seconds_sum / request_total) is not scaled by the sample rate.
func TestSampledCallsWeighted(t *testing.T) {
	f := newFixture(t, 100)
	t0 := f.clk.now().UnixNano()
	c := graph.Span{Trace: graph.TraceID{1}, ID: graph.SpanID{1}, Kind: graph.SpanClient, Service: "a", Start: t0, End: t0 + 10*ms, Protocol: graph.ProtocolHTTP, Weight: 10, Operation: "GET /"}
	s := graph.Span{Trace: graph.TraceID{1}, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "b", Start: t0, End: t0 + 8*ms, Protocol: graph.ProtocolHTTP, Weight: 10}
	f.consume(t, c, s)
	f.closeBuckets()
	got := scrape(t, f.reg)[`a->b "" /`]
	require.EqualValues(t, 10, got.requests)
	require.EqualValues(t, 10, got.server.GetSampleCount())
	require.InDelta(t, 0.08, got.server.GetSampleSum(), 0.08*graph.LatencyRelativeAccuracy)
	require.InDelta(t, 0.008, got.server.GetSampleSum()/got.requests, 0.008*graph.LatencyRelativeAccuracy, "Grafana's average response time")
}

func TestOptionsValidate(t *testing.T) {
	g, err := graph.New(graph.Options{})
	require.NoError(t, err)
	for name, o := range map[string]servicegraph.Options{
		"no source":        {MaxSeries: 1, IdleExpiry: time.Minute},
		"no bound":         {Source: g, IdleExpiry: time.Minute},
		"no expiry":        {Source: g, MaxSeries: 1},
		"buckets unsorted": {Source: g, MaxSeries: 1, IdleExpiry: time.Minute, Buckets: []float64{1, 0.5}},
		"bucket infinite":  {Source: g, MaxSeries: 1, IdleExpiry: time.Minute, Buckets: []float64{1, math.Inf(1)}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := servicegraph.New(o)
			require.Error(t, err)
		})
	}
	_, err = servicegraph.New(servicegraph.Options{Source: g, MaxSeries: 1, IdleExpiry: time.Minute})
	require.NoError(t, err)
}

// gathered is one metric family of a gatherer as a collector, for
// testutil.ToFloat64.
type gathered struct {
	g    prometheus.Gatherer
	name string
}

func (gathered) Describe(chan<- *prometheus.Desc) {}
func (c gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := c.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != c.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(c.name, "", nil, nil), prometheus.UntypedValue, v)
		}
	}
}

// value is the value of the gauge or counter name.
func value(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	return testutil.ToFloat64(gathered{reg, name})
}
