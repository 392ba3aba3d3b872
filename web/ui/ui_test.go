package ui

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/web/api"
	"github.com/seed-a49a8342/cartograph/web/api/client"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files")

// fixedSource serves a fixed graph and findings: the collector's answers,
// as the golden pages are drawn from them. (The end-to-end tests in
// cmd/collector drive the real collector.)
type fixedSource struct {
	mu        sync.Mutex
	snap      *graph.Snapshot
	findings  []finding.Finding
	incidents []finding.Incident
	diff      *graph.Diff
	obsDiff   *api.ObservationDiff
	review    *review.Report
	err       error
	// diffWindows records the windows Diff was asked for; diffErr is its
	// answer when set.
	diffWindows []time.Duration
	diffErr     error
	// atAsked records the times FindingsAt was asked for.
	atAsked []time.Time
}

func (s *fixedSource) Graph(context.Context, time.Duration, time.Time) (*graph.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, s.err
}

func (s *fixedSource) Coupling(context.Context, time.Duration) (*client.Coupling, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &client.Coupling{GeneratedAt: s.snap.GeneratedAt, WindowSeconds: s.snap.WindowSeconds, Cycles: [][]string{{"service:shop/frontend", "service:shop/<script>alert(1)</script>"}}, LongestSyncChain: []string{"service:shop/frontend", "service:shop/<script>alert(1)</script>", "database:postgresql/orders"}}
	for _, n := range s.snap.Nodes {
		c.Nodes = append(c.Nodes, client.CouplingNode{ID: n.ID, Kind: n.Kind, Name: n.Name, FanIn: n.FanIn, FanOut: n.FanOut, Instability: n.Instability, Betweenness: &n.Betweenness})
	}
	return c, s.err
}

func (s *fixedSource) Findings(context.Context, finding.State) ([]finding.Finding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findings, s.err
}

