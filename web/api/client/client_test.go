package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestGraphKeepsEstimates: an edge of sampled traffic decodes as the
// estimate the collector served, with its share of calls seen, in the
// graph and in a diff; an unsampled one stays plain.
func TestGraphKeepsEstimates(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	web, cron, api := graph.NodeKey{Kind: graph.NodeService, Name: "web"}, graph.NodeKey{Kind: graph.NodeService, Name: "cron"}, graph.NodeKey{Kind: graph.NodeService, Name: "api"}
	snap := graph.SnapshotOf(at, time.Minute, []graph.EdgeBucket{
		{Start: at.Add(-30 * time.Second), Width: 5 * time.Second, Source: web, Target: api, Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP,
			Requests: 240, Errors: 4, Seen: 60, Sampled: 60},
		{Start: at.Add(-30 * time.Second), Width: 5 * time.Second, Source: cron, Target: api, Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP,
			Requests: 60, Seen: 60},
	})
	diff := graph.DiffSnapshots(&graph.Snapshot{}, snap, graph.DiffOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v any = snap
		if r.URL.Path == "/api/v1/graph/diff" {
			v = diff
		}
		require.NoError(t, json.NewEncoder(w).Encode(v))
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL})
	require.NoError(t, err)

	got, err := c.Graph(context.Background(), time.Minute, at)
	require.NoError(t, err)
	gotDiff, err := c.Diff(context.Background(), at.Add(-time.Hour), at, time.Minute)
	require.NoError(t, err)
	for name, edges := range map[string][]graph.Edge{"graph": got.Edges, "diff": gotDiff.AddedEdges} {
		t.Run(name, func(t *testing.T) {
			require.Len(t, edges, 2)
			byID := map[string]graph.Edge{}
			for _, e := range edges {
				byID[e.ID] = e
			}
			sampled, plain := byID["service:web->service:api http"], byID["service:cron->service:api http"]
			require.True(t, sampled.Estimated)
			require.NotNil(t, sampled.SampleRatio)
			require.InDelta(t, 0.25, *sampled.SampleRatio, 1e-9)
			require.EqualValues(t, 240, sampled.Requests)
			require.False(t, plain.Estimated)
			require.Nil(t, plain.SampleRatio)
		})
	}
}
