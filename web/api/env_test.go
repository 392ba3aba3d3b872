package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestGraphEnvFilter: ?env= on /api/v1/graph keeps one environment's
// services and what they talk to, on the tick's graph and on a built one;
// env=all (or no env) is every environment; an unknown or empty env is a
// 400 JSON error that says what to ask for.
func TestGraphEnvFilter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	env := func(e string) []graph.Attr { return []graph.Attr{{Key: graph.EnvironmentAttr, Value: e}} }
	var spans []graph.Span
	for i, e := range []string{"production", "staging"} {
		tr := graph.TraceID{byte(i + 1)}
		spans = append(spans,
			graph.Span{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "web-" + e, End: 1, Attributes: env(e)},
			graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "api-" + e, End: 1, Attributes: env(e)},
		)
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	reg := prometheus.NewRegistry()
	a, err := New(Options{Graph: g, Gatherer: reg, Registerer: reg})
	require.NoError(t, err)
	s, err := g.Snapshot(0)
	require.NoError(t, err)

	nodeIDs := func(body map[string]any) []string {
		var ids []string
		for _, n := range body["nodes"].([]any) {
			ids = append(ids, n.(map[string]any)["id"].(string))
		}
		return ids
	}
	tests := []struct {
		name, url string
		code      int
		nodes     []string
		err       string
	}{
		{"production", "/api/v1/graph?env=production", http.StatusOK, []string{"service:api-production", "service:web-production"}, ""},
		{"staging, another window", "/api/v1/graph?env=staging&window=30s", http.StatusOK, []string{"service:api-staging", "service:web-staging"}, ""},
		{"all", "/api/v1/graph?env=all", http.StatusOK, []string{"service:api-production", "service:api-staging", "service:web-production", "service:web-staging"}, ""},
		{"none given", "/api/v1/graph", http.StatusOK, []string{"service:api-production", "service:api-staging", "service:web-production", "service:web-staging"}, ""},
		{"unknown", "/api/v1/graph?env=prod", http.StatusBadRequest, nil, `env: unknown environment "prod": the graph has production, staging (or ask for env=all)`},
		{"empty", "/api/v1/graph?env=", http.StatusBadRequest, nil, "env: empty: name a deployment environment, or all"},
	}
	for _, tick := range []bool{false, true} {
		if tick {
			a.Receive(s, nil, nil)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, body := get(t, a, tt.url)
				require.Equal(t, tt.code, code, body)
				if tt.err != "" {
					require.Equal(t, tt.err, body["error"])
					return
				}
				require.Equal(t, tt.nodes, nodeIDs(body))
				if want := tt.nodes[0][len("service:api-"):]; len(tt.nodes) == 2 {
					for _, n := range body["nodes"].([]any) {
						require.Equal(t, want, n.(map[string]any)["environment"])
					}
				}
			})
		}
	}
}
