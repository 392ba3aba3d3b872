package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
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

// --- wire shape of GET /api/v1/changes (SPEC.md "HTTP API") -----------------

type wireChange struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Node      string    `json:"node"`
	Source    string    `json:"source"`
	Target    string    `json:"target"`
	Attribute string    `json:"attribute"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Summary   string    `json:"summary"`
}

func (c wireChange) String() string {
	return fmt.Sprintf("%s %s %s%s→%s %s→%s", c.At.Format("15:04:05.000"), c.Kind, c.Node, c.Source, c.Target, c.From, c.To)
}

func getChanges(t *testing.T, col started, from, to time.Time) []wireChange {
	t.Helper()
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	code, _, body := httpGet(t, apiURL(col, "/api/v1/changes?"+q.Encode()))
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Changes []wireChange `json:"changes"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	return resp.Changes
}

func findChange(cs []wireChange, match func(wireChange) bool) (wireChange, bool) {
	for _, c := range cs {
		if match(c) {
			return c, true
		}
	}
	return wireChange{}, false
}

// deploySystem is a gateway calling payment (two replicas, each its own
// SDK with service.version and service.instance.id on its resource),
// which queries its database; the gateway retries payment twice
// (http.request.resend_count) when it fails. Now and then, about once
// every 10 s (Poisson), the gateway calls audit; once search is on, it
// calls search on every request.
type deploySystem struct {
	t   *testing.T
	col started
	rng *rand.Rand

	mu       sync.Mutex
	gateway  *sdktrace.TracerProvider
	payment  []*sdktrace.TracerProvider // the live replicas
	others   map[string]*sdktrace.TracerProvider
	n        int
	failing  atomic.Bool // payment fails 80% of its requests
	search   atomic.Bool
	auditors atomic.Int64 // audit calls made
}

// newVersioned returns a TracerProvider for one instance of service at
// version, shut down at cleanup.
func newVersioned(t *testing.T, col started, service, version, instance string) *sdktrace.TracerProvider {
	t.Helper()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service),
			attribute.String("service.version", version), attribute.String("service.instance.id", instance))),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(grpcExporter(t, col.OTLPGRPC), sdktrace.WithBatchTimeout(50*time.Millisecond)),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, tp.Shutdown(ctx), "shutdown of %s's TracerProvider", instance)
	})
	return tp
}

func newDeploySystem(t *testing.T, col started) *deploySystem {
	s := &deploySystem{t: t, col: col, rng: rand.New(rand.NewPCG(3, 20)), others: map[string]*sdktrace.TracerProvider{}}
	s.gateway = newVersioned(t, col, "gateway", "5.0.1", "gw-1")
	s.payment = []*sdktrace.TracerProvider{newVersioned(t, col, "payment", "1.41", "pay-7f9c-1"), newVersioned(t, col, "payment", "1.41", "pay-7f9c-2")}
	for _, name := range []string{"audit", "search"} {
		s.others[name] = newVersioned(t, col, name, "1", name+"-1")
	}
	return s
}

// redeploy replaces payment's replicas with two of version.
func (s *deploySystem) redeploy(version string) {
	a, b := newVersioned(s.t, s.col, "payment", version, "pay-"+version+"-1"), newVersioned(s.t, s.col, "payment", version, "pay-"+version+"-2")
	s.mu.Lock()
	s.payment = []*sdktrace.TracerProvider{a, b}
	s.mu.Unlock()
}

// call is the gateway's HTTP call to callee (tp), tried up to attempts
// times while it fails; inside is what the callee does.
func (s *deploySystem) call(ctx context.Context, callee string, tp *sdktrace.TracerProvider, attempts int, at time.Time, inside func(context.Context, time.Time) (time.Time, bool)) time.Time {
	failed := true
	for a := 0; a < attempts && failed; a++ {
		attrs := []attribute.KeyValue{attribute.String("http.request.method", "POST"), attribute.String("server.address", callee)}
		if a > 0 {
			attrs = append(attrs, attribute.Int("http.request.resend_count", a))
		}
		cctx, cl := s.gateway.Tracer("e2e").Start(ctx, "POST", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at), trace.WithAttributes(attrs...))
		rctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(cctx))
		sctx, sv := tp.Tracer("e2e").Start(rctx, "POST /"+callee, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(at.Add(time.Millisecond)),
			trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("http.route", "/"+callee)))
		end := at.Add(3 * time.Millisecond)
		failed = false
		if inside != nil {
			end, failed = inside(sctx, at.Add(2*time.Millisecond))
		}
		status := 200
		if failed {
			status = 500
			sv.SetStatus(codes.Error, "internal error")
			cl.SetStatus(codes.Error, "500")
		}
		sv.SetAttributes(attribute.Int("http.response.status_code", status))
		sv.End(trace.WithTimestamp(end))
		at = end.Add(time.Millisecond)
		cl.SetAttributes(attribute.Int("http.response.status_code", status))
		cl.End(trace.WithTimestamp(at))
	}
	return at
}