// FindingsAt answers as the collector does from storage, whose findings
// are their latest state: each reconstructed as of at (finding.AsOf). It
// records the times asked for.
func (s *fixedSource) FindingsAt(_ context.Context, state finding.State, at time.Time) ([]finding.Finding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.atAsked = append(s.atAsked, at)
	if s.err != nil {
		return nil, s.err
	}
	var out []finding.Finding
	for _, f := range s.findings {
		if f, ok := finding.AsOf(f, at); ok && (state == 0 || f.State == state) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *fixedSource) Diff(_ context.Context, _, _ time.Time, window time.Duration) (*api.GraphDiff, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.diffWindows = append(s.diffWindows, window)
	if s.diffErr != nil {
		return nil, s.diffErr
	}
	return &api.GraphDiff{Diff: *s.diff, Observations: s.obsDiff}, nil
}

func (s *fixedSource) Review(context.Context, time.Duration) (*review.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.review == nil {
		return &review.Report{GeneratedAt: s.snap.GeneratedAt, WindowSeconds: s.snap.WindowSeconds, Observations: []review.Observation{}}, s.err
	}
	return s.review, s.err
}

func (s *fixedSource) Brokers(context.Context) ([]api.BrokerStatus, error) {
	at := time.Date(2026, 11, 22, 9, 59, 0, 0, time.UTC)
	return []api.BrokerStatus{{Name: "rabbit", Kind: "rabbitmq", LastError: "connection refused", LastErrorAt: &at}}, nil
}

func (s *fixedSource) Incidents(context.Context) ([]finding.Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.incidents, s.err
}

func (s *fixedSource) Ready(context.Context) error { return nil }

func (s *fixedSource) Watch(ctx context.Context, _ func(string)) error {
	<-ctx.Done()
	return ctx.Err()
}

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func f64(f float64) *float64 { return &f }

func fixture() *fixedSource {
	hostile := "<script>alert(1)</script>"
	snap := &graph.Snapshot{
		GeneratedAt: now, WindowSeconds: 60,
		Nodes: []graph.Node{
			{ID: "client:web", Kind: graph.NodeClient, Name: "web"},
			{ID: "service:shop/frontend", Kind: graph.NodeService, Name: "frontend", Namespace: "shop", FanIn: 1, FanOut: 2, Instability: 0.67, Betweenness: 0.5},
			{ID: "service:shop/" + hostile, Kind: graph.NodeService, Name: hostile, Namespace: "shop", FanIn: 1, FanOut: 2, Instability: 0.67, Betweenness: 0.4},
			{ID: "database:postgresql/orders", Kind: graph.NodeDatabase, Name: "orders", System: "postgresql", FanIn: 1},
			{ID: "topic:kafka/orders", Kind: graph.NodeTopic, Name: "orders", System: "kafka", FanIn: 1, FanOut: 1},
			{ID: "service:billing/invoicer", Kind: graph.NodeService, Name: "invoicer", Namespace: "billing", FanIn: 1},
		},
		Edges: []graph.Edge{
			{ID: "client:web->service:shop/frontend http", Source: "client:web", Target: "service:shop/frontend", Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 6000, RatePerS: 100, Errors: 12, ErrorRatio: 0.002, Latency: &graph.Quantiles{P50: 20, P95: 80, P99: 120}},
			{ID: "service:shop/frontend->service:shop/" + hostile + " grpc", Source: "service:shop/frontend", Target: "service:shop/" + hostile, Kind: graph.EdgeSync, Protocol: graph.ProtocolGRPC, Requests: 9000, RatePerS: 150, Errors: 1800, ErrorRatio: 0.2, Retries: 3000, RetryRatio: 0.33, RetriesSeen: true, Latency: &graph.Quantiles{P50: 5, P95: 30, P99: 45}},
			{ID: "service:shop/" + hostile + "->database:postgresql/orders db", Source: "service:shop/" + hostile, Target: "database:postgresql/orders", Kind: graph.EdgeSync, Protocol: graph.ProtocolDB, Requests: 3000, RatePerS: 50, Errors: 60, ErrorRatio: 0.02, Latency: &graph.Quantiles{P50: 2, P95: 9, P99: 14}},
			{ID: "service:shop/" + hostile + "->topic:kafka/orders kafka", Source: "service:shop/" + hostile, Target: "topic:kafka/orders", Kind: graph.EdgeAsync, Protocol: graph.ProtocolKafka, Requests: 600, RatePerS: 10},
			{ID: "topic:kafka/orders->service:billing/invoicer kafka billing", Source: "topic:kafka/orders", Target: "service:billing/invoicer", Kind: graph.EdgeAsync, Protocol: graph.ProtocolKafka, ConsumerGroup: "billing", Requests: 300, RatePerS: 5, Delay: &graph.Quantiles{P50: 120, P95: 900, P99: 1500},
				Lag: &graph.Lag{Messages: f64(12500), Seconds: f64(340), DrainSeconds: f64(2500), Status: lag.StateStalled, UpdatedAt: now}},
		},
	}
	fired := now.Add(-3 * time.Minute)
	resolved := now.Add(-10 * time.Minute)
	findings := []finding.Finding{
		{ID: "rs1", Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityCritical,
			Subject: finding.Subject{Source: "frontend", Target: hostile, EdgeID: snap.Edges[1].ID},
			Summary: "frontend retries " + hostile + ": 33% of calls are retries", Evidence: map[string]any{"retry_ratio": 0.33, "amplification": 2.4},
			StartedAt: now.Add(-4 * time.Minute), FiredAt: &fired,
			BlastRadius: &finding.BlastRadius{Upstream: []finding.Affected{{Node: "frontend", NodeID: "service:shop/frontend", Share: 1, Hops: 1}}, EntryPoints: []finding.Affected{{Node: "web", NodeID: "client:web", Share: 1, Hops: 2}}}},
		{ID: "rs0", Kind: finding.KindRetryStorm, State: finding.StateResolved, Severity: finding.SeverityWarning,
			Subject: finding.Subject{Source: "frontend", Target: hostile, EdgeID: snap.Edges[1].ID},
			Summary: "an earlier storm on the same edge", Evidence: map[string]any{"retry_ratio": 0.25},
			StartedAt: now.Add(-50 * time.Minute), FiredAt: ptrTime(now.Add(-49 * time.Minute)), ResolvedAt: &resolved, LastSeen: now.Add(-11 * time.Minute),
			Peak: &finding.Peak{At: now.Add(-30 * time.Minute), Severity: finding.SeverityCritical, Summary: "the storm at its worst: 80% of calls are retries", Evidence: map[string]any{"retry_ratio": 0.8}},
			Timeline: []finding.Change{{At: now.Add(-50 * time.Minute), State: finding.StatePending, Severity: finding.SeverityWarning},
				{At: now.Add(-49 * time.Minute), State: finding.StateFiring, Severity: finding.SeverityWarning},
				{At: now.Add(-31 * time.Minute), State: finding.StateFiring, Severity: finding.SeverityCritical},
				{At: now.Add(-20 * time.Minute), State: finding.StateFiring, Severity: finding.SeverityWarning},
				{At: resolved, State: finding.StateResolved, Severity: finding.SeverityWarning}}},
		{ID: "cl1", Kind: finding.KindConsumerLag, State: finding.StatePending, Severity: finding.SeverityWarning,
			Subject: finding.Subject{Source: "orders", Target: "invoicer", EdgeID: snap.Edges[4].ID},
			Summary: "billing falls behind orders: 12500 messages, 340 s", Evidence: map[string]any{"lag_messages": 12500.0, "lag_seconds": 340.0},
			StartedAt: now.Add(-30 * time.Second)},
		{ID: "bn1", Kind: finding.KindBottleneck, State: finding.StateResolved, Severity: finding.SeverityWarning,
			Subject: finding.Subject{Node: "orders", NodeID: "database:postgresql/orders"},
			Summary: "orders is 70% of the critical path of GET /checkout", Evidence: map[string]any{"share": 0.7},
			StartedAt: now.Add(-20 * time.Minute), ResolvedAt: &resolved},
	}
	diff := &graph.Diff{From: now.Add(-time.Hour), To: now, WindowSeconds: 300,
		AddedNodes:   []graph.Node{snap.Nodes[4]},
		AddedEdges:   []graph.Edge{snap.Edges[3]},
		RemovedNodes: []graph.Node{{ID: "service:shop/legacy", Kind: graph.NodeService, Name: "legacy", Namespace: "shop"}},
		RemovedEdges: []graph.Edge{{ID: "service:shop/frontend->service:shop/legacy http", Source: "service:shop/frontend", Target: "service:shop/legacy", Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, RatePerS: 20}},
		ChangedEdges: []graph.EdgeChange{{ID: snap.Edges[1].ID, Source: snap.Edges[1].Source, Target: snap.Edges[1].Target, Rate: graph.Change{From: 50, To: 150}, ErrorRatio: graph.Change{From: 0.001, To: 0.2}, Changed: []string{"rate_per_s", "error_ratio"}}},
	}
	incidents := []finding.Incident{
		{ID: "inc-rs1", State: finding.IncidentOpen, StartedAt: now.Add(-4 * time.Minute), UpdatedAt: now, Findings: []string{"rs1"},
			RootCauses: []finding.Cause{
				{Subject: finding.Subject{Node: "orders", NodeID: "database:postgresql/orders"}, Score: 0.91, Anomaly: 0.88, Explains: 1, Onset: 1,
					Reasons: []string{"error ratio of the calls into it rose from 0.1% to 2.0%", "explains 1 of 1 findings by its place on the graph: downstream of retry_storm frontend → " + hostile + " on its sync path",
						"raised no finding of its own: only the findings of those that depend on it point here"}},
				{Subject: finding.Subject{Node: hostile, NodeID: "service:shop/" + hostile}, Score: 0.35, Explains: 1,
					Reasons: []string{"explains 1 of 1 findings by its place on the graph: the callee of retry_storm frontend → " + hostile}},
			},
			Impact: []finding.Impact{{Entry: "frontend", EntryID: "service:shop/frontend", ErrorRatio: finding.Before{Before: 0.0005, Now: 0.002}, P95Ms: finding.Before{Before: 40, Now: 80}, Share: 0.33, RatePerS: 100,
				SLOs: []finding.SLOImpact{{FindingID: "slo1", Objective: "frontend-availability", SLI: "availability", Target: 99.9, Severity: finding.SeverityCritical,
					Windows: "1h/5m", BurnRate: 16.2, BurnRateShort: 40, BudgetRemaining: 0.86}}}},
			Changes: []string{}},
		{ID: "inc-rs0", State: finding.IncidentResolved, StartedAt: now.Add(-50 * time.Minute), ResolvedAt: &resolved, UpdatedAt: resolved, Findings: []string{"rs0", "bn1"},
			RootCauses: []finding.Cause{{Subject: finding.Subject{Node: "orders", NodeID: "database:postgresql/orders"}, Score: 0.8, Reasons: []string{"its own time on the critical path rose from 2 ms to 90 ms a request"}}},
			Impact:     []finding.Impact{}, Changes: []string{}},
	}
	edge := func(i int) finding.Subject {
		e := snap.Edges[i]
		name := map[string]string{}
		for _, n := range snap.Nodes {
			name[n.ID] = n.Name
		}
		return finding.Subject{Source: name[e.Source], Target: name[e.Target], EdgeID: e.Source + "->" + e.Target}
	}
	rev := &review.Report{GeneratedAt: now, WindowSeconds: 60, Skipped: []string{"sync_chain: no critical paths (no complete traces in the window)"}, Observations: []review.Observation{
		{ID: "no_circuit_breaker:" + edge(1).EdgeID, Kind: review.KindNoBreaker, Severity: review.SeverityWarning, Subject: edge(1), Namespace: "shop",
			Summary: "frontend kept calling " + hostile + " at 150/s through 20% errors", Why: "a caller that keeps calling a failing callee spends its threads on calls that fail",
			Evidence: map[string]any{"error_ratio": 0.2, "rate_per_s": 150.0, "wasted_calls": 1800}, Remedy: "a circuit breaker"},
		{ID: "retry_without_backoff:" + edge(1).EdgeID + " GET", Kind: review.KindRetryNoBackoff, Severity: review.SeverityWarning, Subject: edge(1), Namespace: "shop",
			Summary: "frontend retries " + hostile + " back to back", Why: "retries at once multiply the load on a struggling callee",
			Evidence: map[string]any{"wait_before_retry_ms": map[string]any{"p50": 0.4, "p95": 1.2}, "attempts_per_request": map[string]any{"1": 40, "2": 9}}, Remedy: "exponential backoff with jitter"},
		{ID: "no_timeout:" + edge(2).EdgeID, Kind: review.KindNoTimeout, Severity: review.SeverityWarning, Subject: edge(2), Namespace: "shop",
			Summary: hostile + " waits for orders as long as it takes", Why: "a slow callee holds the caller's requests",
			Evidence: map[string]any{"client_p99_ms": 14.0, "server_p99_ms": 14.0}, Remedy: "a timeout"},
		{ID: "hub:service:shop/frontend", Kind: review.KindHub, Severity: review.SeverityInfo, Subject: finding.Subject{Node: "frontend", NodeID: "service:shop/frontend"}, Namespace: "shop",
			Summary: "frontend carries all entry traffic", Why: "its failure cuts most paths",
			Evidence: map[string]any{"betweenness": 0.5, "entry_share": 1.0, "depend_on_it": []any{"client:web"}}, Remedy: "replicas, bulkheads"},
		{ID: "hub:service:billing/invoicer", Kind: review.KindHub, Severity: review.SeverityInfo, Subject: finding.Subject{Node: "invoicer", NodeID: "service:billing/invoicer"}, Namespace: "billing",
			Summary: "invoicer is what billing depends on", Why: "its failure cuts most paths",
			Evidence: map[string]any{"entry_share": 0.1}, Remedy: "replicas"},
	}}
	gone := review.Observation{ID: "chatty_edge:service:shop/frontend->service:shop/legacy GET", Kind: review.KindChatty, Severity: review.SeverityWarning,
		Subject: finding.Subject{Source: "frontend", Target: "legacy", EdgeID: "service:shop/frontend->service:shop/legacy"}, Namespace: "shop",
		Summary: "frontend called legacy 12 times a request", Why: "each call adds a round trip", Evidence: map[string]any{"calls_per_parent": map[string]any{"p50": 12}}, Remedy: "batching"}
	obsDiff := &api.ObservationDiff{Diff: review.Diff{From: now.Add(-time.Hour), To: now, Appeared: []review.Observation{rev.Observations[2]}, WentAway: []review.Observation{gone}}}
	return &fixedSource{snap: snap, findings: findings, incidents: incidents, diff: diff, review: rev, obsDiff: obsDiff}
}

// newTestUI returns a UI that has read src once, at the fixed time now.
func newTestUI(t testing.TB, src Source) *UI {
	t.Helper()
	u := newUI(t, src, newLayouter(t, layout.Options{}), Options{})
	u.refresh(context.Background())
	return u
}

// newLayouter returns a Layouter closed when the test ends.
func newLayouter(tb testing.TB, o layout.Options) *layout.Layouter {
	tb.Helper()
	lay, err := layout.New(context.Background(), o)
	require.NoError(tb, err)
	tb.Cleanup(func() { lay.Close() })
	return lay
}

// newUI returns a UI serving src laid out by lay, with options o: the
// clock stopped at now unless o.Clock is set, and src read only when the
// test refreshes it (o.Refresh an hour unless set).
func newUI(tb testing.TB, src Source, lay Layouter, o Options) *UI {
	tb.Helper()
	o.Source, o.Layouter = src, lay
	if o.Clock == nil {
		o.Clock = func() time.Time { return now }
	}
	if o.Refresh == 0 {
		o.Refresh = time.Hour
	}
	u, err := New(o)
	require.NoError(tb, err)
	return u
}

func get(t *testing.T, h http.Handler, target string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, rec.Header(), string(b)
}

func TestPagesGolden(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	edgeID := src.snap.Edges[1].ID
	cases := []struct{ name, target string }{
		{"map", "/"},
		{"map-focus", "/?focus=topic:kafka/orders&hops=1"},
		{"map-collapsed", "/?collapse=shop&hide=client:web&q=ord"},
		{"map-incident", "/?incident=1"},
		{"map-incident-cause", "/?incident=inc-rs1"},
		{"incidents", "/incidents"},
		{"incidents-resolved", "/incidents?id=inc-rs0"},
		{"findings", "/findings"},
		{"findings-at", "/findings?at=2026-11-22T09:35:00Z"},
		{"node", "/node?id=" + urlEscape("service:shop/<script>alert(1)</script>")},
		{"edge", "/edge?id=" + urlEscape(edgeID)},
		{"edge-async", "/edge?id=" + urlEscape(src.snap.Edges[4].ID)},
		{"architecture", "/architecture?sort=fan_out&dir=desc&from=2026-11-22T09:00&to=2026-11-22T10:00&dwindow=5m"},
		{"review", "/review"},
		{"review-kind", "/review?kind=hub&namespace=billing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := get(t, u, c.target)
			require.Equal(t, http.StatusOK, code, body)
			require.Contains(t, h.Get("Content-Security-Policy"), "script-src 'self'")
			require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			require.Equal(t, "DENY", h.Get("X-Frame-Options"))
			require.NotContains(t, body, "<script>alert", "a hostile name must be escaped")
			require.NotContains(t, body, "style=", "inline styles are refused by the CSP")
			require.Equal(t, 1, strings.Count(body, "<script"), "one script: the page's own")
			golden(t, c.name+".html", body)
		})
	}
	t.Run("incidents", func(t *testing.T) {
		_, _, body := get(t, u, "/")
		require.Contains(t, body, ">Incidents (1)</a>", "the open incidents counted in the navigation")
		_, _, body = get(t, u, "/?incident=inc-rs1")
		db := section(body, `data-node="database:postgresql/orders"`, "</g></g>")
		require.Contains(t, body, `class="node k-database subject sev-critical cause" data-node="database:postgresql/orders"`,
			"the root cause is drawn, ringed, though it raised no finding of its own")
		require.NotEmpty(t, db)
		require.Contains(t, body, "root cause orders")
		_, _, body = get(t, u, "/incidents")
		root := section(body, `class="root-cause"`, "</section>")
		require.Contains(t, root, "Root cause:")
		require.Contains(t, root, ">orders</a>", "the page leads with the root cause")
		require.Less(t, strings.Index(body, `class="impact"`), strings.Index(body, `class="isubgraph"`), "then the impact, then the subgraph")
		require.Contains(t, section(body, `class="impact"`, "</section>"),
			"SLO frontend-availability (99.9% availability) burns its error budget 16.2x as fast as allowed over 1h/5m (critical); 86% of it left",
			"a burning objective shows under its entry point")
		code, _, body := get(t, u, "/incidents?id=inc-nope")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "No incident &#34;inc-nope&#34;")
		_, _, body = get(t, u, "/?incident=inc-nope")
		require.Contains(t, body, "that incident is not known")
	})
	t.Run("hostile name escaped where shown", func(t *testing.T) {
		_, _, body := get(t, u, "/")
		require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	})
	t.Run("badges on their subjects", func(t *testing.T) {
		_, _, body := get(t, u, "/")
		edge := section(body, `id="`+domID("e-", edgeID)+`"`, "</g></g>")
		require.Contains(t, edge, "retry storm")
		require.Contains(t, edge, "sev-critical")
		lagEdge := section(body, `id="`+domID("e-", src.snap.Edges[4].ID)+`"`, "</g></g>")
		require.Contains(t, lagEdge, "consumer lag?", "pending findings are marked")
		require.Contains(t, lagEdge, "lag 12.5k")
	})
	t.Run("bad view", func(t *testing.T) {
		code, _, body := get(t, u, "/?window=banana")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, "window")
	})
	t.Run("unknown node", func(t *testing.T) {
		code, _, body := get(t, u, "/node?id=service:nope")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "not in the graph of this window")
	})
	t.Run("edge pages chart retries and delay, newest finding first", func(t *testing.T) {
		_, _, body := get(t, u, "/edge?id="+urlEscape(edgeID))
		require.Contains(t, body, "Retries (% of calls that repeat a failed call)")
		require.Contains(t, body, "Attempts per request (retry amplification on this edge)")
		require.NotContains(t, body, "Producer→consumer delay")
		newer, older := strings.Index(body, `id="`+domID("f-", "rs1")+`"`), strings.Index(body, `id="`+domID("f-", "rs0")+`"`)
		require.True(t, newer >= 0 && older >= 0, "both storms listed")
		require.Less(t, newer, older, "the newest finding first")
		_, _, body = get(t, u, "/edge?id="+urlEscape(src.snap.Edges[4].ID))
		require.Contains(t, body, "Producer→consumer delay (ms)")
		require.NotContains(t, body, "Retries (%", "no retries chart where retries cannot be seen")
	})
	t.Run("a resolved finding reads at its worst, with its life", func(t *testing.T) {
		_, _, body := get(t, u, "/findings")
		item := section(body, `id="`+domID("f-", "rs0")+`"`, "</li>")
		require.Contains(t, item, "sev-critical", "its peak severity")
		require.Contains(t, item, "the storm at its worst: 80% of calls are retries")
		require.Contains(t, item, "80%", "the peak's evidence")
		require.Contains(t, item, "Last before it resolved: an earlier storm on the same edge")
		require.Contains(t, item, "lasted 39m00s")
		require.Contains(t, item, "firing (warning) → ")
		require.Contains(t, item, "critical →")
		require.Contains(t, item, "resolved")
	})
	t.Run("broker down is on the banner", func(t *testing.T) {
		_, _, body := get(t, u, "/")
		require.Contains(t, body, "Broker rabbit (rabbitmq) cannot be polled: connection refused")
	})
}

