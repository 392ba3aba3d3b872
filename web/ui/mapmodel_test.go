package ui

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

func TestNamespacesOwnership(t *testing.T) {
	svc := func(ns, name string) graph.Node {
		return graph.Node{ID: "service:" + ns + "/" + name, Kind: graph.NodeService, Name: name, Namespace: ns}
	}
	other := func(kind graph.NodeKind, name string) graph.Node {
		return graph.Node{ID: kind.String() + ":" + name, Kind: kind, Name: name}
	}
	a1, a2, b1 := svc("a", "one"), svc("a", "two"), svc("b", "one")
	bare := graph.Node{ID: "service:lone", Kind: graph.NodeService, Name: "lone"}
	client := other(graph.NodeClient, "web")
	edge := func(from, to graph.Node) graph.Edge {
		return graph.Edge{ID: from.ID + "->" + to.ID, Source: from.ID, Target: to.ID}
	}

	for _, c := range []struct {
		name  string
		node  graph.Node
		edges func(n graph.Node) []graph.Edge
		want  string
	}{
		{"database used by one namespace", other(graph.NodeDatabase, "db"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n), edge(a2, n)} }, "a"},
		{"database used by two namespaces", other(graph.NodeDatabase, "db"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n), edge(b1, n)} }, ""},
		{"topic produced and consumed in one namespace", other(graph.NodeTopic, "t"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n), edge(n, a2)} }, "a"},
		{"topic consumed in another namespace", other(graph.NodeTopic, "t"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n), edge(n, b1)} }, ""},
		{"queue used by a service without a namespace too", other(graph.NodeQueue, "q"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n), edge(n, bare)} }, ""},
		{"queue fed by a client", other(graph.NodeQueue, "q"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(client, n), edge(n, a1)} }, ""},
		{"external API called by one namespace stays outside", other(graph.NodeExternal, "api"), func(n graph.Node) []graph.Edge { return []graph.Edge{edge(a1, n)} }, ""},
		{"client calling one namespace stays outside", client, func(n graph.Node) []graph.Edge { return []graph.Edge{edge(n, a1)} }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes := map[string]graph.Node{}
			for _, n := range []graph.Node{a1, a2, b1, bare, client, c.node} {
				nodes[n.ID] = n
			}
			ns := namespaces(nodes, c.edges(c.node))
			require.Equal(t, c.want, ns[c.node.ID])
			require.Equal(t, "a", ns[a1.ID], "a service keeps its own namespace")
			require.Equal(t, "b", ns[b1.ID])
			require.Empty(t, ns[bare.ID])
		})
	}
}

// TestEdgeLabelSaysEstimated: an edge counted from sampled traces reads as
// an estimate on the map.
func TestEdgeLabelSaysEstimated(t *testing.T) {
	e := graph.Edge{RatePerS: 12, Requests: 120}
	require.NotContains(t, edgeLabel(e), "≈")
	e.Estimated = true
	require.True(t, strings.HasPrefix(edgeLabel(e), "≈"), edgeLabel(e))
}

// TestMapRolesGolden draws the fixture's map for views of an incident and
// writes what each node and edge is (subject, blast, dim) to a golden
// file: the firing findings' subjects are marked, their blast radius
// highlighted and the rest dimmed; the incident view draws only the
// affected subgraph.
func TestMapRolesGolden(t *testing.T) {
	src := fixture()
	// A second firing finding, on a node: the bottleneck on the database.
	fs := append(slices.Clone(src.findings), finding.Finding{ID: "bn2", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Node: "orders", NodeID: "database:postgresql/orders"}, Summary: "orders is slow", StartedAt: now,
		BlastRadius: &finding.BlastRadius{Upstream: []finding.Affected{{Node: "<script>alert(1)</script>", NodeID: "service:shop/<script>alert(1)</script>", Share: 0.5, Hops: 1}}}})
	lay := newLayouter(t, layout.Options{})
	for _, c := range []struct {
		name     string
		query    string
		findings []finding.Finding
	}{
		{"map-roles-firing", "", src.findings},
		{"map-roles-two-firing", "", fs},
		{"map-roles-dim-off", "dim=off", src.findings},
		{"map-roles-none-firing", "", nil},
		{"map-roles-incident-all", "incident=1", fs},
		{"map-roles-incident-one", "incident=bn2", fs},
		{"map-roles-incident-pending", "incident=cl1", fs},
		{"map-roles-incident-unknown", "incident=nope", fs},
		{"map-roles-incident-none-firing", "incident=1", nil},
		{"map-roles-collapsed", "collapse=shop", fs},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			require.NoError(t, err)
			v, err := parseView(q)
			require.NoError(t, err)
			m, err := buildMap(context.Background(), lay, mapInput{Snap: src.snap, Findings: c.findings, View: v, MaxNodes: 100, Base: "/"})
			require.NoError(t, err)
			var b strings.Builder
			fmt.Fprintf(&b, "view: %q\nfiring: %d, incident view: %v\n", c.query, m.Firing, m.Incident)
			for _, n := range m.Notes {
				fmt.Fprintf(&b, "note: %s\n", n)
			}
			for _, n := range m.Nodes {
				fmt.Fprintf(&b, "node %-45s %s\n", n.ID, roleText(n.Role, n.Severity))
			}
			for _, e := range m.Edges {
				fmt.Fprintf(&b, "edge %-90s %s width %.1f\n", e.ID, roleText(e.Role, e.Severity), e.Width)
			}
			golden(t, c.name+".txt", b.String())

			// What the golden files say, checked where they cannot drift.
			for _, n := range m.Nodes {
				if m.Incident {
					require.NotEqual(t, roleDim, n.Role, "the incident view draws only affected nodes: %s", n.ID)
					require.NotEmpty(t, n.Role, "the incident view draws only affected nodes: %s", n.ID)
				}
				if v.NoDim || m.Firing == 0 {
					require.NotEqual(t, roleDim, n.Role, "nothing dimmed: %s", n.ID)
				}
			}
			for _, e := range m.Edges {
				if e.Role == roleSubject {
					require.GreaterOrEqual(t, e.Width, subjectEdgeWidth, "a subject edge is thick")
				}
			}
		})
	}
}

func roleText(role, severity string) string {
	if role == "" {
		return "-"
	}
	if severity == "" {
		return role
	}
	return role + " (" + severity + ")"
}
