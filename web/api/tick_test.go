package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// countingGraph is a GraphSource that counts the snapshots it builds.
type countingGraph struct {
	g     *graph.Graph
	built atomic.Int64
}

func (c *countingGraph) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	c.built.Add(1)
	return c.g.Snapshot(window)
}

type staticFindings []finding.Finding

func (s staticFindings) Findings(state finding.State) []finding.Finding {
	var out []finding.Finding
	for _, f := range s {
		if state == 0 || f.State == state {
			out = append(out, f)
		}
	}
	return out
}

// tickAPI returns an API over a graph holding one call a -> b, the
// snapshot of that graph handed over as a tick with a firing and a
// resolved finding, and the source that counts snapshots built after.
func tickAPI(t *testing.T) (*API, *countingGraph, *graph.Snapshot, *prometheus.Registry) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	tr := graph.TraceID{1}
	rej, why := g.ConsumeSpans([]graph.Span{
		{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "a", End: 1},
		{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "b", End: 1},
	})
	require.Zero(t, rej, why)
	src := &countingGraph{g: g}
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: src, Findings: staticFindings{{ID: "before-any-tick", State: finding.StateFiring}}, Gatherer: reg, Registerer: reg})
	require.NoError(t, err)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	require.NotEmpty(t, s.Edges)
	a.Receive(s, []finding.Finding{
		{ID: "firing", Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityWarning},
		{ID: "resolved", Kind: finding.KindRetryStorm, State: finding.StateResolved, Severity: finding.SeverityWarning},
	}, []finding.Incident{
		{ID: "inc-firing", State: finding.IncidentOpen, Findings: []string{"firing"}, RootCauses: []finding.Cause{
			{Subject: finding.Subject{Node: "b", NodeID: "service:b"}, Score: 0.9, Reasons: []string{"its error ratio rose"}}},
			Impact: []finding.Impact{}, Changes: []string{}},
		{ID: "inc-resolved", State: finding.IncidentResolved, Findings: []string{"resolved"}, RootCauses: []finding.Cause{}, Impact: []finding.Impact{}, Changes: []string{}},
	})
	src.built.Store(0)
	return a, src, s, reg
}

// TestGraphServedFromTick: the live graph over the default window is the
// tick's snapshot, encoded once however many read it; gzip for clients
// that accept it; another window is built for the request.
func TestGraphServedFromTick(t *testing.T) {
	a, src, s, reg := tickAPI(t)
	want, err := json.Marshal(s)
	require.NoError(t, err)
	var bodies [][]byte
	for _, url := range []string{"/api/v1/graph", "/api/v1/graph?window=60s", "/api/v1/graph?window=1m"} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		require.Equal(t, http.StatusOK, rec.Code, url)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		require.Empty(t, rec.Header().Get("Content-Encoding"), "no gzip unless asked")
		bodies = append(bodies, rec.Body.Bytes())
	}
	for _, b := range bodies {
		require.JSONEq(t, string(want), string(b))
	}
	require.Zero(t, src.built.Load(), "no snapshot built for the default window")
	encoded := counterValue(t, reg, "cartograph_api_tick_encoded_bytes_total")
	require.Equal(t, float64(len(bodies[0])), encoded, "encoded once, at the tick")

	req := httptest.NewRequest(http.MethodGet, "/api/v1/graph", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	require.Contains(t, rec.Header().Values("Vary"), "Accept-Encoding")
	zr, err := gzip.NewReader(rec.Body)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, bodies[0], plain)

	req = httptest.NewRequest(http.MethodGet, "/api/v1/graph", nil)
	req.Header.Set("Accept-Encoding", "gzip;q=0, identity")
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	require.Empty(t, rec.Header().Get("Content-Encoding"), "gzip refused with q=0")

	code, _ := get(t, a, "/api/v1/graph?window=30s")
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 1, src.built.Load(), "another window is built for the request")
	require.Equal(t, encoded, counterValue(t, reg, "cartograph_api_tick_encoded_bytes_total"))
}

// TestFindingsServedFromTick: findings are the tick's, filtered by state.
func TestFindingsServedFromTick(t *testing.T) {
	a, _, _, _ := tickAPI(t)
	for state, want := range map[string][]string{"": {"firing"}, "firing": {"firing"}, "resolved": {"resolved"}, "all": {"firing", "resolved"}, "pending": {}} {
		t.Run(state, func(t *testing.T) {
			code, body := get(t, a, "/api/v1/findings?state="+state)
			require.Equal(t, http.StatusOK, code)
			ids := []string{}
			for _, f := range body["findings"].([]any) {
				ids = append(ids, f.(map[string]any)["id"].(string))
			}
			require.Equal(t, want, ids)
		})
	}
}