// TestPastViewFindings: a past view (at=) shows the findings as they were
// then, read from the collector's storage: the earlier storm firing and
// critical (it resolved only later), with the numbers of its worst, its
// age counted from that time, its badge on the past map; what started
// later is absent; the page says it shows a past time. The live view is
// unchanged.
func TestPastViewFindings(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	at := now.Add(-25 * time.Minute)
	stormEdge := src.snap.Edges[1].ID
	q := "?at=" + at.Format(time.RFC3339)
	for _, page := range []string{"/", "/findings"} {
		t.Run(page, func(t *testing.T) {
			code, _, body := get(t, u, page+q)
			require.Equal(t, http.StatusOK, code, body)
			panel := section(body, `id="findings"`, "</section>")
			require.Contains(t, panel, "As they were at 2026-11-22 09:35:00Z, a past time: ages are counted from then.")
			require.Contains(t, panel, "1 firing")
			item := section(panel, `id="`+domID("f-", "rs0")+`"`, "</li>")
			require.NotEmpty(t, item, "the storm open then is listed")
			require.Contains(t, item, "sev-critical", "critical then")
			require.Contains(t, item, "the storm at its worst: 80% of calls are retries", "the numbers of that time")
			require.Contains(t, item, "since 25m", "its age counted from then, not from now")
			require.NotContains(t, item, "resolved", "it had not resolved yet")
			require.NotContains(t, item, "09:50:00Z", "no step after then")
			for _, later := range []string{"rs1", "cl1", "bn1"} {
				require.NotContains(t, panel, `id="`+domID("f-", later)+`"`, "%s started after then", later)
			}
			require.Contains(t, body, `>Findings<`, "no live count in a past view")
			require.Contains(t, body, "as of 2026-11-22 09:35:00Z")
		})
	}
	t.Run("badge on the past map", func(t *testing.T) {
		_, _, body := get(t, u, "/"+q)
		edge := section(body, `id="`+domID("e-", stormEdge)+`"`, "</g></g>")
		require.Contains(t, edge, "retry storm")
		require.Contains(t, edge, "sev-critical")
		lagEdge := section(body, `id="`+domID("e-", src.snap.Edges[4].ID)+`"`, "</g></g>")
		require.NotContains(t, lagEdge, "consumer lag", "the lag finding started later")
	})
	t.Run("edge page", func(t *testing.T) {
		_, _, body := get(t, u, "/edge"+q+"&id="+urlEscape(stormEdge))
		require.Contains(t, body, `id="`+domID("f-", "rs0")+`"`)
		require.NotContains(t, body, `id="`+domID("f-", "rs1")+`"`)
	})
	src.mu.Lock()
	asked := slices.Clone(src.atAsked)
	src.mu.Unlock()
	require.NotEmpty(t, asked)
	for _, a := range asked {
		require.True(t, a.Equal(at), "findings read for %v, not the view's time", a)
	}
	t.Run("live view unchanged", func(t *testing.T) {
		_, _, body := get(t, u, "/findings")
		require.NotContains(t, body, "As they were at")
		require.Contains(t, body, "Findings (1)")
		item := section(body, `id="`+domID("f-", "rs1")+`"`, "</li>")
		require.Contains(t, item, "since 4m")
	})
	t.Run("findings of then unreadable", func(t *testing.T) {
		bad := fixture()
		bu := newTestUI(t, bad)
		bad.mu.Lock()
		bad.err = errors.New("history unavailable")
		bad.mu.Unlock()
		_, _, body := get(t, bu, "/findings"+q)
		require.Contains(t, body, "The findings of 2026-11-22 09:35:00Z cannot be read: history unavailable")
		require.NotContains(t, body, "No findings: nothing looks wrong")
	})
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", "#", "%23", "<", "%3C", ">", "%3E", "/", "%2F")
	return r.Replace(s)
}

