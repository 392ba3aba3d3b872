package main

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// sloConfigScaled is an objectives file whose windows are the workbook's
// scaled down 180 times (1h/5m -> 20s/~2s, 6h/30m -> 120s/10s) with the
// workbook's factors, so that a test sees a page within seconds.
const sloConfigScaled = `
windows:
  - {long: 20s, short: 4s, factor: 14.4, severity: critical}
  - {long: 2m, short: 10s, factor: 6, severity: warning}
objectives:
  - {name: gateway-availability, service: gateway, sli: availability, target: 99}
  - {name: gateway-latency, service: gateway, sli: latency, target: 99, threshold: 300ms}
  - {name: ghost-availability, service: ghost, sli: availability, target: 99.9}
`

// sloSystem is cascadeSystem's web chain (gateway -> api -> orders ->
// orders-db, with retries) under Poisson arrivals, the gateway as two
// replicas (service.instance.id) taking requests in turn, with
// background errors: the gateway fails 0.3% of its requests itself, and
// orders-db fails 0.5% of its queries (dbFail: 80%).
type sloSystem struct {
	*cascadeSystem
	gateways [2]*sdktrace.TracerProvider
	n        int
	dbFail   atomic.Bool
}

func newSLOSystem(t *testing.T, col started) *sloSystem {
	s := &sloSystem{cascadeSystem: newCascadeSystem(t, col)}
	s.rng = rand.New(rand.NewPCG(4, 20))
	for i := range s.gateways {
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"),
				attribute.String("service.instance.id", "gateway-"+strconv.Itoa(i)))),
			sdktrace.WithBatcher(grpcExporter(t, col.OTLPGRPC), sdktrace.WithBatchTimeout(50*time.Millisecond)))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tp.Shutdown(ctx)
		})
		s.gateways[i] = tp
	}
	return s
}

func (s *sloSystem) request(ctx context.Context) {
	s.n++
	s.tps["gateway"] = s.gateways[s.n%2] // the replica taking this request
	start := time.Now().Add(-100 * time.Millisecond)
	s.serve(ctx, "gateway", "/api/orders", start, func(ctx context.Context, at time.Time) (time.Time, bool) {
		end, failed := s.call(ctx, "gateway", "api", "/v1/orders", 2, at, func(ctx context.Context, at time.Time) (time.Time, bool) {
			return s.call(ctx, "api", "orders", "/orders", 3, at, func(ctx context.Context, at time.Time) (time.Time, bool) {
				_, q := s.tracer("orders").Start(ctx, "SELECT orders", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at),
					trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.namespace", "orders-db"),
						attribute.String("db.operation.name", "SELECT"), attribute.String("server.address", "pg")))
				p := 0.005
				if s.dbFail.Load() {
					p = 0.8
				}
				failed := s.rng.Float64() < p
				if failed {
					q.SetStatus(codes.Error, "deadlock detected")
				}
				end := at.Add(time.Duration(1+s.rng.IntN(3)) * time.Millisecond)
				q.End(trace.WithTimestamp(end))
				return end, failed
			})
		})
		return end, failed || s.rng.Float64() < 0.003
	})
}

// run sends Poisson arrivals at 20 requests/s until ctx is done.
func (s *sloSystem) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Poisson with mean 2 per 100 ms (Knuth)
		n, l, p := 0, math.Exp(-2), 1.0
		for p *= s.rng.Float64(); p > l; p *= s.rng.Float64() {
			n++
		}
		for range n {
			s.request(ctx)
		}
		for _, tp := range []*sdktrace.TracerProvider{s.gateways[0], s.gateways[1], s.tps["api"], s.tps["orders"]} {
			_ = tp.ForceFlush(ctx)
		}
	}
}

// labelled returns the value of the sample of name whose labels include
// every one of want ("k=\"v\""), and whether there is one.
func labelled(exposition, name string, want ...string) (float64, bool) {
	for line := range strings.Lines(exposition) {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), name), "} ")
		if !ok || !func() bool {
			for _, w := range want {
				if !strings.Contains(labels, w) {
					return false
				}
			}
			return true
		}() {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		return v, err == nil
	}
	return 0, false
}

