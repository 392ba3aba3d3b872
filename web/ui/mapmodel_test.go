package ui

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
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