// section returns body from the first occurrence of start to the next end.
func section(body, start, end string) string {
	i := strings.Index(body, start)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], end)
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file: run go test ./web/ui -update")
	require.Equal(t, string(want), got, "page differs from %s (run with -update and review the diff)", path)
}

func TestCollectorDown(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	src.mu.Lock()
	src.err = errors.New("dial tcp 127.0.0.1:8070: connection refused")
	src.mu.Unlock()
	u.refresh(context.Background())
	code, _, body := get(t, u, "/")
	require.Equal(t, http.StatusOK, code, "the last graph read is still shown")
	require.Contains(t, body, "The collector cannot be read")
	require.Contains(t, body, "connection refused")
}

func TestLiveUpdates(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	srv := httptest.NewServer(u)
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?page=map&refresh=1s"

	t.Run("foreign origin refused", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://evil.example"}})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})

	conn, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {srv.URL}})
	require.NoError(t, err)
	defer conn.Close()
	read := func() update {
		t.Helper()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, b, err := conn.ReadMessage()
		require.NoError(t, err)
		var m update
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	first := read()
	ids := map[string]bool{}
	for _, f := range first.HTML {
		ids[f.ID] = true
	}
	require.True(t, ids["map-wrap"] && ids["findings"] && ids["status"], "a new page gets everything once: %v", ids)

	// A finding fires on the database: only its node changes on the map.
	src.mu.Lock()
	src.findings = append(src.findings, finding.Finding{ID: "oc1", Kind: finding.KindOpenCircuit, State: finding.StateFiring, Severity: finding.SeverityCritical,
		Subject: finding.Subject{Node: "orders", NodeID: "database:postgresql/orders"}, Summary: "circuit open", StartedAt: now})
	src.mu.Unlock()
	u.refresh(context.Background())
	next := read()
	// The node changes, and so does the one edge that joins it to the
	// other firing finding's subject: it is now between affected nodes.
	sent := map[string]string{}
	for _, f := range next.SVG {
		sent[f.ID] = f.HTML
	}
	nodeFrag, joining := domID("n-", "database:postgresql/orders"), domID("e-", src.snap.Edges[2].ID)
	require.Len(t, sent, 2, "only the changed node and edge are sent: %v", sent)
	require.Contains(t, sent[nodeFrag], "open circuit")
	require.Contains(t, sent[nodeFrag], "subject sev-critical")
	require.Contains(t, sent[joining], "blast")
	var panel bool
	for _, f := range next.HTML {
		if f.ID == "findings" {
			panel = true
			require.Contains(t, f.HTML, "circuit open")
		}
		require.NotEqual(t, "map-wrap", f.ID, "same topology: the map is not redrawn")
	}
	require.True(t, panel, "the findings panel is updated")

	// A new edge: the topology changed, the map is redrawn whole.
	src.mu.Lock()
	s := *src.snap
	s.Edges = append(append([]graph.Edge(nil), s.Edges...), graph.Edge{ID: "service:billing/invoicer->database:postgresql/orders db", Source: "service:billing/invoicer", Target: "database:postgresql/orders", Kind: graph.EdgeSync, Protocol: graph.ProtocolDB, Requests: 10, RatePerS: 1})
	src.snap = &s
	src.mu.Unlock()
	u.refresh(context.Background())
	redraw := read()
	var wrap bool
	for _, f := range redraw.HTML {
		wrap = wrap || f.ID == "map-wrap"
	}
	require.True(t, wrap)
}

