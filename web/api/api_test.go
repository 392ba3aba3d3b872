package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

func newTestAPI(t *testing.T, ready func() error) (*API, *graph.Graph) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: g, Ready: ready, Gatherer: reg, Registerer: reg})
	require.NoError(t, err)
	return a, g
}

func get(t *testing.T, h http.Handler, url string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

func TestCouplingShape(t *testing.T) {
	a, g := newTestAPI(t, nil)
	tr := graph.TraceID{1}
	// a -> b -> a (a cycle), b -> c
	spans := []graph.Span{
		{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "a", End: 1},
		{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "b", End: 1},
		{Trace: tr, ID: graph.SpanID{3}, Parent: graph.SpanID{2}, Kind: graph.SpanClient, Service: "b", End: 1},
		{Trace: tr, ID: graph.SpanID{4}, Parent: graph.SpanID{3}, Kind: graph.SpanServer, Service: "a", End: 1},
		{Trace: tr, ID: graph.SpanID{5}, Parent: graph.SpanID{2}, Kind: graph.SpanClient, Service: "b", End: 1},
		{Trace: tr, ID: graph.SpanID{6}, Parent: graph.SpanID{5}, Kind: graph.SpanServer, Service: "c", End: 1},
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	code, body := get(t, a, "/api/v1/coupling")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{[]any{"service:a", "service:b"}}, body["cycles"])
	require.Len(t, body["nodes"], 3)
	chain := body["longest_sync_chain"].([]any)
	require.NotEmpty(t, chain)
	for _, n := range body["nodes"].([]any) {
		n := n.(map[string]any)
		if n["id"] == "service:b" {
			require.EqualValues(t, 1, n["fan_in"])
			require.EqualValues(t, 2, n["fan_out"])
			require.InDelta(t, 2.0/3, n["instability"], 0.001)
		}
	}
}

func TestErrorsAndProbes(t *testing.T) {
	notReady := errors.New("starting")
	var readyErr error = notReady
	a, _ := newTestAPI(t, func() error { return readyErr })
	for _, tc := range []struct {
		url  string
		code int
	}{
		{"/api/v1/graph?window=abc", http.StatusBadRequest},
		{"/api/v1/graph?window=0", http.StatusBadRequest},
		{"/api/v1/graph?window=1h", http.StatusBadRequest},
		{"/api/v1/graph?window=30", http.StatusOK},
		{"/api/v1/graph?at=2026-01-01T00:00:00Z", http.StatusNotImplemented},
		{"/api/v1/findings", http.StatusNotImplemented},
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusServiceUnavailable},
	} {
		t.Run(tc.url, func(t *testing.T) {
			code, body := get(t, a, tc.url)
			require.Equal(t, tc.code, code, body)
			if code >= 400 {
				require.NotEmpty(t, body["error"])
			}
		})
	}
	readyErr = nil
	code, _ := get(t, a, "/readyz")
	require.Equal(t, http.StatusOK, code)
	code, body := get(t, a, "/api/v1/graph?window=30s")
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 30, body["window_seconds"])
	require.Equal(t, []any{}, body["nodes"], "an empty graph has empty lists, not null")
}

// fixedDetector reports one retry storm on every evaluation.
type fixedDetector struct{}

func (fixedDetector) Kind() finding.Kind { return finding.KindRetryStorm }
func (fixedDetector) Detect(context.Context, *graph.Snapshot) []detect.Observation {
	return []detect.Observation{{Kind: finding.KindRetryStorm, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Source: "a", Target: "b", EdgeID: "service:a->service:b http"},
		Summary: "a retries 40% of its calls to b", Evidence: map[string]any{"retry_ratio": 0.4}}}
}

func TestFindings(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eng, err := detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{fixedDetector{}}, Now: func() time.Time { return now }})
	require.NoError(t, err)
	g, err := graph.New(graph.Options{})
	require.NoError(t, err)
	a, err := New(Options{Graph: g, Findings: eng})
	require.NoError(t, err)

	eng.Eval(context.Background(), &graph.Snapshot{})
	code, body := get(t, a, "/api/v1/findings")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{}, body["findings"], "pending is not firing")
	_, body = get(t, a, "/api/v1/findings?state=pending")
	require.Len(t, body["findings"], 1)

	now = now.Add(5 * time.Second)
	eng.Eval(context.Background(), &graph.Snapshot{})
	_, body = get(t, a, "/api/v1/findings?state=firing")
	f := body["findings"].([]any)[0].(map[string]any)
	require.Equal(t, "retry_storm", f["kind"])
	require.Equal(t, "firing", f["state"])
	require.Equal(t, "warning", f["severity"])
	require.Equal(t, map[string]any{"source": "a", "target": "b", "edge_id": "service:a->service:b http"}, f["subject"])
	require.Equal(t, "2026-01-01T00:00:00Z", f["started_at"])
	require.NotContains(t, f, "resolved_at")

	code, body = get(t, a, "/api/v1/findings?state=sleepy")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "state")
}

func TestSecurityHeaders(t *testing.T) {
	a, _ := newTestAPI(t, nil)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/graph", nil))
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'")
}

// pastGraph is a HistorySource that remembers what it was asked.
type pastGraph struct {
	window time.Duration
}

func (p *pastGraph) GraphAt(_ context.Context, at time.Time, window time.Duration) (*graph.Snapshot, error) {
	p.window = window
	return graph.NewSnapshot(at, window, nil, nil), nil
}

func TestLongWindowsComeFromHistory(t *testing.T) {
	g, err := graph.New(graph.Options{Window: time.Minute})
	require.NoError(t, err)
	h := &pastGraph{}
	a, err := New(Options{Graph: g, History: h})
	require.NoError(t, err)
	code, body := get(t, a, "/api/v1/graph?window=1h")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, time.Hour, h.window, "a window longer than the live one is read from storage")
	require.EqualValues(t, 3600, body["window_seconds"])
	code, _ = get(t, a, "/api/v1/graph?window=30s")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, time.Hour, h.window, "a live window stays live")
}

func TestUnplaced(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	// A client span naming no peer, no server span answering it.
	rej, why := g.ConsumeSpans([]graph.Span{{Trace: graph.TraceID{1}, ID: graph.SpanID{1}, Kind: graph.SpanClient,
		Service: "web", Start: 1, End: 2, Operation: "HTTP GET"}})
	require.Zero(t, rej, why)
	now = now.Add(15 * time.Second) // past the pair TTL
	g.Expire()

	a, err := New(Options{Graph: g})
	require.NoError(t, err)
	code, _ := get(t, a, "/api/v1/graph/unplaced")
	require.Equal(t, http.StatusNotImplemented, code, "without a source")

	a, err = New(Options{Graph: g, Unplaced: g})
	require.NoError(t, err)
	code, body := get(t, a, "/api/v1/graph/unplaced?window=30s")
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 30, body["window_seconds"])
	require.Equal(t, []any{map[string]any{"service": "web", "reason": "client_no_peer", "spans": float64(1), "examples": []any{"HTTP GET"}}}, body["unplaced"])
	code, body = get(t, a, "/api/v1/graph/unplaced?window=2h")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "window longer")
}
