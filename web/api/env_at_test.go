package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
	"github.com/seed-a49a8342/cartograph/web/api"
)

// attrOwners names a service's owner from its "team" attribute.
type attrOwners struct{}

func (attrOwners) Owner(_ string, attrs map[string]string) string { return attrs["team"] }

// TestGraphAtWithEnv: ?env= works on history (?at=) as on the live graph:
// the graph read back from a real store keeps each node's environment,
// owner and kept attributes, env picks one environment's part of it, and
// an environment the past graph does not hold is a 400 naming those it
// does.
func TestGraphAtWithEnv(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var nowNS atomic.Int64 // the store's retention reads it from its own goroutine
	nowNS.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNS.Load()).UTC() }
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retention: 50 * 365 * 24 * time.Hour, Now: clock})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, Now: clock, Owners: attrOwners{}})
	require.NoError(t, err)
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: st, Edges: g})
	require.NoError(t, err)
	for i := range 6 {
		var spans []graph.Span
		for j, env := range []string{"production", "staging"} {
			res := []graph.Attr{{Key: graph.EnvironmentAttr, Value: env}, {Key: "k8s.deployment.name", Value: "web"}, {Key: "team", Value: "team-" + env}}
			tr := graph.TraceID{byte(i), byte(j), 1}
			start := nowNS.Load() + int64(j)*int64(time.Millisecond)
			spans = append(spans,
				graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "api-" + env, Start: start + 1e6, End: start + 5e6, Protocol: graph.ProtocolHTTP, Attributes: res},
				graph.Span{Trace: tr, ID: graph.SpanID{1}, Kind: graph.SpanClient, Service: "web-" + env, Start: start, End: start + 6e6, Protocol: graph.ProtocolHTTP, Operation: "GET /", Attributes: res},
			)
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		nowNS.Add(int64(5 * time.Second))
		require.NoError(t, p.Flush(ctx))
	}
	now := clock()
	a, err := api.New(api.Options{Graph: g, History: storage.History{Storage: st}, Now: func() time.Time { return now.Add(time.Hour) }})
	require.NoError(t, err)
	get := func(url string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		var body map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
		return rec.Code, body
	}
	at := now.Format(time.RFC3339)
	for _, env := range []string{"production", "staging"} {
		t.Run(env, func(t *testing.T) {
			code, body := get("/api/v1/graph?window=1m&at=" + at + "&env=" + env)
			require.Equal(t, http.StatusOK, code, body)
			var ids []string
			for _, n := range body["nodes"].([]any) {
				n := n.(map[string]any)
				ids = append(ids, n["id"].(string))
				require.Equal(t, env, n["environment"])
				require.Equal(t, "team-"+env, n["owner"])
				require.Equal(t, "web", n["attributes"].(map[string]any)["k8s.deployment.name"])
			}
			require.Equal(t, []string{"service:api-" + env, "service:web-" + env}, ids)
			require.Len(t, body["edges"], 1)
		})
	}
	code, body := get("/api/v1/graph?window=1m&at=" + at + "&env=qa")
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, `env: unknown environment "qa": the graph has production, staging (or ask for env=all)`, body["error"])
	code, body = get("/api/v1/graph?window=1m&at=" + at + "&env=all")
	require.Equal(t, http.StatusOK, code, body)
	require.Len(t, body["nodes"], 4)
}
