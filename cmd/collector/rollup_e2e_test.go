package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

// TestE2ERollupWindows: with a live window long enough that restoring it
// reads a range the embedded store serves from its minute rollup, a start
// still restores the raw buckets (of the graph's own width: rollup rows
// would be skipped), and a 1-hour history read (from the rollup) counts the
// same calls.
func TestE2ERollupWindows(t *testing.T) {
	dir := t.TempDir()
	// History written by an earlier run: a -> b, one call a second for the
	// 3 minutes ending a minute ago (whole minutes the rollup holds).
	st, err := embedded.Open(embedded.Options{Dir: dir, RetentionInterval: -1})
	require.NoError(t, err)
	end := time.Now().Truncate(time.Second).Add(-time.Minute)
	var buckets []graph.EdgeBucket
	for at := end.Add(-3 * time.Minute); at.Before(end); at = at.Add(time.Second) {
		buckets = append(buckets, graph.EdgeBucket{Start: at, Width: time.Second,
			Source: graph.NodeKey{Kind: graph.NodeService, Name: "a"}, Target: graph.NodeKey{Kind: graph.NodeService, Name: "b"},
			Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 1})
	}
	a := st.Appender()
	require.NoError(t, a.AppendEdges(buckets))
	require.NoError(t, a.Commit(context.Background()))
	require.NoError(t, st.Close())

	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	col, _ := runCollector(t, ctx, "--data-dir="+dir, "--bucket=1s", "--flush-interval=200ms", "--window=15m")
	require.Equal(t, uint64(180), edgeRequests(t, col, "/api/v1/graph"), "the 15-minute live window is back after the restart")
	at := time.Now().UTC().Format(time.RFC3339Nano)
	require.Equal(t, uint64(180), edgeRequests(t, col, "/api/v1/graph?at="+at+"&window=1h"), "an hour of history, from the rollup")
}
