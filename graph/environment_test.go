package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ownersFunc is an OwnerSource from a function.
type ownersFunc func(service string, attrs map[string]string) string

func (f ownersFunc) Owner(service string, attrs map[string]string) string { return f(service, attrs) }

// TestNodeEnvironmentAndOwner: a service node's environment comes from
// deployment.environment.name, else the legacy deployment.environment; its
// owner from Options.Owners; both are in the JSON and absent when unknown.
func TestNodeEnvironmentAndOwner(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{Owners: ownersFunc(func(svc string, attrs map[string]string) string {
		if v := attrs["team"]; v != "" {
			return v
		}
		if svc == "c" {
			return "catalog-team"
		}
		return ""
	})})
	span := func(b byte, svc string, attrs ...Attr) Span {
		s := server(tid(b), sid(b), SpanID{}, svc, 0, ms)
		s.Attributes = attrs
		return s
	}
	rej, why := g.ConsumeSpans([]Span{
		span(1, "a", Attr{Key: EnvironmentAttr, Value: "production"}, Attr{Key: LegacyEnvironmentAttr, Value: "old"}, Attr{Key: "team", Value: "blue"}),
		span(2, "b", Attr{Key: LegacyEnvironmentAttr, Value: "staging"}),
		span(3, "c"),
	})
	require.Zero(t, rej, why)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	tests := []struct{ id, env, owner string }{
		{"service:a", "production", "blue"},
		{"service:b", "staging", ""},
		{"service:c", "", "catalog-team"},
		{"client:client", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			n, ok := snap.Node(tt.id)
			require.True(t, ok)
			require.Equal(t, tt.env, n.Environment)
			require.Equal(t, tt.owner, n.Owner)
		})
	}
	require.Equal(t, []string{"production", "staging"}, snap.Environments())
}

// TestInEnvironment: an environment's graph holds its services, the nodes
// without an environment they talk to, and the edges among those; never a
// service of another environment, nor a shared database's edges to it.
func TestInEnvironment(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := func(n, env string) Node {
		return Node{ID: "service:" + n, Kind: NodeService, Name: n, Environment: env}
	}
	db := Node{ID: "database:postgresql/orders", Kind: NodeDatabase, Name: "orders"}
	topic := Node{ID: "topic:kafka/events", Kind: NodeTopic, Name: "events"}
	lonely := Node{ID: "database:redis/cache", Kind: NodeDatabase, Name: "cache"}
	edge := func(src, dst string) Edge {
		return Edge{ID: src + "->" + dst, Source: src, Target: dst, Kind: EdgeSync, Requests: 10}
	}
	s := NewSnapshot(at, time.Minute, []Node{
		svc("web", "production"), svc("api", "production"), svc("web-stg", "staging"), svc("noenv", ""),
		db, topic, lonely,
	}, []Edge{
		edge("service:web", "service:api"),
		edge("service:api", db.ID),
		edge("service:web-stg", db.ID), // a shared database
		edge(topic.ID, "service:web-stg"),
		edge("service:noenv", "service:web"),   // a caller that names no environment
		edge("service:web", "service:web-stg"), // across environments: in neither
	})
	s.IdleNodes = []Node{{ID: "service:old", Kind: NodeService, Name: "old", Environment: "production", Idle: true}}
	ids := func(s *Snapshot) (nodes, edges []string) {
		for _, n := range append(s.Nodes, s.IdleNodes...) {
			nodes = append(nodes, n.ID)
		}
		for _, e := range append(s.Edges, s.IdleEdges...) {
			edges = append(edges, e.ID)
		}
		return nodes, edges
	}
	tests := []struct {
		env          string
		nodes, edges []string
	}{
		{"production",
			[]string{db.ID, "service:api", "service:noenv", "service:web", "service:old"},
			[]string{"service:api->" + db.ID, "service:noenv->service:web", "service:web->service:api"}},
		{"staging",
			[]string{db.ID, "service:web-stg", topic.ID},
			[]string{"service:web-stg->" + db.ID, topic.ID + "->service:web-stg"}},
		{"nowhere", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			got := s.InEnvironment(tt.env)
			nodes, edges := ids(got)
			require.Equal(t, tt.nodes, nodes)
			require.Equal(t, tt.edges, edges)
			for _, n := range got.Nodes {
				_, ok := got.Node(n.ID)
				require.True(t, ok, "the index finds %s", n.ID)
			}
			_, ok := got.Node(lonely.ID)
			require.False(t, ok)
		})
	}
	require.Equal(t, []string{"production", "staging"}, s.Environments())
}

