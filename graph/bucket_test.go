package graph

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shopSpans makes n request pairs a->b (with some errors and retries) and
// n messages a->orders->c, each trace distinct.
func shopSpans(n int, seed byte) []Span {
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	var out []Span
	for i := range n {
		tr := TraceID{seed, byte(i), byte(i >> 8)}
		c := client(tr, sid(1), sid(9), "a", 0, int64(10+i%7)*ms)
		c.Error, c.ResendCount = i%5 == 0, int64(i%4/3)
		out = append(out, c, server(tr, sid(2), sid(1), "b", ms, int64(5+i%11)*ms),
			Span{Trace: tr, ID: sid(3), Kind: SpanProducer, Service: "a", End: ms, Protocol: ProtocolKafka, Messaging: MessagingPublish, Destination: orders},
			Span{Trace: tr, ID: sid(4), Parent: sid(3), Kind: SpanConsumer, Service: "c", Start: int64(2+i%13) * ms, End: int64(20+i%3) * ms, Protocol: ProtocolKafka, Destination: orders, ConsumerGroup: "c"})
	}
	return out
}

func TestBucketsRoundTripAndMerge(t *testing.T) {
	opts := Options{Window: time.Minute, Bucket: 5 * time.Second}
	whole, clk, _ := newTestGraph(t, opts)
	// Two collectors, each with half the traces (split by trace id).
	halfA, clkA, _ := newTestGraph(t, opts)
	halfB, clkB, _ := newTestGraph(t, opts)
	for tick := range 6 {
		spans := shopSpans(40, byte(tick))
		rej, why := whole.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		var a, b []Span
		for _, s := range spans {
			if s.Trace[1]%2 == 0 {
				a = append(a, s)
			} else {
				b = append(b, s)
			}
		}
		_, _ = halfA.ConsumeSpans(a)
		_, _ = halfB.ConsumeSpans(b)
		for _, c := range []*clock{clk, clkA, clkB} {
			c.advance(5 * time.Second)
		}
	}
	want, err := whole.Snapshot(0)
	require.NoError(t, err)

	var stored []EdgeBucket
	for _, g := range []*Graph{halfA, halfB} {
		got, upTo := g.ClosedBuckets(time.Time{})
		require.NotEmpty(t, got)
		again, _ := g.ClosedBuckets(upTo)
		require.Empty(t, again, "each bucket is exported once")
		raw, err := json.Marshal(got)
		require.NoError(t, err)
		var back []EdgeBucket
		require.NoError(t, json.Unmarshal(raw, &back))
		stored = append(stored, back...)
	}
	merged := SnapshotOf(clk.now(), opts.Window+opts.Bucket, stored)
	require.Len(t, merged.Edges, len(want.Edges))
	for i, w := range want.Edges {
		m := merged.Edges[i]
		require.Equal(t, w.ID, m.ID)
		require.Equal(t, w.Requests, m.Requests, w.ID)
		require.Equal(t, w.Errors, m.Errors, w.ID)
		require.Equal(t, w.Retries, m.Retries, w.ID)
		for _, q := range [][2]*Quantiles{{w.ServerLatency, m.ServerLatency}, {w.ClientLatency, m.ClientLatency}, {w.Delay, m.Delay}} {
			require.Equal(t, q[0], q[1], "two halves' sketches merge to the whole's exactly: %s", w.ID)
		}
	}

	t.Run("restore after a restart", func(t *testing.T) {
		fresh, fclk, _ := newTestGraph(t, opts)
		fclk.t = clk.t
		require.Equal(t, len(stored), fresh.Restore(stored))
		got, err := fresh.Snapshot(0)
		require.NoError(t, err)
		require.Len(t, got.Edges, len(want.Edges))
		for i := range want.Edges {
			require.Equal(t, want.Edges[i].Requests, got.Edges[i].Requests)
			require.Equal(t, want.Edges[i].ServerLatency, got.Edges[i].ServerLatency)
		}
	})
}

