package ui

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// loadgenSnapshot returns the graph of the load generator's system of the
// given number of services (simulate/scenario, as cmd/loadgen sends it),
// built the collector's way: its traces through semconv into a graph,
// until every node of the system has been seen.
func loadgenSnapshot(tb testing.TB, services int) *graph.Snapshot {
	tb.Helper()
	clk := now.Add(-time.Minute)
	g, err := graph.New(graph.Options{Now: func() time.Time { return clk }, PairTTL: time.Second, MaxNodes: 4 * services, MaxEdges: 16 * services})
	require.NoError(tb, err)
	p, err := semconv.NewPipeline(semconv.Options{Sink: g, NodeAttributes: semconv.DefaultNodeAttributes()})
	require.NoError(tb, err)
	gen, err := scenario.New(scenario.Options{Services: services, Seed: 7})
	require.NoError(tb, err)
	var snap *graph.Snapshot
	last, still := 0, 0
	for still < 3 {
		for range 10 {
			clk = clk.Add(100 * time.Millisecond)
			require.NoError(tb, p.ConsumeTraces(context.Background(), gen.Traces(clk, 10+services/10)))
		}
		clk = clk.Add(2 * time.Second)
		g.Expire()
		snap, err = g.Snapshot(0)
		require.NoError(tb, err)
		if n := len(snap.Nodes); n > last {
			last, still = n, 0
		} else {
			still++
		}
	}
	return snap
}
