package traffic

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

func edge(t *testing.T, s *graph.Snapshot, id string) graph.Edge {
	t.Helper()
	for _, e := range s.Edges {
		if e.ID == id {
			return e
		}
	}
	require.Failf(t, "no edge", "%s", id)
	return graph.Edge{}
}

// TestSampled: the buckets written make the live graph, and its sampled
// edge is an estimate of about 1 in OneIn seen.
func TestSampled(t *testing.T) {
	start := time.Date(2026, 3, 1, 11, 59, 58, 0, time.UTC)
	run, err := Sampled(start, 3*time.Minute, 1)
	require.NoError(t, err)
	require.True(t, run.End.Equal(start.Truncate(Bucket).Add(3*time.Minute)))
	for _, b := range run.Buckets {
		require.False(t, b.Start.Before(run.Start), "bucket %v", b.Start)
		require.True(t, b.Start.Before(run.End), "bucket %v", b.Start)
	}
	stored := graph.SnapshotOfNodes(run.End, Window, run.Buckets, run.Nodes, nil)
	for _, c := range []struct {
		id        string
		estimated bool
	}{{SampledEdge, true}, {UnsampledEdge, false}} {
		t.Run(c.id, func(t *testing.T) {
			live, got := edge(t, run.Live, c.id), edge(t, stored, c.id)
			require.Equal(t, c.estimated, live.Estimated)
			require.Equal(t, live.Requests, got.Requests)
			require.Equal(t, live.Estimated, got.Estimated)
			require.Equal(t, live.SampleRatio, got.SampleRatio)
			if c.estimated {
				require.InDelta(t, 1.0/OneIn, *live.SampleRatio, 1e-9, "each kept span stands for OneIn calls")
				require.InDelta(t, 4*60, float64(live.Requests), 4*60*0.3, "about 4 calls/s estimated")
			} else {
				require.Nil(t, live.SampleRatio)
			}
		})
	}
}