// TestE2ESLOBurn drives the web chain through OTLP from in-test services
// with an availability and a latency objective on the gateway (windows
// scaled down, the workbook's factors): healthy with background errors
// well inside the budget, nothing fires; then orders-db fails, the
// callers retry into storms, and the gateway's availability objective
// burns: its slo_burn finding fires critical with the burn rates in its
// evidence and on /metrics, joins the incident the retry storms make
// (cause orders-db) and shows in that incident's impact on the gateway;
// the latency objective, whose requests stay fast, does not burn; the
// burn reaches a real Alertmanager as an alert of that incident. Once
// the database recovers the burn resolves.
func TestE2ESLOBurn(t *testing.T) {
	am := startAlertmanagerWith(t, "route:\n  receiver: nobody\n  group_by: [incident_id]\n  group_wait: 1s\nreceivers:\n  - name: nobody\n")
	dir := t.TempDir()
	cfgFile, amFile := filepath.Join(dir, "slo.yaml"), filepath.Join(dir, "cartograph.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(sloConfigScaled), 0o600))
	require.NoError(t, os.WriteFile(amFile, []byte("alertmanager:\n  interval: 1s\n"), 0o600))
	col := startCollector(t, "--slo-config="+cfgFile, "--config="+amFile, "--alertmanager-url="+am,
		"--eval-interval=1s", "--window=4s", "--bucket=500ms", "--trace-sample-one-in=1", "--trace-idle=300ms")
	sys := newSLOSystem(t, col)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sys.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Healthy past the fast pair's long window: background errors burn
	// the budget at about 0.3, no finding, no incident.
	time.Sleep(24 * time.Second)
	require.Empty(t, getFindings(t, col, "all"), "background errors well inside the budget fire nothing")
	require.Empty(t, getIncidents(t, col, "all"))
	m := metricsText(t, col)
	burn, ok := labelled(m, "cartograph_slo_burn_rate", `objective="gateway-availability"`, `window="20s"`)
	require.True(t, ok, "burn rates on /metrics")
	require.Less(t, burn, 2.0, "healthy burn rate")
	_, ok = labelled(m, "cartograph_slo_burn_rate", `objective="ghost-availability"`)
	require.False(t, ok, "an objective whose entry point never carried a call has no burn rate")
	unseen, _ := labelled(m, "cartograph_slo_objectives", `entry="unseen"`)
	require.Equal(t, 1.0, unseen, "the ghost's objective is reported unseen")

	sys.dbFail.Store(true)
	var slo wireFinding
	var inc wireIncident
	require.Eventually(t, func() bool {
		slo, inc = wireFinding{}, wireIncident{}
		for _, f := range getFindings(t, col, "firing") {
			if f.Kind == "slo_burn" {
				slo = f
			}
		}
		if slo.ID == "" {
			return false
		}
		for _, i := range getIncidents(t, col, "open") {
			if slices.Contains(i.Findings, slo.ID) {
				inc = i
			}
		}
		// The slow pair pages first (its long window holds the healthy
		// past less), the fast pair once its hour's scale-model burns.
		return inc.ID != "" && len(inc.Findings) >= 2 && inc.cause() == "orders-db" && slo.Severity == "critical"
	}, 40*time.Second, 250*time.Millisecond, "slo_burn fires and joins the incident of orders-db: finding %+v, incidents %+v", slo, getIncidents(t, col, "all"))

	require.Equal(t, "gateway", slo.Subject["node"])
	require.Equal(t, "critical", slo.Severity)
	require.Equal(t, "gateway-availability", slo.Evidence["objective"])
	require.Equal(t, "20s/4s", slo.Evidence["windows"])
	require.Greater(t, slo.Evidence["burn_rate"], 14.4)
	require.Greater(t, slo.Evidence["burn_rate_short"], 14.4)
	require.Contains(t, slo.Summary, "gateway's availability objective (99%) burns its error budget")
	objs, _ := slo.Evidence["objectives"].([]any)
	require.Len(t, objs, 1, "the latency objective does not burn: %v", slo.Evidence)

	code, _, body := httpGet(t, apiURL(col, "/api/v1/incidents/"+inc.ID))
	require.Equal(t, 200, code)
	require.Contains(t, string(body), `"slos":[{"finding_id":"`+slo.ID+`","objective":"gateway-availability","sli":"availability","target":99,"severity":"critical","windows":"20s/4s"`,
		"the incident's impact on the gateway lists the burning objective")
	m = metricsText(t, col)
	_, ok = labelled(m, "cartograph_finding_firing", `kind="slo_burn"`, `node="gateway"`)
	require.True(t, ok, "the firing slo_burn on /metrics")
	burn, _ = labelled(m, "cartograph_slo_burn_rate", `objective="gateway-availability"`, `window="20s"`)
	require.Greater(t, burn, 14.4)
	left, ok := labelled(m, "cartograph_slo_error_budget_remaining", `objective="gateway-availability"`)
	require.True(t, ok)
	require.Less(t, left, 1.0)

	// Alertmanager has the burn, as one more alert of the incident.
	require.Eventually(t, func() bool {
		resp, err := http.Get(am + "/api/v2/alerts")
		require.NoError(t, err)
		defer resp.Body.Close()
		var alerts []amAlert
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&alerts))
		for _, a := range alerts {
			if a.Labels["finding_id"] == slo.ID {
				return a.Labels["alertname"] == "CartographSloBurn" && a.Labels["kind"] == "slo_burn" &&
					a.Labels["node"] == "gateway" && a.Annotations["incident"] == inc.ID && a.Annotations["severity"] == "critical"
			}
		}
		return false
	}, 15*time.Second, 250*time.Millisecond, "the slo_burn alert in Alertmanager, in incident %s", inc.ID)

	// The database recovers: the short window stops burning at once, and
	// the finding resolves though the long windows still remember.
	sys.dbFail.Store(false)
	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, col, "all") {
			if f.ID == slo.ID {
				return f.State == "resolved"
			}
		}
		return false
	}, 30*time.Second, 250*time.Millisecond, "the burn resolves after the recovery")
}

