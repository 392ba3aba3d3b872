package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// TestReviewEndpoints: /api/v1/review and /api/v1/review.md answer the
// review of the live window, filtered by namespace; an unknown namespace
// or a past time is a 400; without a reviewer both are 501.
func TestReviewEndpoints(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	var spans []graph.Span
	for i, ns := range []string{"shop", "ops"} {
		tr := graph.TraceID{byte(i + 1)}
		spans = append(spans,
			graph.Span{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "web", Namespace: ns, End: 1},
			graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "api", Namespace: ns, End: 1},
		)
	}
	// In shop, api also calls stock: api lies between web and stock.
	spans = append(spans,
		graph.Span{Trace: graph.TraceID{1}, ID: graph.SpanID{3}, Parent: graph.SpanID{2}, Kind: graph.SpanClient, Service: "api", Namespace: "shop", End: 1},
		graph.Span{Trace: graph.TraceID{1}, ID: graph.SpanID{4}, Parent: graph.SpanID{3}, Kind: graph.SpanServer, Service: "stock", Namespace: "shop", End: 1},
	)
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	// Hubs at degree 1 and any betweenness: shop's api is one.
	rv, err := review.New(review.Options{HubMinDegree: 1, HubMinBetweenness: 1e-9}, nil)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: g, Review: rv, Gatherer: reg, Registerer: reg})
	require.NoError(t, err)

	code, body := get(t, a, "/api/v1/review")
	require.Equal(t, http.StatusOK, code, body)
	obs := body["observations"].([]any)
	require.Len(t, obs, 1, body)
	hub := obs[0].(map[string]any)
	require.Equal(t, "hub:service:shop/api", hub["id"])
	require.Equal(t, "info", hub["severity"])
	require.Equal(t, "shop", hub["namespace"])
	require.Equal(t, map[string]any{"node": "api", "node_id": "service:shop/api"}, hub["subject"])
	require.NotEmpty(t, hub["summary"])
	require.NotEmpty(t, hub["remedy"])
	require.NotEmpty(t, body["skipped"], "no trace sampler: the judgements needing one are named")

	code, body = get(t, a, "/api/v1/review?namespace=ops&window=30s")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []any{}, body["observations"])
	code, body = get(t, a, "/api/v1/review?namespace=shop")
	require.Equal(t, http.StatusOK, code, body)
	require.Len(t, body["observations"], 1)

	for url, want := range map[string]string{
		"/api/v1/review?namespace=nope":                 `namespace "nope": the graph has ops, shop`,
		"/api/v1/review?at=2026-01-01T00:00:00Z":        "at: the review judges the live window",
		"/api/v1/review?window=banana":                  "window",
		"/api/v1/review.md?namespace=nope":              `namespace "nope"`,
		"/api/v1/review.md?at=2026-01-01T00:00:00Z&x=1": "at:",
	} {
		code, body := get(t, a, url)
		require.Equal(t, http.StatusBadRequest, code, url)
		require.Contains(t, body["error"], want, url)
	}

	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/review.md?namespace=shop", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/markdown; charset=utf-8", rec.Header().Get("Content-Type"))
	require.True(t, strings.HasPrefix(rec.Body.String(), "# Communication review\n"), rec.Body.String())
	require.Contains(t, rec.Body.String(), "Not judged: ")
	require.Contains(t, rec.Body.String(), "## Namespace `shop`\n\n### Hub: api\n")

	none, err := New(Options{Graph: g})
	require.NoError(t, err)
	for _, url := range []string{"/api/v1/review", "/api/v1/review.md"} {
		code, _ := get(t, none, url)
		require.Equal(t, http.StatusNotImplemented, code)
	}
}
