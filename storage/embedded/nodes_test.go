package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

func commitNodes(t testing.TB, s *Store, nodes []graph.NodeSeen) {
	t.Helper()
	app := s.Appender()
	require.NoError(t, app.AppendNodes(nodes))
	require.NoError(t, app.Commit(context.Background()))
}

func TestNodesRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	w := 5 * time.Second
	nodes := []graph.NodeSeen{
		{Start: t0.Add(w), Width: w, Key: graph.NodeKey{Kind: graph.NodeService, Group: "jobs", Name: "batch"}},
		{Start: t0, Width: w, Key: svc("a")},
		{Start: t0, Width: w, Key: graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}, Collector: "c1"},
		{Start: t0.Add(-time.Nanosecond), Width: w, Key: svc("early")},
		{Start: t0.Add(time.Minute), Width: w, Key: svc("late")},
	}
	commitNodes(t, s, nodes)
	commitNodes(t, s, nodes[1:2]) // the same row again: stored twice, not overwritten

	got, err := s.Nodes(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []graph.NodeSeen{nodes[1], nodes[2], nodes[1], nodes[0]}, got, "in start order, [from, to)")
	all, err := s.Nodes(ctx, time.Time{}, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, all, 6)
	require.Equal(t, 6.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindNode)))
	require.Equal(t, 6.0, testutil.ToFloat64(s.m.written.WithLabelValues(kindNode)))
	require.Empty(t, allEdges(t, s), "nodes are a bucket of their own")

	// Rollback writes nothing; a done appender refuses nodes.
	app := s.Appender()
	require.NoError(t, app.AppendNodes(nodes))
	require.NoError(t, app.Rollback())
	require.ErrorIs(t, app.AppendNodes(nodes), ErrAppenderDone)
	all, err = s.Nodes(ctx, time.Time{}, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, all, 6)

	// A corrupt row is an error, not a wrong node.
	var n graph.NodeSeen
	_, err = decodeNodeSeen(&reader{}, 0, appendNodeSeen(nil, &n)[:2])
	require.ErrorIs(t, err, errCorrupt)
}

func TestNodesRetention(t *testing.T) {
	clk := &clock{now: t0}
	s := openStore(t, Options{Retention: 24 * time.Hour, Now: clk.Now})
	var nodes []graph.NodeSeen
	for d := range 3 {
		nodes = append(nodes, graph.NodeSeen{Start: t0.Add(time.Duration(d) * 24 * time.Hour), Width: time.Second, Key: svc("a")})
	}
	commitNodes(t, s, nodes)
	clk.Set(t0.Add(48 * time.Hour))
	require.NoError(t, s.EnforceRetention(context.Background()))
	got, err := s.Nodes(context.Background(), time.Time{}, t0.Add(time.Hour*1000))
	require.NoError(t, err)
	require.Equal(t, nodes[1:], got, "rows at the cutoff are kept")
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindNode, reasonAge)))
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindNode)))

	// By size, the oldest rows go first, nodes and their rollup rows
	// among them (in timeKeyed order: edge, node, lag, edge_1m, node_1m).
	counts, err := s.deleteOldest(4)
	require.NoError(t, err)
	require.Equal(t, []int{0, 2, 0, 0, 2}, counts)
	got, err = s.Nodes(context.Background(), time.Time{}, t0.Add(time.Hour*1000))
	require.NoError(t, err)
	require.Empty(t, got)
}