// TestStoredNodesKeepEnvironmentAndOwner: the node rows a graph exports
// (ClosedNodes) carry the kept attributes and the owner, and the graph
// merged from stored buckets and nodes (SnapshotOfNodes, what ?at= and the
// merged judge read) describes each node as the live graph did: the same
// attributes, environment and owner, from the newest row that has them.
func TestStoredNodesKeepEnvironmentAndOwner(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{Window: time.Minute, Bucket: 5 * time.Second,
		Owners: ownersFunc(func(svc string, attrs map[string]string) string { return attrs["team"] })})
	call := func(b byte, from, to string, fromAttrs, toAttrs []Attr) []Span {
		c := client(tid(b), sid(b), SpanID{}, from, 0, 2*ms)
		c.Attributes = fromAttrs
		s := server(tid(b), SpanID{b, 3}, sid(b), to, ms/2, ms)
		s.Attributes = toAttrs
		return []Span{c, s}
	}
	prod := func(team string) []Attr {
		return []Attr{{Key: EnvironmentAttr, Value: "production"}, {Key: "k8s.deployment.name", Value: "x"}, {Key: "team", Value: team}}
	}
	stg := []Attr{{Key: LegacyEnvironmentAttr, Value: "staging"}, {Key: "k8s.statefulset.name", Value: "y"}}
	var closed []NodeSeen
	var buckets []EdgeBucket
	var upTo time.Time
	export := func() {
		clk.advance(5 * time.Second)
		nodes := g.ClosedNodes(upTo)
		b, next := g.ClosedBuckets(upTo)
		closed, buckets, upTo = append(closed, nodes...), append(buckets, b...), next
	}
	rej, why := g.ConsumeSpans(append(call(1, "web", "api", prod("blue"), prod("blue")), call(2, "web-stg", "api-stg", stg, nil)...))
	require.Zero(t, rej, why)
	export()
	// The team changes: the newer rows win.
	rej, why = g.ConsumeSpans(call(3, "web", "api", prod("green"), prod("green")))
	require.Zero(t, rej, why)
	export()
	require.NotEmpty(t, closed)
	for _, n := range closed {
		if n.Key.Name == "web" {
			require.NotEmpty(t, n.Attributes, "rows carry the kept attributes")
		}
	}

	live, err := g.Snapshot(0)
	require.NoError(t, err)
	stored := SnapshotOfNodes(clk.now(), time.Minute, buckets, closed, nil)
	for _, id := range []string{"service:web", "service:api", "service:web-stg", "service:api-stg"} {
		t.Run(id, func(t *testing.T) {
			l, ok := live.Node(id)
			require.True(t, ok)
			s, ok := stored.Node(id)
			require.True(t, ok)
			require.Equal(t, l.Attributes, s.Attributes)
			require.Equal(t, l.Environment, s.Environment)
			require.Equal(t, l.Owner, s.Owner)
		})
	}
	web, _ := stored.Node("service:web")
	require.Equal(t, "green", web.Owner)
	require.Equal(t, "production", web.Environment)
	require.Equal(t, []string{"production", "staging"}, stored.Environments())
	require.Len(t, stored.InEnvironment("staging").Nodes, 2)
}