// request is one request entering the gateway.
func (s *deploySystem) request(ctx context.Context) {
	s.mu.Lock()
	pay := s.payment[s.n%len(s.payment)]
	s.n++
	audit := s.rng.Float64() < 0.01 // 1% of 10 requests a second: one call per 10 s
	failing := s.failing.Load() && s.rng.Float64() < 0.8
	s.mu.Unlock()
	start := time.Now().Add(-100 * time.Millisecond)
	gctx, g := s.gateway.Tracer("e2e").Start(ctx, "GET /checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/checkout")))
	at := s.call(gctx, "payment", pay, 3, start.Add(time.Millisecond), func(ctx context.Context, at time.Time) (time.Time, bool) {
		_, q := pay.Tracer("e2e").Start(ctx, "INSERT payments", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at),
			trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.namespace", "payment-db"),
				attribute.String("db.operation.name", "INSERT"), attribute.String("server.address", "pg")))
		end := at.Add(2 * time.Millisecond)
		q.End(trace.WithTimestamp(end))
		return end.Add(time.Millisecond), failing
	})
	if s.search.Load() {
		at = s.call(gctx, "search", s.others["search"], 1, at, nil)
	}
	if audit {
		s.auditors.Add(1)
		at = s.call(gctx, "audit", s.others["audit"], 1, at, nil)
	}
	g.End(trace.WithTimestamp(at.Add(time.Millisecond)))
}

// run drives 10 requests a second until ctx is done; the first request
// calls audit, so that the rare edge is there from the start.
func (s *deploySystem) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	s.auditors.Add(1)
	at := s.call(ctx, "audit", s.others["audit"], 1, time.Now(), nil)
	_ = at
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.request(ctx)
		s.mu.Lock()
		tps := append([]*sdktrace.TracerProvider{s.gateway}, s.payment...)
		s.mu.Unlock()
		for _, tp := range s.others {
			tps = append(tps, tp)
		}
		for _, tp := range tps {
			_ = tp.ForceFlush(ctx)
		}
	}
}

