package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/graph/formats/dot"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestExports: /api/v1/graph.mmd and /api/v1/graph.dot draw the graph the
// map's filters select (window, env, at from history) plus namespace,
// focus/hops and hide; a bad filter is a 400 JSON error.
func TestExports(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	env := func(e string) []graph.Attr { return []graph.Attr{{Key: graph.EnvironmentAttr, Value: e}} }
	var spans []graph.Span
	for i, e := range []string{"production", "staging"} {
		tr := graph.TraceID{byte(i + 1)}
		spans = append(spans,
			graph.Span{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "web-" + e, Namespace: "shop", End: 1, Attributes: env(e)},
			graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "api-" + e, Namespace: "back", End: 1, Attributes: env(e)},
		)
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: g, History: &pastGraph{}, Gatherer: reg, Registerer: reg, Now: func() time.Time { return now }})
	require.NoError(t, err)

	fetch := func(url string) (int, string, string) {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
	}
	tests := []struct {
		name, query string
		has, lacks  []string
	}{
		{"everything", "", []string{"service_shop_web_production", "service_back_api_staging"}, nil},
		{"env", "?env=staging", []string{"service_shop_web_staging", "service_back_api_staging"}, []string{"production"}},
		{"namespace", "?namespace=back&hide=service:back/api-staging", []string{"service_back_api_production", "service_shop_web_production"}, []string{"staging"}},
		{"focus", "?focus=service:shop/web-production&hops=1", []string{"service_back_api_production"}, []string{"staging"}},
		{"window", "?window=30s", []string{"service_shop_web_production"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ct, body := fetch("/api/v1/graph.mmd" + tt.query)
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, "text/vnd.mermaid; charset=utf-8", ct)
			require.True(t, strings.HasPrefix(strings.SplitN(body, "\n", 2)[1], "flowchart LR\n"), body)
			code, ct, dotBody := fetch("/api/v1/graph.dot" + tt.query)
			require.Equal(t, http.StatusOK, code, dotBody)
			require.Equal(t, "text/vnd.graphviz; charset=utf-8", ct)
			_, err := dot.ParseString(dotBody)
			require.NoError(t, err, dotBody)
			for _, out := range []string{body, dotBody} {
				for _, s := range tt.has {
					require.Contains(t, out, s)
				}
				for _, s := range tt.lacks {
					require.NotContains(t, out, s)
				}
				require.Contains(t, out, "1/s · 0% err") // one call in the graph's first second
			}
		})
	}
	t.Run("past", func(t *testing.T) {
		code, _, body := fetch("/api/v1/graph.dot?at=2026-01-01T00:00:00Z&window=5m")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "window 300s")
	})
	for _, bad := range []string{"?hops=9", "?env=", "?env=prod", "?window=-1", "?at=tomorrow", "?env=staging&at=2026-01-01T00:00:00Z"} {
		for _, ext := range []string{"mmd", "dot"} {
			code, body := get(t, a, "/api/v1/graph."+ext+bad)
			require.Equal(t, http.StatusBadRequest, code, "%s: %v", bad, body)
			require.NotEmpty(t, body["error"])
		}
	}
}
