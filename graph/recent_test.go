package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEdgeRecent: Edge.Recent counts the calls and retries of the newest
// RecentBuckets buckets of the window, in live snapshots and in snapshots
// rebuilt from stored buckets alike, so a detector can see a change seconds old that the
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
	require.Equal(t, &Recent{Requests: 40, Retries: 20}, e.Recent, "the current bucket and the two before: from 45s on")
	require.InDelta(t, 14, s.RecentSeconds, 1e-9)

	buckets, _ := g.ClosedBuckets(time.Time{})
	now = t0.Add(60 * time.Second)
	stored := SnapshotOf(now, time.Minute, buckets)
	require.Len(t, stored.Edges, 1)
	require.Equal(t, &Recent{Requests: 20, Retries: 10}, stored.Edges[0].Recent, "stored closed buckets from 50s on")
	require.InDelta(t, 10, stored.RecentSeconds, 1e-9)
}

// TestRecentCoversTheNewestBuckets: Edge.Recent sums the current bucket and
// the two before it, unanswered calls counted when their pair TTL ran out;
// the window keeps everything.
func TestRecentCoversTheNewestBuckets(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{Window: time.Minute, Bucket: 5 * time.Second, PairTTL: 10 * time.Second})
	peer := NodeKey{Kind: NodeExternal, Name: "stock:8080"}
	call := func(tr byte, answered bool, dur int64) []Span {
		c := client(tid(tr), sid(1), sid(9), "orders", 0, dur)
		c.Peer = peer
		if !answered {
			c.Error = true
			return []Span{c}
		}
		return []Span{c, server(tid(tr), sid(2), sid(1), "stock", ms, dur-ms)}
	}
	consume := func(spans []Span) {
		t.Helper()
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
	}
	// 0s-15s: four answered calls, one every 5s.
	for i := range 4 {
		consume(call(byte(i+1), true, 20*ms))
		clk.advance(5 * time.Second)
	}
	// 20s: the callee stops answering; three calls fail in 1ms.
	for i := range 3 {
		consume(call(byte(i+10), false, ms))
	}
	clk.advance(5 * time.Second) // 25s: the failures are still pending
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, s, "service:orders->service:stock http")
	require.EqualValues(t, 4, e.Requests)
	require.Equal(t, &Recent{Requests: 1}, e.Recent, "at 25s, buckets 15s-30s: the answered call of 15s")
	require.InDelta(t, 10, s.RecentSeconds, 1e-9)

	clk.advance(6 * time.Second) // 31s: they expired at 30s
	s, err = g.Snapshot(0)
	require.NoError(t, err)
	e = edgeByID(t, s, "service:orders->service:stock http")
	require.EqualValues(t, 7, e.Requests)
	require.EqualValues(t, 3, e.Unanswered)
	require.NotNil(t, e.Recent)
	require.EqualValues(t, 3, e.Recent.Unanswered)
	require.EqualValues(t, 3, e.Recent.Errors)
	require.EqualValues(t, 3, e.Recent.Requests, "at 31s, buckets 20s-35s: the three failures, none answered")
	require.InDelta(t, 1, e.Recent.UnansweredLatency.P50, 0.02)
	require.InDelta(t, 11, s.RecentSeconds, 1e-9)

	clk.advance(20 * time.Second) // 51s: nothing new in 40-55s
	s, err = g.Snapshot(0)
	require.NoError(t, err)
	require.Nil(t, edgeByID(t, s, "service:orders->service:stock http").Recent)

	// Snapshots rebuilt from stored buckets carry them too, over the
	// newest three bucket widths before their instant.
	buckets, _ := g.ClosedBuckets(time.Time{})
	at := clk.now().Add(-16 * time.Second) // 35s
	s = SnapshotOf(at, time.Minute, buckets)
	require.InDelta(t, 10, s.RecentSeconds, 1e-9)
	e = edgeByID(t, s, "service:orders->service:stock http")
	require.EqualValues(t, 7, e.Requests)
	require.NotNil(t, e.Recent)
	require.Equal(t, Recent{Requests: 3, Errors: 3, Unanswered: 3}, Recent{Requests: e.Recent.Requests, Errors: e.Recent.Errors, Unanswered: e.Recent.Unanswered})
	require.InDelta(t, 1, e.Recent.UnansweredLatency.P50, 0.02)
	require.Nil(t, edgeByID(t, SnapshotOf(clk.now(), time.Minute, buckets), "service:orders->service:stock http").Recent, "nothing in 40s-51s")
	require.Zero(t, SnapshotOf(clk.now(), time.Minute, nil).RecentSeconds, "no bucket, no width: no recent figures")
}