// TestE2EChanges drives services instrumented with the Go SDK through
// OTLP: a new dependency (gateway → search) is recorded added; payment
// is redeployed with a new service.version just as it starts failing,
// and the incident that follows names payment, cites the version change
// and says so in its reasons; a rare edge (gateway → audit, Poisson, one
// call per 10 s, so the 4 s window is mostly empty of it) is neither
// removed nor re-added; the graph diff lists the changes between its two
// times.
func TestE2EChanges(t *testing.T) {
	start := time.Now()
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--eval-interval=1s", "--window=4s", "--bucket=500ms", "--changes-gone-after=8s")
	sys := newDeploySystem(t, col)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sys.run(ctx) })
	var auditAbsent, polls atomic.Int64
	wg.Go(func() { // how often the rare edge is missing from the live window
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			polls.Add(1)
			if getGraph(t, col).edge("service:gateway", "service:audit").requests() == 0 { // gone, or idle
				auditAbsent.Add(1)
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	// What is there from the start was there before: no change while
	// the recorder warms up (a window and --changes-gone-after).
	time.Sleep(10 * time.Second)
	require.Empty(t, getChanges(t, col, start, time.Now()), "nothing changed")

	// A new dependency.
	searchOn := time.Now()
	sys.search.Store(true)
	var added wireChange
	require.Eventually(t, func() bool {
		var ok bool
		added, ok = findChange(getChanges(t, col, start, time.Now()), func(c wireChange) bool {
			return c.Kind == "edge_added" && c.Source == "gateway" && c.Target == "search"
		})
		return ok
	}, 10*time.Second, 250*time.Millisecond, "gateway → search recorded added")
	require.WithinDuration(t, searchOn, added.At, 5*time.Second)
	_, ok := findChange(getChanges(t, col, start, time.Now()), func(c wireChange) bool { return c.Kind == "node_added" && c.Node == "search" })
	require.True(t, ok, "search recorded added")

	// payment redeployed as it starts failing: the gateway retries it.
	deployed := time.Now()
	sys.redeploy("1.42")
	sys.failing.Store(true)
	var version wireChange
	var inc wireIncident
	require.Eventually(t, func() bool {
		version, ok = findChange(getChanges(t, col, start, time.Now()), func(c wireChange) bool { return c.Kind == "version" && c.Node == "payment" })
		if !ok {
			return false
		}
		for _, i := range getIncidents(t, col, "open") {
			if i.cause() == "payment" && len(i.Changes) > 0 {
				inc = i
				return true
			}
		}
		return false
	}, 30*time.Second, 250*time.Millisecond, "an incident naming payment and citing its new version; changes %v, incidents %+v", getChanges(t, col, start, time.Now()), getIncidents(t, col, "all"))
	require.Equal(t, "service.version", version.Attribute)
	require.Equal(t, "1.41", version.From)
	require.Equal(t, "1.42", version.To)
	require.Equal(t, "version 1.42 of payment (was 1.41)", version.Summary)
	require.WithinDuration(t, deployed, version.At, 3*time.Second, "at the new version's first span")
	require.Contains(t, inc.Changes, version.ID)
	require.Contains(t, strings.Join(inc.RootCauses[0].Reasons, "\n"), "before the incident began: version 1.42 of payment (was 1.41)")
	t.Logf("incident %s: %+v", inc.ID, inc.RootCauses[0])
	all := getChanges(t, col, start, time.Now())
	_, restart := findChange(all, func(c wireChange) bool { return c.Attribute == "service.instance.id" })
	require.False(t, restart, "the redeploy is said once, as its version: %v", all)

	// The UI draws the new version on payment's charts, with its label.
	var page string
	require.Eventually(t, func() bool {
		code, _, body := httpGet(t, "http://"+col.UI.String()+"/node?id="+url.QueryEscape("service:payment"))
		page = string(body)
		return code == http.StatusOK && strings.Contains(page, `<g class="change-marker version">`)
	}, 10*time.Second, 250*time.Millisecond, "no marker on payment's charts")
	require.Contains(t, page, ">payment 1.42</text>")
	require.Contains(t, page, `<li data-change="`+version.ID+`">`)
	// The Incidents page says what the cited change was.
	require.Eventually(t, func() bool {
		code, _, body := httpGet(t, "http://"+col.UI.String()+"/incidents?id="+url.QueryEscape(inc.ID))
		page = string(body)
		return code == http.StatusOK && strings.Contains(page, "version 1.42 of payment (was 1.41)")
	}, 10*time.Second, 250*time.Millisecond, "the Incidents page does not say what changed: %s", page)

	// The diff between a time before search and now lists its changes.
	q := url.Values{"from": {searchOn.Add(-time.Second).UTC().Format(time.RFC3339Nano)}, "to": {time.Now().UTC().Format(time.RFC3339Nano)}, "window": {"2s"}}
	code, _, body := httpGet(t, apiURL(col, "/api/v1/graph/diff?"+q.Encode()))
	require.Equal(t, http.StatusOK, code, string(body))
	var diff struct {
		Changes []wireChange `json:"changes"`
	}
	require.NoError(t, json.Unmarshal(body, &diff))
	ids := []string{}
	for _, c := range diff.Changes {
		ids = append(ids, c.ID)
	}
	require.Subset(t, ids, []string{added.ID, version.ID})

	// The rare edge: missing from the window at many polls over 45 s,
	// never removed nor added.
	time.Sleep(time.Until(start.Add(45 * time.Second)))
	require.Greater(t, auditAbsent.Load(), polls.Load()/4, "the audit edge was in the window at most polls (%d of %d absent): the test shows nothing", auditAbsent.Load(), polls.Load())
	t.Logf("gateway → audit: %d calls, absent from the window at %d of %d polls", sys.auditors.Load(), auditAbsent.Load(), polls.Load())
	for _, c := range getChanges(t, col, start, time.Now()) {
		require.NotContains(t, c.Source+c.Target+c.Node, "audit", "the rare edge flapped: %v", c)
	}
}

// TestE2EChangesClickHouse: with ClickHouse, changes are stored: after a
// restart (a fresh recorder, nothing in memory) a past range still lists
// them, with the same ids.
func TestE2EChangesClickHouse(t *testing.T) {
	db := clickhouseDB(t)
	args := []string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://" + chTCP + "/" + db, "--collector-id=c1",
		"--eval-interval=1s", "--window=4s", "--bucket=500ms", "--flush-interval=200ms", "--changes-gone-after=5s"}
	start := time.Now()
	ctx1, stop1 := context.WithCancel(context.Background())
	col1, done1 := runCollector(t, ctx1, args...)
	sys := newDeploySystem(t, col1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sys.run(ctx) })
	time.Sleep(7 * time.Second)
	sys.search.Store(true)
	sys.redeploy("1.42")
	var before []wireChange
	require.Eventually(t, func() bool {
		before = getChanges(t, col1, start, time.Now())
		_, edge := findChange(before, func(c wireChange) bool { return c.Kind == "edge_added" && c.Target == "search" })
		_, version := findChange(before, func(c wireChange) bool { return c.Kind == "version" && c.To == "1.42" })
		return edge && version
	}, 15*time.Second, 250*time.Millisecond, "an edge added and a version recorded")
	time.Sleep(3 * time.Second) // a few ticks: every change written
	cancel()
	wg.Wait()
	stop1()
	require.NoError(t, <-done1)
	stopped := time.Now()

	ctx2, stop2 := context.WithCancel(context.Background())
	t.Cleanup(stop2)
	col2, _ := runCollector(t, ctx2, args...)
	after := getChanges(t, col2, start, stopped)
	want := map[string]wireChange{}
	for _, c := range before {
		want[c.ID] = c
	}
	got := map[string]wireChange{}
	for _, c := range after {
		got[c.ID] = c
	}
	for id, c := range want {
		g, ok := got[id]
		require.True(t, ok, "change %v not stored; after the restart: %v", c, after)
		require.Equal(t, c.Summary, g.Summary)
		require.True(t, c.At.Equal(g.At), "%v != %v", c.At, g.At)
	}
	// A range before them lists none.
	require.Empty(t, getChanges(t, col2, start.Add(-time.Hour), start.Add(-time.Minute)))
}
