package main

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/web/servicegraph"
)

// shopTraces is an OTLP request of n traces of a shop (trace ids from
// seed): a user's request to frontend (namespace shop), which calls
// backend over HTTP (every 4th call failing), queries the PostgreSQL
// database orders, publishes to the Kafka topic events, and calls
// api.stripe.com, which sends no spans; billing consumes events in a
// trace of its own, linked to the producer's span.
func shopTraces(t *testing.T, seed, n int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	now := time.Now()
	resource := func(svc, ns string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		if ns != "" {
			rs.Resource().Attributes().PutStr("service.namespace", ns)
		}
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	frontend, backend, billing := resource("frontend", "shop"), resource("backend", "shop"), resource("billing", "")
	for i := seed; i < seed+n; i++ {
		var tr, consumerTrace pcommon.TraceID
		tr[0], consumerTrace[0] = 0x5e, 0x5f
		binary.BigEndian.PutUint64(tr[8:], uint64(i)+1)
		binary.BigEndian.PutUint64(consumerTrace[8:], uint64(i)+1)
		id := func(k byte) pcommon.SpanID {
			var s pcommon.SpanID
			binary.BigEndian.PutUint32(s[:4], uint32(i)+1)
			s[7] = k
			return s
		}
		span := func(ss ptrace.SpanSlice, trace pcommon.TraceID, k byte, parent byte, kind ptrace.SpanKind, name string, dur time.Duration) ptrace.Span {
			sp := ss.AppendEmpty()
			sp.SetTraceID(trace)
			sp.SetSpanID(id(k))
			if parent != 0 {
				sp.SetParentSpanID(id(parent))
			}
			sp.SetKind(kind)
			sp.SetName(name)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(dur)))
			return sp
		}
		root := span(frontend, tr, 1, 0, ptrace.SpanKindServer, "GET /checkout", 400*time.Millisecond)
		root.Attributes().PutStr("http.request.method", "GET")
		root.Attributes().PutStr("http.route", "/checkout")

		call := span(frontend, tr, 2, 1, ptrace.SpanKindClient, "GET", 30*time.Millisecond)
		call.Attributes().PutStr("http.request.method", "GET")
		call.Attributes().PutStr("server.address", "backend")
		answer := span(backend, tr, 3, 2, ptrace.SpanKindServer, "GET /items", 20*time.Millisecond)
		answer.Attributes().PutStr("http.request.method", "GET")
		answer.Attributes().PutStr("http.route", "/items")
		if i%4 == 3 {
			answer.Attributes().PutInt("http.response.status_code", 500)
			answer.Status().SetCode(ptrace.StatusCodeError)
		}

		db := span(frontend, tr, 4, 1, ptrace.SpanKindClient, "SELECT orders", 3*time.Millisecond)
		db.Attributes().PutStr("db.system.name", "postgresql")
		db.Attributes().PutStr("db.namespace", "orders")
		db.Attributes().PutStr("db.operation.name", "SELECT")

		pub := span(frontend, tr, 5, 1, ptrace.SpanKindProducer, "publish events", time.Millisecond)
		pub.Attributes().PutStr("messaging.system", "kafka")
		pub.Attributes().PutStr("messaging.destination.name", "events")
		pub.Attributes().PutStr("messaging.operation.type", "send")

		ext := span(frontend, tr, 6, 1, ptrace.SpanKindClient, "POST", 200*time.Millisecond)
		ext.Attributes().PutStr("http.request.method", "POST")
		ext.Attributes().PutStr("server.address", "api.stripe.com")
		ext.Attributes().PutInt("server.port", 443)

		proc := span(billing, consumerTrace, 7, 0, ptrace.SpanKindConsumer, "process events", 5*time.Millisecond)
		proc.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(10 * time.Millisecond)))
		proc.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(15 * time.Millisecond)))
		proc.Attributes().PutStr("messaging.system", "kafka")
		proc.Attributes().PutStr("messaging.destination.name", "events")
		proc.Attributes().PutStr("messaging.operation.type", "process")
		proc.Attributes().PutStr("messaging.consumer.group.name", "billing")
		link := proc.Links().AppendEmpty()
		link.SetTraceID(tr)
		link.SetSpanID(id(5))
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// sgKey is the label set of a Grafana service graph series.
type sgKey struct{ client, server, conn, clientNS, serverNS string }

func (k sgKey) String() string {
	return fmt.Sprintf("%s/%s -> %s/%s %q", k.clientNS, k.client, k.serverNS, k.server, k.conn)
}

// sgSeries are the values of one label set on /metrics.
type sgSeries struct {
	requests, failed float64
	server, client   *dto.Histogram
}

