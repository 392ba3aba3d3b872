package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEdgeRecent: Edge.Recent counts the calls of the newest RecentWindow
// of the window, in live snapshots and in snapshots rebuilt from stored
// buckets alike, so a detector can see a change seconds old that the
// window's minute dilutes.
func TestEdgeRecent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	g, err := New(Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	call := func(n, retries int) {
		var spans []Span
		for i := range n {
			k := uint64(now.UnixNano()) + uint64(i)
			tr := TraceID{byte(k >> 56), byte(k >> 48), byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
			c := Span{Trace: tr, ID: SpanID{1}, Parent: SpanID{9}, Kind: SpanClient, Service: "a", End: 1e6, Protocol: ProtocolHTTP}
			if i < retries {
				c.ResendCount = 1
			}
			spans = append(spans, c, Span{Trace: tr, ID: SpanID{2}, Parent: SpanID{1}, Kind: SpanServer, Service: "b", End: 1e6, Protocol: ProtocolHTTP})
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
	}
	call(100, 0) // at 0s: in the window, not recent at 60s
	now = t0.Add(30 * time.Second)
	call(100, 0)
	now = t0.Add(47 * time.Second)
	call(20, 10) // recent at 60s
	now = t0.Add(52 * time.Second)
	call(20, 10)
	now = t0.Add(59 * time.Second)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	require.Len(t, s.Edges, 1)
	e := s.Edges[0]
	require.Equal(t, uint64(240), e.Requests)
	require.Equal(t, uint64(20), e.Retries)
	require.Equal(t, &Counts{Requests: 40, Retries: 20, Seconds: 19}, e.Recent, "whole buckets reaching back at least 15s: from 40s on")

	buckets, _ := g.ClosedBuckets(time.Time{})
	now = t0.Add(60 * time.Second)
	stored := SnapshotOf(now, time.Minute, buckets)
	require.Len(t, stored.Edges, 1)
	require.Equal(t, &Counts{Requests: 40, Retries: 20, Seconds: 15}, stored.Edges[0].Recent, "stored buckets from 45s on")
}
