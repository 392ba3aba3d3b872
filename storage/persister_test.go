package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// liveGraph is a graph on a test clock, with a service that only emits
// internal spans (no edge) and a call a -> b.
func liveGraph(t *testing.T) (*graph.Graph, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, Now: clk.now})
	require.NoError(t, err)
	ms := int64(time.Millisecond)
	rej, why := g.ConsumeSpans([]graph.Span{
		{Trace: graph.TraceID{1}, ID: graph.SpanID{1}, Kind: graph.SpanInternal, Service: "batch", Namespace: "jobs", End: ms},
		{Trace: graph.TraceID{2}, ID: graph.SpanID{2}, Kind: graph.SpanClient, Service: "a", End: 5 * ms, Protocol: graph.ProtocolHTTP},
		{Trace: graph.TraceID{2}, ID: graph.SpanID{3}, Parent: graph.SpanID{2}, Kind: graph.SpanServer, Service: "b", Start: ms, End: 4 * ms, Protocol: graph.ProtocolHTTP},
	})
	require.Zero(t, rej, why)
	return g, clk
}

var batch = graph.NodeKey{Kind: graph.NodeService, Group: "jobs", Name: "batch"}

// The persister stores the nodes a graph saw, and history shows a node
// that had no edge in the window, with its kind and namespace.
func TestPersisterWritesNodesAndHistoryShowsThem(t *testing.T) {
	ctx := context.Background()
	g, clk := liveGraph(t)
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), RetentionInterval: -1})
	require.NoError(t, err)
	defer st.Close()
	reg := prometheus.NewRegistry()
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: st, Edges: g, Registerer: reg})
	require.NoError(t, err)

	require.NoError(t, p.Flush(ctx))
	nodes, err := st.Nodes(ctx, time.Time{}, clk.t.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, nodes, "the current bucket is not closed yet")

	clk.t = clk.t.Add(5 * time.Second)
	require.NoError(t, p.Flush(ctx))
	require.NoError(t, p.Flush(ctx)) // nothing closed since: nothing written twice
	nodes, err = st.Nodes(ctx, time.Time{}, clk.t.Add(time.Hour))
	require.NoError(t, err)
	var keys []string
	for _, n := range nodes {
		keys = append(keys, n.Key.ID())
	}
	require.ElementsMatch(t, []string{"service:a", "service:b", "service:jobs/batch"}, keys)
	require.Equal(t, 3.0, rowsMetric(t, reg, "node", "written"))

	snap, err := storage.History{Storage: st}.GraphAt(ctx, clk.t, time.Minute)
	require.NoError(t, err)
	nd, ok := snap.Node(batch.ID())
	require.True(t, ok, "a node without edges is in history")
	require.Equal(t, graph.NodeService, nd.Kind)
	require.Equal(t, "jobs", nd.Namespace)
	require.Len(t, snap.Nodes, 3)
	require.Len(t, snap.Edges, 1)
	live, err := g.Snapshot(0)
	require.NoError(t, err)
	require.Len(t, live.Nodes, len(snap.Nodes), "history has the nodes the live graph has")
}

// failing is a Storage whose writes all fail.
type failing struct{ storage.Storage }

func (failing) Appender() storage.Appender { return failingAppender{} }

type failingAppender struct{}

func (failingAppender) AppendEdges([]graph.EdgeBucket) error   { return nil }
func (failingAppender) AppendNodes([]graph.NodeSeen) error     { return nil }
func (failingAppender) AppendFindings([]finding.Finding) error { return nil }
func (failingAppender) AppendLag([]lag.Sample) error           { return nil }
func (failingAppender) Commit(context.Context) error           { return errors.New("down") }
func (failingAppender) Rollback() error                        { return nil }

func TestPersisterBuffersAndDropsNodes(t *testing.T) {
	g, clk := liveGraph(t)
	clk.t = clk.t.Add(5 * time.Second)
	reg := prometheus.NewRegistry()
	// 1 edge bucket + 3 nodes, 2 allowed: the oldest nodes go first.
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: failing{}, Edges: g, MaxBuffered: 2, Registerer: reg})
	require.NoError(t, err)
	require.Error(t, p.Flush(context.Background()))
	require.True(t, p.Full())
	require.Equal(t, 2.0, rowsMetric(t, reg, "node", "dropped"))
	require.Equal(t, 0.0, rowsMetric(t, reg, "edge", "dropped"))
	require.Equal(t, 2.0, bufferedRows(t, reg))
}

func rowsMetric(t *testing.T, reg *prometheus.Registry, kind, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "cartograph_storage_rows_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["kind"] == kind && l["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no rows{kind=%q,outcome=%q}", kind, outcome)
	return 0
}

func bufferedRows(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "cartograph_storage_buffered_rows" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no cartograph_storage_buffered_rows")
	return 0
}