// scrapeServiceGraph reads /metrics and parses it with Prometheus's own
// text parser: the traces_service_graph_* series by label set, and the
// exposition's other families.
func scrapeServiceGraph(t *testing.T, col started) (map[sgKey]*sgSeries, map[string]*dto.MetricFamily) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(metricsText(t, col)))
	require.NoError(t, err)
	out := map[sgKey]*sgSeries{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "traces_service_graph_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			k := sgKey{l["client"], l["server"], l["connection_type"], l["client_service_namespace"], l["server_service_namespace"]}
			s := out[k]
			if s == nil {
				s = &sgSeries{}
				out[k] = s
			}
			switch name {
			case servicegraph.MetricRequests:
				require.Equal(t, dto.MetricType_COUNTER, mf.GetType())
				s.requests = m.GetCounter().GetValue()
			case servicegraph.MetricFailed:
				require.Equal(t, dto.MetricType_COUNTER, mf.GetType())
				s.failed = m.GetCounter().GetValue()
			case servicegraph.MetricServerSeconds:
				require.Equal(t, dto.MetricType_HISTOGRAM, mf.GetType())
				s.server = m.GetHistogram()
			case servicegraph.MetricClientSeconds:
				s.client = m.GetHistogram()
			}
		}
	}
	return out, mfs
}

// wantServiceGraph maps the graph's live edges to the label sets
// Grafana's service graph series should carry, with their requests and
// errors summed.
func wantServiceGraph(g *wireGraph) map[sgKey]*sgSeries {
	nodes := map[string]wireNode{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	label := func(id string) (name, ns string) {
		n := nodes[id]
		switch n.Kind {
		case "client":
			return "user", ""
		case "service":
			return n.Name, n.Namespace
		}
		return n.Name, ""
	}
	conn := func(src, dst string) string {
		s, d := nodes[src].Kind, nodes[dst].Kind
		switch {
		case s == "database" || d == "database":
			return "database"
		case s == "topic" || s == "queue" || d == "topic" || d == "queue":
			return "messaging_system"
		case s == "client" || d == "external":
			return "virtual_node"
		}
		return ""
	}
	out := map[sgKey]*sgSeries{}
	for _, e := range g.Edges {
		c, cns := label(e.Source)
		s, sns := label(e.Target)
		k := sgKey{c, s, conn(e.Source, e.Target), cns, sns}
		if out[k] == nil {
			out[k] = &sgSeries{}
		}
		out[k].requests += float64(e.requests())
		if e.Errors != nil {
			out[k].failed += float64(*e.Errors)
		}
	}
	return out
}

// sameCounts reports whether got has exactly want's label sets, with
// want's requests and failures.
func sameCounts(got, want map[sgKey]*sgSeries) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g := got[k]
		if g == nil || g.requests != w.requests || g.failed != w.failed {
			return false
		}
	}
	return true
}

func sgKeys(m map[sgKey]*sgSeries) []string {
	var out []string
	for k, s := range m {
		out = append(out, fmt.Sprintf("%v requests=%v failed=%v", k, s.requests, s.failed))
	}
	slices.Sort(out)
	return out
}