func TestClosedNodes(t *testing.T) {
	opts := Options{Window: time.Minute, Bucket: 5 * time.Second}
	g, clk, _ := newTestGraph(t, opts)
	lonely := Span{Trace: tid(1), ID: sid(1), Kind: SpanInternal, Service: "batch", Namespace: "jobs", End: ms}
	rej, why := g.ConsumeSpans([]Span{lonely})
	require.Zero(t, rej, why)
	require.Empty(t, g.ClosedNodes(time.Time{}), "the current bucket is not closed")
	b0 := clk.now().Truncate(5 * time.Second)
	clk.advance(5 * time.Second)
	rej, why = g.ConsumeSpans(shopSpans(3, 1))
	require.Zero(t, rej, why)
	clk.advance(5 * time.Second)

	got := g.ClosedNodes(time.Time{})
	_, upTo := g.ClosedBuckets(time.Time{})
	require.NotEmpty(t, got)
	batch := NodeKey{Kind: NodeService, Group: "jobs", Name: "batch"}
	require.Equal(t, NodeSeen{Start: b0.UTC(), Width: 5 * time.Second, Key: batch}, got[0], "recorded in the bucket it was last seen in")
	keys := map[NodeKey]time.Time{}
	for _, n := range got {
		require.False(t, n.Start.After(upTo))
		keys[n.Key] = n.Start
	}
	require.Equal(t, b0.Add(5*time.Second).UTC(), keys[NodeKey{Kind: NodeService, Name: "a"}])
	require.Contains(t, keys, NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"})
	require.Empty(t, g.ClosedNodes(upTo), "each bucket is exported once")

	// Seen again later: recorded again, in its new last bucket.
	_, _ = g.ConsumeSpans([]Span{lonely})
	clk.advance(5 * time.Second)
	again := g.ClosedNodes(upTo)
	require.Equal(t, []NodeSeen{{Start: b0.Add(10 * time.Second).UTC(), Width: 5 * time.Second, Key: batch}}, again)
}

func TestSnapshotOfNodesIsolated(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := NodeKey{Kind: NodeService, Name: "a"}, NodeKey{Kind: NodeService, Name: "b"}
	batch := NodeKey{Kind: NodeService, Group: "jobs", Name: "batch"}
	bus := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "idle"}
	buckets := []EdgeBucket{{Start: t0, Width: 5 * time.Second, Source: a, Target: b, Kind: EdgeSync, Protocol: ProtocolHTTP, Requests: 4}}
	nodes := []NodeSeen{
		{Start: t0, Width: 5 * time.Second, Key: a},
		{Start: t0.Add(5 * time.Second), Width: 5 * time.Second, Key: batch},
		{Start: t0.Add(10 * time.Second), Width: 5 * time.Second, Key: batch}, // twice: one node
		{Start: t0.Add(-time.Hour), Width: 5 * time.Second, Key: bus},         // outside the window
	}
	at, window := t0.Add(time.Minute), time.Minute
	s := SnapshotOfNodes(at, window, buckets, nodes, nil)
	var ids []string
	for _, n := range s.Nodes {
		ids = append(ids, n.ID)
	}
	require.Equal(t, []string{"service:a", "service:b", "service:jobs/batch"}, ids)
	nd := s.Nodes[2]
	require.Equal(t, NodeService, nd.Kind)
	require.Equal(t, "jobs", nd.Namespace)
	require.Equal(t, "batch", nd.Name)
	require.Len(t, s.Edges, 1)
	require.Len(t, SnapshotOf(at, window, buckets).Nodes, 2, "SnapshotOf knows only the edges' nodes")
	require.Len(t, SnapshotOfWithLag(at, window, buckets, nil).Nodes, 2)
}

// TestClosedEntryBuckets: the buckets of the edges from the client node,
// and only they, as ClosedBuckets has them.
func TestClosedEntryBuckets(t *testing.T) {
	opts := Options{Window: time.Minute, Bucket: 5 * time.Second}
	g, clk, _ := newTestGraph(t, opts)
	for tick := range 3 {
		var spans []Span
		for i := range 10 {
			tr := TraceID{9, byte(tick), byte(i)}
			root := server(tr, sid(1), SpanID{}, "gw", 0, 20*ms)
			root.Error = i == 0
			spans = append(spans, root, client(tr, sid(2), sid(1), "gw", ms, 10*ms), server(tr, sid(3), sid(2), "api", 2*ms, 8*ms))
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		clk.advance(5 * time.Second)
	}
	all, upTo := g.ClosedBuckets(time.Time{})
	var want []EdgeBucket
	for _, b := range all {
		if b.Source.Kind == NodeClient {
			want = append(want, b)
		}
	}
	require.NotEmpty(t, want, "root server spans are calls from the client node")
	require.Less(t, len(want), len(all), "gw -> api is no entry edge")
	got, upToEntries := g.ClosedEntryBuckets(time.Time{})
	require.Equal(t, want, got)
	require.Equal(t, upTo, upToEntries)
	var errs uint64
	for _, b := range got {
		errs += b.Errors
	}
	require.Equal(t, uint64(3), errs, "one failing root a tick")
	again, _ := g.ClosedEntryBuckets(upToEntries)
	require.Empty(t, again, "each bucket is handed on once")
}