func TestLiveClientsBounded(t *testing.T) {
	src := fixture()
	lay, err := layout.New(context.Background(), layout.Options{})
	require.NoError(t, err)
	defer lay.Close()
	u, err := New(Options{Source: src, Layouter: lay, MaxClients: 1, Refresh: time.Hour})
	require.NoError(t, err)
	srv := httptest.NewServer(u)
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?page=findings"
	c1, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	require.NoError(t, err)
	defer c1.Close()
	require.Eventually(t, func() bool {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
		return err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable
	}, 5*time.Second, 50*time.Millisecond)
}

func TestParseView(t *testing.T) {
	for _, c := range []struct {
		q    string
		want string // View.Query().Encode() of the result, or "error"
	}{
		{"", ""},
		{"window=5m&refresh=off", "refresh=off&window=5m"},
		{"window=300", "window=5m"},
		{"at=2026-11-22T09:00", "at=2026-11-22T09%3A00%3A00Z"},
		{"focus=service:a&hops=3&hide=b&hide=a&hide=b", "focus=service%3Aa&hide=a&hide=b&hops=3"},
		{"hops=99", "error"},
		{"window=0s", "error"},
		{"refresh=10ms", "error"},
		{"at=yesterday", "error"},
		{"incident=1", "incident=1"},
		{"incident=all", "incident=1"},
		{"incident=rs1&dim=off", "dim=off&incident=rs1"},
		{"dim=on", ""},
		{"dim=maybe", "error"},
		{"group=team&gpage=3&expand=web", "expand=web&gpage=3&group=team"},
		{"group=namespace&gpage=1", ""},
		{"group=service.namespace", ""},
		{"gpage=0", "error"},
		{"gpage=two", "error"},
		{"group=" + strings.Repeat("x", 600), "error"},
	} {
		t.Run(c.q, func(t *testing.T) {
			q, _ := parseQuery(c.q)
			_ = url.Values(q)
			v, err := parseView(q)
			if c.want == "error" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, v.Query().Encode())
		})
	}
}

