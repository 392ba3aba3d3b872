package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// --- wire shape of GET /api/v1/incidents (SPEC.md "HTTP API") ---------------

type wireIncident struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
	Findings   []string   `json:"findings"`
	RootCauses []struct {
		Node    string   `json:"node"`
		Source  string   `json:"source"`
		Target  string   `json:"target"`
		Score   float64  `json:"score"`
		Reasons []string `json:"reasons"`
	} `json:"root_causes"`
	Impact []struct {
		Entry      string             `json:"entry"`
		ErrorRatio map[string]float64 `json:"error_ratio"`
		P95Ms      map[string]float64 `json:"p95_ms"`
		Share      float64            `json:"share"`
	} `json:"impact"`
	Changes []string `json:"changes"`
}

func getIncidents(t *testing.T, col started, state string) []wireIncident {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, "/api/v1/incidents?state="+state))
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Incidents []wireIncident `json:"incidents"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	return resp.Incidents
}

// cause returns the incident's first root cause's node ("" when none).
func (w wireIncident) cause() string {
	if len(w.RootCauses) == 0 {
		return ""
	}
	return w.RootCauses[0].Node
}

// kafkaGroupLag is what the kafkametrics receiver sends for one group on
// one partition of topic.
func kafkaGroupLag(at time.Time, group, topic string, lagMsgs, committed int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	gauge := func(name string, v int64, attrs map[string]any) {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetIntValue(v)
		_ = dp.Attributes().FromRaw(attrs)
	}
	part := map[string]any{"group": group, "topic": topic, "partition": int64(0)}
	gauge("kafka.consumer_group.lag", lagMsgs, part)
	gauge("kafka.consumer_group.offset", committed, part)
	gauge("kafka.partition.current_offset", committed+lagMsgs, map[string]any{"topic": topic, "partition": int64(0)})
	gauge("kafka.consumer_group.members", 1, map[string]any{"group": group})
	return md
}

// cascadeSystem is two unrelated systems instrumented with the Go SDK,
// each service with a TracerProvider of its own exporting over OTLP/gRPC:
//
//   - web: gateway -> api -> orders -> the orders-db database; the
//     gateway retries a failed call to api once, api retries orders
//     twice (http.request.resend_count), orders fails when its query does;
//   - shop publishes to the orders and refunds topics, both consumed by
//     billing (groups billing and billing-refunds), its lag reported as
//     the kafkametrics receiver's metrics.
//
// dbFails makes 80% of orders-db's queries fail; stalled stops billing.
type cascadeSystem struct {
	t        *testing.T
	tps      map[string]*sdktrace.TracerProvider
	metrics  pmetricotlp.GRPCClient
	rng      *rand.Rand
	dbFails  atomic.Bool
	stalled  atomic.Bool
	produced int64 // per topic, both topics alike
	consumed int64
}

func newCascadeSystem(t *testing.T, col started) *cascadeSystem {
	s := &cascadeSystem{t: t, tps: map[string]*sdktrace.TracerProvider{}, rng: rand.New(rand.NewPCG(20, 20))}
	for _, name := range []string{"gateway", "api", "orders", "shop", "billing"} {
		s.tps[name] = newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), name, "")
	}
	conn, err := grpc.NewClient(col.OTLPGRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	s.metrics = pmetricotlp.NewGRPCClient(conn)
	return s
}

func (s *cascadeSystem) tracer(name string) trace.Tracer { return s.tps[name].Tracer("e2e") }

// serve is a server span of service name at `at`, with what it does
// inside (work returns its end and whether it failed).
func (s *cascadeSystem) serve(ctx context.Context, name, route string, at time.Time, work func(context.Context, time.Time) (time.Time, bool)) (time.Time, bool) {
	sctx, sp := s.tracer(name).Start(ctx, "GET "+route, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(at),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", route)))
	end, failed := work(sctx, at.Add(time.Millisecond))
	end = end.Add(time.Millisecond)
	status := 200
	if failed {
		status = 500
		sp.SetStatus(codes.Error, "internal error")
	}
	sp.SetAttributes(attribute.Int("http.response.status_code", status))
	sp.End(trace.WithTimestamp(end))
	return end, failed
}

// call is from's HTTP call to service to, tried attempts times while it
// fails (each retry a client span with http.request.resend_count).
func (s *cascadeSystem) call(ctx context.Context, from, to, route string, attempts int, at time.Time,
	work func(context.Context, time.Time) (time.Time, bool)) (time.Time, bool) {
	failed := true
	for a := 0; a < attempts && failed; a++ {
		attrs := []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("server.address", to)}
		if a > 0 {
			attrs = append(attrs, attribute.Int("http.request.resend_count", a))
		}
		cctx, cl := s.tracer(from).Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at), trace.WithAttributes(attrs...))
		rctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(cctx))
		var end time.Time
		end, failed = s.serve(rctx, to, route, at.Add(time.Millisecond), work)
		status := 200
		if failed {
			status = 500
			cl.SetStatus(codes.Error, "500")
		}
		cl.SetAttributes(attribute.Int("http.response.status_code", status))
		at = end.Add(time.Millisecond)
		cl.End(trace.WithTimestamp(at))
	}
	return at, failed
}

// request is one request entering the gateway.
func (s *cascadeSystem) request(ctx context.Context) {
	start := time.Now().Add(-100 * time.Millisecond)
	s.serve(ctx, "gateway", "/api/orders", start, func(ctx context.Context, at time.Time) (time.Time, bool) {
		return s.call(ctx, "gateway", "api", "/v1/orders", 2, at, func(ctx context.Context, at time.Time) (time.Time, bool) {
			return s.call(ctx, "api", "orders", "/orders", 3, at, func(ctx context.Context, at time.Time) (time.Time, bool) {
				_, q := s.tracer("orders").Start(ctx, "SELECT orders", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at),
					trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.namespace", "orders-db"),
						attribute.String("db.operation.name", "SELECT"), attribute.String("server.address", "pg")))
				failed := s.dbFails.Load() && s.rng.Float64() < 0.8
				if failed {
					q.SetStatus(codes.Error, "deadlock detected")
					q.SetAttributes(attribute.String("error.type", "40P01"))
				}
				end := at.Add(2 * time.Millisecond)
				q.End(trace.WithTimestamp(end))
				return end, failed
			})
		})
	})
}

// publish is one message shop sends to each topic, and billing's
// processing of it unless billing has stalled.
func (s *cascadeSystem) publish(ctx context.Context) {
	s.produced++
	for _, topic := range []string{"orders", "refunds"} {
		pctx, p := s.tracer("shop").Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", topic)))
		p.End()
		if s.stalled.Load() {
			continue
		}
		group := map[string]string{"orders": "billing", "refunds": "billing-refunds"}[topic]
		_, c := s.tracer("billing").Start(ctx, "process "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.Link{SpanContext: trace.SpanContextFromContext(pctx)}),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.consumer.group.name", group)))
		c.End()
	}
	if !s.stalled.Load() {
		s.consumed = s.produced
	}
}

// lag reports both groups' lag, as the kafkametrics receiver does.
func (s *cascadeSystem) lag(ctx context.Context) {
	for topic, group := range map[string]string{"orders": "billing", "refunds": "billing-refunds"} {
		_, err := s.metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(kafkaGroupLag(time.Now(), group, topic, s.produced-s.consumed, s.consumed)))
		require.NoError(s.t, err)
	}
}

// run drives the system until ctx is done: 20 requests and 20 messages a
// second, lag every half second.
func (s *cascadeSystem) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range 2 {
			s.request(ctx)
			s.publish(ctx)
		}
		for _, tp := range s.tps {
			_ = tp.ForceFlush(ctx)
		}
		if i%5 == 0 {
			s.lag(ctx)
		}
	}
}

// TestE2EIncidents drives two unrelated cascades at once through OTLP
// from in-test services (the Go SDK, kafkametrics-shaped metrics), each
// two findings deep: the orders database starts failing, so api retries
// orders and the gateway retries api (two retry storms; the database
// raises no finding of its own); and billing stalls on both topics it
// consumes (two consumer_lag findings). They must become two incidents,
// each naming its cause first (orders-db, billing) with its findings and
// the impact on the gateway's users, counted on /metrics, and reach a
// real Alertmanager labelled so that its grouping by incident_id makes
// one group, one page, per incident. Then both recover and the incidents
// resolve.
func TestE2EIncidents(t *testing.T) {
	am := startAlertmanagerWith(t, "route:\n  receiver: nobody\n  group_by: [incident_id]\n  group_wait: 1s\nreceivers:\n  - name: nobody\n")
	cfgFile := filepath.Join(t.TempDir(), "cartograph.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("alertmanager:\n  interval: 1s\n"), 0o600))
	col := startCollector(t, "--config="+cfgFile, "--alertmanager-url="+am,
		"--eval-interval=1s", "--window=4s", "--bucket=500ms", "--trace-sample-one-in=1", "--trace-idle=300ms")
	sys := newCascadeSystem(t, col)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sys.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Healthy long enough for the baselines (3 evaluations) and the
	// window to fill: no incident.
	time.Sleep(6 * time.Second)
	require.Empty(t, getIncidents(t, col, "all"), "a healthy system opens no incident")
	require.Empty(t, getFindings(t, col, "all"))

	onset := time.Now()
	sys.dbFails.Store(true)
	sys.stalled.Store(true)
	var web, shop wireIncident
	findings := map[string]wireFinding{}
	describe := func() string {
		var b strings.Builder
		for _, inc := range getIncidents(t, col, "all") {
			fmt.Fprintf(&b, "\n%s %s, causes %+v, impact %+v, findings:", inc.ID, inc.State, inc.RootCauses, inc.Impact)
			for _, id := range inc.Findings {
				f := findings[id]
				fmt.Fprintf(&b, " %s %v;", f.Kind, f.Subject)
			}
		}
		return b.String()
	}
	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, col, "all") {
			findings[f.ID] = f
		}
		web, shop = wireIncident{}, wireIncident{}
		for _, inc := range getIncidents(t, col, "open") {
			switch {
			case inc.cause() == "orders-db" && len(inc.Findings) >= 2:
				web = inc
			case inc.cause() == "billing" && len(inc.Findings) >= 2:
				shop = inc
			}
		}
		return web.ID != "" && shop.ID != "" && len(web.Impact) > 0
	}, 30*time.Second, 250*time.Millisecond, "two incidents naming orders-db and billing, each two findings deep:%s", describe())
	t.Logf("both incidents open %v after the onset:%s", time.Since(onset).Round(time.Millisecond), describe())
	require.Len(t, getIncidents(t, col, "all"), 2, "two unrelated faults: two incidents:%s", describe())

	subjects := func(inc wireIncident) []string {
		var out []string
		for _, id := range inc.Findings {
			f := findings[id]
			out = append(out, f.Kind+" "+f.Subject["source"]+" -> "+f.Subject["target"]+f.Subject["node"])
		}
		return out
	}
	require.Subset(t, subjects(web), []string{"retry_storm api -> orders", "retry_storm gateway -> api"})
	require.Subset(t, subjects(shop), []string{"consumer_lag orders -> billing", "consumer_lag refunds -> billing"})
	for _, s := range subjects(web) {
		require.NotContains(t, s, "orders-db", "the database raised no finding of its own")
	}
	require.Contains(t, strings.Join(web.RootCauses[0].Reasons, "\n"), "raised no finding of its own")
	require.Equal(t, "inc-"+web.Findings[0], web.ID, "an incident is named after its first finding")
	require.Equal(t, []string{}, web.Changes)

	// What the gateway's users feel: its errors, before and now, and all
	// of its traffic passing through the database.
	require.Len(t, web.Impact, 1, "%+v", web.Impact)
	im := web.Impact[0]
	require.Equal(t, "gateway", im.Entry)
	require.Less(t, im.ErrorRatio["before"], 0.01)
	require.Greater(t, im.ErrorRatio["now"], 0.2, "80%% of queries fail, the gateway's retry of api's retries of orders leaves about half failing")
	require.InDelta(t, 1, im.Share, 0.01)
	require.Empty(t, shop.Impact, "no entry point's users feel billing's stall")

	// One incident, one by id.
	code, _, body := httpGet(t, apiURL(col, "/api/v1/incidents/"+url.PathEscape(web.ID)))
	require.Equal(t, http.StatusOK, code, string(body))
	code, _, _ = httpGet(t, apiURL(col, "/api/v1/incidents/inc-nope"))
	require.Equal(t, http.StatusNotFound, code)

	v, ok := metricValue(metricsText(t, col), "cartograph_incidents_open")
	require.True(t, ok)
	require.Equal(t, "2", v)

	// Alertmanager groups the alerts by incident_id: one group per
	// incident, holding the alerts of its findings, each labelled with
	// the incident's first root cause.
	type amGroup struct {
		Labels map[string]string `json:"labels"`
		Alerts []amAlert         `json:"alerts"`
	}
	var groups []amGroup
	want := map[string][]string{web.ID: web.Findings, shop.ID: shop.Findings}
	require.Eventually(t, func() bool {
		resp, err := http.Get(am + "/api/v2/alerts/groups")
		require.NoError(t, err)
		defer resp.Body.Close()
		groups = nil
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&groups))
		got := map[string][]string{}
		for _, g := range groups {
			for _, a := range g.Alerts {
				got[g.Labels["incident_id"]] = append(got[g.Labels["incident_id"]], a.Labels["finding_id"])
			}
		}
		for id, fs := range want {
			if !isSubset(fs, got[id]) {
				return false
			}
		}
		return len(got) == 2
	}, 15*time.Second, 250*time.Millisecond, "Alertmanager groups by incident: %+v, want %v", groups, want)
	for _, g := range groups {
		cause := map[string]string{web.ID: "orders-db", shop.ID: "billing"}[g.Labels["incident_id"]]
		for _, a := range g.Alerts {
			require.Equal(t, cause, a.Labels["root_cause"], "alert %v", a.Labels)
			require.Equal(t, g.Labels["incident_id"], a.Annotations["incident"])
		}
	}

	// Both recover: every finding resolves, and so do the incidents.
	sys.dbFails.Store(false)
	sys.stalled.Store(false)
	require.Eventually(t, func() bool {
		return len(getIncidents(t, col, "open")) == 0
	}, 30*time.Second, 250*time.Millisecond, "the incidents never resolved:%s", describe())
	resolved := getIncidents(t, col, "resolved")
	require.Len(t, resolved, 2)
	for _, inc := range resolved {
		require.NotNil(t, inc.ResolvedAt)
		require.True(t, slices.Contains([]string{web.ID, shop.ID}, inc.ID), "the same incidents, resolved")
	}
	v, _ = metricValue(metricsText(t, col), "cartograph_incidents_open")
	require.Equal(t, "0", v)
}

func isSubset(sub, of []string) bool {
	for _, s := range sub {
		if !slices.Contains(of, s) {
			return false
		}
	}
	return true
}