// TestE2ESLOSeededAfterRestart: a collector restarted on the same storage
// (the embedded store's data directory, or ClickHouse) fills its
// burn-rate windows from stored history, so the long windows still hold
// the burn from before the restart.
func TestE2ESLOSeededAfterRestart(t *testing.T) {
	for _, backend := range []string{"embedded", "clickhouse"} {
		t.Run(backend, func(t *testing.T) { sloSeeded(t, storageArgs(t, backend)) })
	}
}

func sloSeeded(t *testing.T, storage []string) {
	cfgFile := filepath.Join(t.TempDir(), "slo.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(sloConfigScaled), 0o600))
	args := append(storage, "--slo-config="+cfgFile, "--eval-interval=1s", "--window=4s", "--bucket=500ms", "--flush-interval=200ms", "--pair-ttl=2s")

	ctx1, stop1 := context.WithCancel(context.Background())
	col1, done1 := runCollector(t, ctx1, args...)
	sys := newSLOSystem(t, col1)
	sys.dbFail.Store(true)
	sctx, stopSys := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sys.run(sctx) })
	var before float64
	require.Eventually(t, func() bool {
		before, _ = labelled(metricsText(t, col1), "cartograph_slo_burn_rate", `objective="gateway-availability"`, `window="2m"`)
		return before > 6
	}, 30*time.Second, 250*time.Millisecond, "the slow pair's long window burns")
	stopSys()
	wg.Wait()
	// Quiet past the live window (4s), so that what the restarted
	// graph restores of its window holds no call: only the stored
	// history can bring the burn back.
	time.Sleep(6 * time.Second)
	stop1()
	require.NoError(t, <-done1)

	ctx2, stop2 := context.WithCancel(context.Background())
	col2, done2 := runCollector(t, ctx2, args...)
	t.Cleanup(func() { stop2(); <-done2 })
	var after float64
	require.Eventually(t, func() bool {
		var ok bool
		after, ok = labelled(metricsText(t, col2), "cartograph_slo_burn_rate", `objective="gateway-availability"`, `window="2m"`)
		return ok
	}, 10*time.Second, 200*time.Millisecond, "burn rates after the restart, with no new traffic")
	require.Greater(t, after, 6.0, "the 2-minute window kept the burn across the restart (before: %.1f)", before)
}
