package ui

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
	"github.com/seed-a49a8342/cartograph/web/api"
)

// teamOwner names a service's owner from its "team" attribute.
type teamOwner struct{}

func (teamOwner) Owner(_ string, attrs map[string]string) string { return attrs["team"] }

// TestPastViewKeepsEnvironmentAndOwner: a past view (at=) reads the graph
// back from storage (a real embedded store behind the collector's API),
// and its node page still shows the node's environment, owner and kept
// k8s attributes (k8s.deployment.name, k8s.statefulset.name), and its map
// still splits by environment (env=).
func TestPastViewKeepsEnvironmentAndOwner(t *testing.T) {
	ctx := context.Background()
	var nowNS atomic.Int64 // the store's retention reads it from its own goroutine
	nowNS.Store(time.Now().Add(-10 * time.Minute).Truncate(5 * time.Second).UnixNano())
	nowFn := func() time.Time { return time.Unix(0, nowNS.Load()).UTC() }
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Now: nowFn})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, Now: nowFn, Owners: teamOwner{}})
	require.NoError(t, err)
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: st, Edges: g})
	require.NoError(t, err)
	for i := range 6 {
		var spans []graph.Span
		for j, env := range []string{"production", "staging"} {
			workload := graph.Attr{Key: "k8s.deployment.name", Value: "web-" + env}
			if env == "staging" {
				workload = graph.Attr{Key: "k8s.statefulset.name", Value: "web-" + env}
			}
			res := []graph.Attr{{Key: graph.EnvironmentAttr, Value: env}, workload, {Key: "team", Value: "team-web"}}
			tr := graph.TraceID{byte(i), byte(j), 3}
			start := nowNS.Load() + int64(j)*int64(time.Millisecond)
			spans = append(spans,
				graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: "api-" + env, Start: start + 1e6, End: start + 5e6, Protocol: graph.ProtocolHTTP},
				graph.Span{Trace: tr, ID: graph.SpanID{1}, Kind: graph.SpanClient, Service: "web-" + env, Start: start, End: start + 6e6, Protocol: graph.ProtocolHTTP, Operation: "GET /", Attributes: res},
			)
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		nowNS.Add(int64(5 * time.Second))
		require.NoError(t, p.Flush(ctx))
	}
	a, err := api.New(api.Options{Graph: g, History: storage.History{Storage: st}})
	require.NoError(t, err)
	u := newTestUI(t, a.Local())
	at := "at=" + url.QueryEscape(nowFn().Format(time.RFC3339)) + "&window=1m"
	for _, tt := range []struct {
		name, url   string
		has, hasNot []string
	}{
		{"node page, production", "/node?id=" + url.QueryEscape("service:web-production") + "&" + at,
			[]string{`environment <b class="env">production</b>`, `owner <b class="owner">team-web</b>`, "<dt>k8s.deployment.name</dt><dd>web-production</dd>"}, nil},
		{"node page, staging", "/node?id=" + url.QueryEscape("service:web-staging") + "&" + at,
			[]string{`environment <b class="env">staging</b>`, "<dt>k8s.statefulset.name</dt><dd>web-staging</dd>"}, nil},
		{"map, staging", "/?env=staging&" + at,
			[]string{`data-node="service:web-staging"`}, []string{`data-node="service:web-production"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := get(t, u, tt.url)
			require.Equal(t, http.StatusOK, code, body)
			for _, s := range tt.has {
				require.Contains(t, body, s)
			}
			for _, s := range tt.hasNot {
				require.NotContains(t, body, s)
			}
		})
	}
}
