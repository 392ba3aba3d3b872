package ui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// envGraph is two environments' services sharing a database, and a topic
// only staging uses.
func envGraph() *graph.Snapshot {
	svc := func(name, env, owner string) graph.Node {
		return graph.Node{ID: "service:" + name, Kind: graph.NodeService, Name: name, Environment: env, Owner: owner,
			Attributes: map[string]string{graph.EnvironmentAttr: env, "k8s.deployment.name": name + "-deploy"}}
	}
	edge := func(src, dst string) graph.Edge {
		return graph.Edge{ID: src + "->" + dst + " http", Source: src, Target: dst, Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 10, RatePerS: 1}
	}
	return graph.NewSnapshot(now, time.Minute, []graph.Node{
		svc("web-prod", "production", "team-web"), svc("web-stg", "staging", ""),
		{ID: "database:postgresql/orders", Kind: graph.NodeDatabase, Name: "orders", System: "postgresql"},
		{ID: "topic:kafka/stg-events", Kind: graph.NodeTopic, Name: "stg-events", System: "kafka"},
	}, []graph.Edge{
		edge("service:web-prod", "database:postgresql/orders"),
		edge("service:web-stg", "database:postgresql/orders"),
		edge("service:web-stg", "topic:kafka/stg-events"),
	})
}

// TestMapEnvironments: a map of a graph that mixes environments says so and
// offers them; env= draws one environment's services and what they talk
// to; env=all merges them without the warning; an unknown env is a 400
// that names the known ones; a one-environment map lists only the findings
// on it. Node titles, node pages and findings show owner and environment.
func TestMapEnvironments(t *testing.T) {
	stgFinding := finding.Finding{ID: "f-stg", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Node: "web-stg", NodeID: "service:web-stg"}, Summary: "staging is slow", StartedAt: now, LastSeen: now}
	prodFinding := finding.Finding{ID: "f-prod", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Node: "web-prod", NodeID: "service:web-prod"}, Owner: "team-web", Summary: "production is slow", StartedAt: now, LastSeen: now}
	u := newTestUI(t, &fixedSource{snap: envGraph(), findings: []finding.Finding{stgFinding, prodFinding}})
	const mixed = "this graph mixes 2 environments (production, staging)"
	tests := []struct {
		name, url   string
		code        int
		has, hasNot []string
	}{
		{"mixed: warned and offered", "/", http.StatusOK,
			[]string{mixed, `<select name="env">`, `<option value="production">production</option>`, `<option value="all">all (merged)</option>`, `data-node="service:web-stg"`}, nil},
		{"production", "/?env=production", http.StatusOK,
			[]string{`data-node="service:web-prod"`, `data-node="database:postgresql/orders"`, `<option value="production" selected>production</option>`,
				"environment: production\nowner: team-web", "production is slow", `<span class="owner" title="the team that must act">owner team-web</span>`},
			[]string{mixed, `data-node="service:web-stg"`, `data-node="topic:kafka/stg-events"`, "staging is slow"}},
		{"staging", "/?env=staging", http.StatusOK,
			[]string{`data-node="service:web-stg"`, `data-node="database:postgresql/orders"`, `data-node="topic:kafka/stg-events"`},
			[]string{`data-node="service:web-prod"`}},
		{"all, on purpose", "/?env=all", http.StatusOK,
			[]string{`data-node="service:web-stg"`, `data-node="service:web-prod"`, `<option value="all" selected>all (merged)</option>`}, []string{mixed}},
		{"unknown", "/?env=prod", http.StatusBadRequest,
			[]string{`env &#34;prod&#34;: no service of this graph is in that environment; it has production, staging (env=all shows them all)`}, nil},
		{"node page", "/node?id=" + url.QueryEscape("service:web-prod"), http.StatusOK,
			[]string{`environment <b class="env">production</b>`, `owner <b class="owner">team-web</b>`, "<dt>k8s.deployment.name</dt><dd>web-prod-deploy</dd>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := get(t, u, tt.url)
			require.Equal(t, tt.code, code, body)
			for _, s := range tt.has {
				require.Contains(t, body, s)
			}
			for _, s := range tt.hasNot {
				require.NotContains(t, body, s)
			}
		})
	}
	// One environment: nothing to choose.
	one := envGraph().InEnvironment("production")
	code, _, body := get(t, newTestUI(t, &fixedSource{snap: one}), "/")
	require.Equal(t, http.StatusOK, code)
	require.False(t, strings.Contains(body, `name="env"`), "no selector for one environment")
}