// waitServiceGraph waits until the graph the API serves (the last tick,
// its open bucket included) is complete by ready and /metrics (which adds
// buckets once they close) has exactly its label sets and counts, and
// returns the series.
func waitServiceGraph(t *testing.T, col started, ready func(*wireGraph) bool) map[sgKey]*sgSeries {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g := getGraph(t, col)
		got, _ := scrapeServiceGraph(t, col)
		want := wantServiceGraph(g)
		if ready(g) && sameCounts(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics %v\nwant (from /api/v1/graph) %v", sgKeys(got), sgKeys(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2EGrafanaServiceGraph: with --grafana-service-graph-metrics, OTLP
// traffic through a shop (a user's call, a service call, a database, a
// topic with a link-paired consumer, an external peer) shows on /metrics
// as the traces_service_graph_* series Grafana's service graph queries,
// parsed with Prometheus's own text parser: the same edges and counts as
// /api/v1/graph, the connection types Tempo writes, server histograms
// whose counts match the calls, and counters that only grow from one tick
// to the next while more traffic comes.
func TestE2EGrafanaServiceGraph(t *testing.T) {
	col := startCollector(t, "--grafana-service-graph-metrics", "--window=1m", "--bucket=1s", "--eval-interval=1s", "--pair-ttl=1s")
	url := "http://" + col.OTLPHTTP.String() + "/v1/traces"

	got, mfs := scrapeServiceGraph(t, col)
	require.Empty(t, got, "no traffic, no series")
	require.Contains(t, mfs, "cartograph_grafana_service_graph_series")

	const batch = 12
	var prev map[sgKey]*sgSeries
	for round := 1; round <= 3; round++ {
		exportProto(t, url, shopTraces(t, (round-1)*batch, batch))
		// Wait until both hold every call of the round, the unanswered
		// ones included.
		got = waitServiceGraph(t, col, func(g *wireGraph) bool {
			return g.edge("service:shop/frontend", "external:api.stripe.com:443").requests() == uint64(round*batch)
		})

		want := []sgKey{
			{"user", "frontend", "virtual_node", "", "shop"},
			{"frontend", "backend", "", "shop", "shop"},
			{"frontend", "orders", "database", "shop", ""},
			{"frontend", "events", "messaging_system", "shop", ""},
			{"events", "billing", "messaging_system", "", ""},
			{"frontend", "api.stripe.com:443", "virtual_node", "shop", ""},
		}
		require.ElementsMatch(t, want, slices.Collect(maps.Keys(got)), "%v", sgKeys(got))
		for _, k := range want {
			require.EqualValues(t, round*batch, got[k].requests, "%v", k)
		}
		backend := got[sgKey{"frontend", "backend", "", "shop", "shop"}]
		require.EqualValues(t, round*batch/4, backend.failed, "every 4th call to backend fails")
		require.EqualValues(t, round*batch, backend.server.GetSampleCount())
		require.InDelta(t, 0.020*float64(round*batch), backend.server.GetSampleSum(), 0.020*float64(round*batch)*0.02, "20 ms each, as the server saw it")
		require.InDelta(t, 0.030*float64(round*batch), backend.client.GetSampleSum(), 0.030*float64(round*batch)*0.02, "30 ms each, as the client saw it")
		orders := got[sgKey{"frontend", "orders", "database", "shop", ""}]
		require.EqualValues(t, round*batch, orders.server.GetSampleCount(), "the database call's own duration stands for the server's")

		for k, p := range prev {
			n := got[k]
			require.GreaterOrEqual(t, n.requests, p.requests, "%v: a counter never goes down", k)
			require.GreaterOrEqual(t, n.failed, p.failed, "%v", k)
			if p.server != nil {
				require.GreaterOrEqual(t, n.server.GetSampleCount(), p.server.GetSampleCount(), "%v", k)
				for i, b := range p.server.GetBucket() {
					require.GreaterOrEqual(t, n.server.GetBucket()[i].GetCumulativeCount(), b.GetCumulativeCount(), "%v le=%v", k, b.GetUpperBound())
				}
			}
		}
		prev = got
	}
	// Ticks go on without traffic: nothing is added twice.
	time.Sleep(3 * time.Second)
	again, _ := scrapeServiceGraph(t, col)
	require.True(t, sameCounts(again, prev), "%v", sgKeys(again))
}

// TestE2EGrafanaServiceGraphBounded: a sender inventing a service, a peer
// and a topic per span gets no more series than --max-edges allows: the
// graph folds the excess into its overflow nodes, and the series follow
// it ("(other services)" and so on), with every call still counted.
func TestE2EGrafanaServiceGraphBounded(t *testing.T) {
	const maxEdges = 40
	col := startCollector(t, "--grafana-service-graph-metrics", fmt.Sprintf("--max-edges=%d", maxEdges),
		"--window=1m", "--bucket=1s", "--eval-interval=1s", "--pair-ttl=1s")
	url := "http://" + col.OTLPHTTP.String() + "/v1/traces"
	const names = 300
	for i := 0; i < names; i += 100 {
		exportProto(t, url, inventedNames(t, i, 100))
	}
	got := waitServiceGraph(t, col, func(g *wireGraph) bool {
		var total uint64
		for _, e := range g.Edges {
			total += e.requests()
		}
		return total == 3*names
	})
	require.LessOrEqual(t, len(got), servicegraph.MaxSeriesFor(maxEdges))
	var total float64
	overflow := false
	for k, s := range got {
		total += s.requests
		overflow = overflow || k.server == "(other services)" || k.server == "(other externals)" || k.server == "(other topics)"
	}
	require.EqualValues(t, 3*names, total, "every call still counted")
	require.True(t, overflow, "the excess is on the overflow nodes: %v", sgKeys(got))
	_, mfs := scrapeServiceGraph(t, col)
	held := mfs["cartograph_grafana_service_graph_series"].GetMetric()[0].GetGauge().GetValue()
	require.EqualValues(t, len(got), held)
}

// TestE2EGrafanaServiceGraphOff: without the flag, /metrics has no
// traces_service_graph_* series.
func TestE2EGrafanaServiceGraphOff(t *testing.T) {
	col := startCollector(t, "--window=1m", "--bucket=1s", "--eval-interval=1s", "--pair-ttl=1s")
	exportProto(t, "http://"+col.OTLPHTTP.String()+"/v1/traces", shopTraces(t, 0, 4))
	pollGraph(t, col, 10*time.Second, func(g *wireGraph) bool { return len(g.Edges) >= 6 })
	time.Sleep(2 * time.Second)
	got, mfs := scrapeServiceGraph(t, col)
	require.Empty(t, got)
	require.NotContains(t, mfs, "cartograph_grafana_service_graph_series")
}