// TestIncidentsServedFromTick: incidents are the tick's, filtered by
// state (open by default); one is read by its id; a bad state is a 400
// and an unknown id a 404, both with a JSON error.
func TestIncidentsServedFromTick(t *testing.T) {
	a, _, _, _ := tickAPI(t)
	for state, want := range map[string][]string{"": {"inc-firing"}, "open": {"inc-firing"}, "resolved": {"inc-resolved"}, "all": {"inc-firing", "inc-resolved"}} {
		t.Run(state, func(t *testing.T) {
			code, body := get(t, a, "/api/v1/incidents?state="+state)
			require.Equal(t, http.StatusOK, code)
			ids := []string{}
			for _, f := range body["incidents"].([]any) {
				ids = append(ids, f.(map[string]any)["id"].(string))
			}
			require.Equal(t, want, ids)
		})
	}
	code, body := get(t, a, "/api/v1/incidents/inc-firing")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "open", body["state"])
	require.Equal(t, []any{"firing"}, body["findings"])
	require.Equal(t, []any{}, body["changes"], "an empty list, not null")
	cause := body["root_causes"].([]any)[0].(map[string]any)
	require.Equal(t, "b", cause["node"])
	require.Equal(t, 0.9, cause["score"])
	require.NotContains(t, body, "resolved_at")

	code, body = get(t, a, "/api/v1/incidents?state=closed")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "want open, resolved or all")
	code, body = get(t, a, "/api/v1/incidents/inc-nope")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body["error"], `no incident "inc-nope"`)

	l, err := a.Local().Incidents(context.Background())
	require.NoError(t, err)
	require.Len(t, l, 2)

	// Before the first tick: none, and a JSON list.
	b, _ := newTestAPI(t, nil)
	code, body = get(t, b, "/api/v1/incidents")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{}, body["incidents"])
}

// TestLocalReadsTheTick: the in-process reader returns the tick's own
// snapshot and findings (no copy, no second snapshot), wakes watchers on
// every tick, and answers other reads through the handlers with the
// errors the HTTP API gives.
func TestLocalReadsTheTick(t *testing.T) {
	a, src, s, _ := tickAPI(t)
	l := a.Local()
	ctx := context.Background()
	snap, fs, incs, err := l.Tick(ctx)
	require.NoError(t, err)
	require.Same(t, s, snap)
	require.Len(t, fs, 2)
	require.Len(t, incs, 2)
	g, err := l.Graph(ctx, 0, time.Time{})
	require.NoError(t, err)
	require.Same(t, s, g)
	c, err := l.Coupling(ctx, 0)
	require.NoError(t, err)
	require.Len(t, c.Nodes, len(s.Nodes))
	require.Zero(t, src.built.Load())

	g, err = l.Graph(ctx, 30*time.Second, time.Time{})
	require.NoError(t, err)
	require.NotSame(t, s, g)
	require.Equal(t, 30.0, g.WindowSeconds)
	_, ok := g.Node(s.Edges[0].Source)
	require.True(t, ok, "a decoded snapshot has its node index")

	_, err = l.Graph(ctx, 0, time.Now().Add(-time.Minute))
	var se *StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotImplemented, se.Code, "no history without storage")

	woken := make(chan string, 4)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Watch(wctx, func(topic string) { woken <- topic }) }()
	require.Eventually(t, func() bool {
		a.watchMu.Lock()
		defer a.watchMu.Unlock()
		return len(a.watchers) == 1
	}, 5*time.Second, time.Millisecond)
	a.Receive(s, nil, nil)
	require.Equal(t, "graph", <-woken)
	require.Equal(t, "findings", <-woken)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// TestBeforeFirstTick: until the runner hands a tick over, reads are
// answered from the sources as before.
func TestBeforeFirstTick(t *testing.T) {
	a, g := newTestAPI(t, nil)
	_ = g
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/graph", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, bytes.HasPrefix(rec.Body.Bytes(), []byte("{")))
}

// counterValue returns the value of the counter name in g.
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// blockingGraph builds snapshots only when let go: the requests building
// one hold their place until then.
type blockingGraph struct {
	g       *graph.Graph
	started chan struct{}
	release chan struct{}
}

func (b *blockingGraph) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	b.started <- struct{}{}
	<-b.release
	return b.g.Snapshot(window)
}

// TestBuildsBounded: graphs built per request are bounded in number (a
// request past the bound waits, then gets 503 with Retry-After) and, past
// --api-max-build-nodes, refused (422); the default window, from the
// tick, answers all along.
func TestBuildsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	bg := &blockingGraph{g: g, started: make(chan struct{}, 4), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: bg, MaxBuilds: 2, BuildWait: 50 * time.Millisecond, Gatherer: reg, Registerer: reg})
	require.NoError(t, err)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	a.Receive(s, nil, nil)

	done := make(chan int, 2)
	for range 2 {
		go func() {
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/graph?window=30s", nil))
			done <- rec.Code
		}()
		<-bg.started
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/coupling?window=20s", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), "--api-max-builds")
	require.Equal(t, 1.0, counterValue(t, reg, "cartograph_api_builds_refused_total"))

	code, _ := get(t, a, "/api/v1/graph")
	require.Equal(t, http.StatusOK, code, "the tick's graph never waits")
	close(bg.release)
	require.Equal(t, http.StatusOK, <-done)
	require.Equal(t, http.StatusOK, <-done)

	// A tick whose graph has three nodes, against a bound of two.
	a.Receive(&graph.Snapshot{GeneratedAt: now, WindowSeconds: s.WindowSeconds,
		Nodes: []graph.Node{{ID: "service:x"}, {ID: "service:y"}, {ID: "service:z"}}}, nil, nil)
	a.o.MaxBuildNodes = 2
	code, body := get(t, a, "/api/v1/graph?window=30s")
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body["error"], "--api-max-build-nodes")
}