func parseQuery(s string) (map[string][]string, error) {
	u, err := http.NewRequest(http.MethodGet, "/?"+s, nil)
	if err != nil {
		return nil, err
	}
	return u.URL.Query(), nil
}

func TestClipMiddle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"catalog", 20, "catalog"},
		{"redis-recommendation/0", 20, "redis-reco…ndation/0"},
		{"12345678901234567890", 20, "12345678901234567890"},
		{"ÅÄÖåäöÅÄÖåäöÅÄÖåäöÅÄÖ", 5, "ÅÄ…ÄÖ"},
		{"abcdef", 2, "a…"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := clipMiddle(tc.in, tc.n)
			require.Equal(t, tc.want, got)
			require.LessOrEqual(t, utf8.RuneCountInString(got), tc.n)
		})
	}
}

// TestDiffWindow: the architecture page's diff takes any window the
// collector accepts (10s is two of its default buckets), refuses one it
// cannot read with a message, and never swaps in another window; the
// collector's own refusal is shown as its message.
func TestDiffWindow(t *testing.T) {
	const fromTo = "/architecture?from=2026-11-22T09:00&to=2026-11-22T10:00"
	for _, tc := range []struct {
		name, dwindow string
		apiErr        error
		asked         []time.Duration // windows the collector was asked for
		says          string          // in the page's problem banner ("" none)
	}{
		{"ten seconds", "10s", nil, []time.Duration{10 * time.Second}, ""},
		{"plain seconds", "30", nil, []time.Duration{30 * time.Second}, ""},
		{"ninety minutes", "90m", nil, []time.Duration{90 * time.Minute}, ""},
		{"default", "", nil, []time.Duration{5 * time.Minute}, ""},
		{"not a duration", "banana", nil, nil, `window &#34;banana&#34;: want a positive duration like 10s, 5m or 1h`},
		{"zero", "0s", nil, nil, `window &#34;0s&#34;: want a positive duration`},
		{"negative", "-5m", nil, nil, `window &#34;-5m&#34;: want a positive duration`},
		{"below two buckets", "5s", &client.StatusError{Code: 400, Message: "window 5s: a diff needs at least two buckets (10s here)"},
			[]time.Duration{5 * time.Second}, "The collector refused this diff: window 5s: a diff needs at least two buckets (10s here)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fixture()
			src.diffErr = tc.apiErr
			u := newTestUI(t, src)
			target := fromTo
			if tc.dwindow != "" {
				target += "&dwindow=" + urlEscape(tc.dwindow)
			}
			code, _, body := get(t, u, target)
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, tc.asked, src.diffWindows)
			banner := section(body, `<p class="banner problem">`, "</p>")
			if tc.says == "" {
				require.NotContains(t, body, `<p class="banner problem">`)
				require.Contains(t, body, "added</span>", "the diff is drawn")
			} else {
				require.Contains(t, banner, tc.says)
			}
			if tc.dwindow != "" {
				require.Contains(t, body, `name="dwindow" list="diff-windows" value="`+tc.dwindow+`"`, "the window stays as typed")
			}
		})
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// tickSource is a collector read in process: Tick hands over the graph and
// the findings of one evaluation together, while Graph and Findings read
// alone already answer for a later one (a graph without the edge the
// findings are about, and no findings).
type tickSource struct {
	*fixedSource
	tickSnap      *graph.Snapshot
	tickFindings  []finding.Finding
	tickIncidents []finding.Incident
}

func (s *tickSource) Tick(context.Context) (*graph.Snapshot, []finding.Finding, []finding.Incident, error) {
	return s.tickSnap, s.tickFindings, s.tickIncidents, nil
}

// TestBadgesAndFindingsFromOneTick: the built-in UI takes the map and the
// findings from one tick, so a finding's badge always has its edge on the
// map and the findings list is the one the badges come from.
func TestBadgesAndFindingsFromOneTick(t *testing.T) {
	src := fixture()
	stormEdge := src.snap.Edges[1]
	// The later graph, as a separate read would see it: the storm's edge
	// gone.
	b, err := json.Marshal(src.snap)
	require.NoError(t, err)
	var later graph.Snapshot
	require.NoError(t, json.Unmarshal(b, &later))
	later.Edges = slices.DeleteFunc(later.Edges, func(e graph.Edge) bool { return e.ID == stormEdge.ID })
	b, err = json.Marshal(&later)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &later))
	ts := &tickSource{fixedSource: &fixedSource{snap: &later, diff: src.diff}, tickSnap: src.snap, tickFindings: src.findings}

	u := newTestUI(t, ts)
	_, _, body := get(t, u, "/")
	edge := section(body, `id="`+domID("e-", stormEdge.ID)+`"`, "</g></g>")
	require.Contains(t, edge, "retry storm", "the badge sits on the edge of the tick it was found in")
	_, _, body = get(t, u, "/findings")
	for _, f := range src.findings {
		require.Contains(t, body, domID("f-", f.ID), "the findings list is the tick's")
	}
}
