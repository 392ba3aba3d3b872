package graph

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// uniqueTrace returns a distinct trace id per i.
func uniqueTrace(i int) TraceID {
	var t TraceID
	binary.BigEndian.PutUint64(t[8:], uint64(i)+1)
	t[0] = 0xaa
	return t
}

func uniqueSpan(i int) SpanID {
	var s SpanID
	binary.BigEndian.PutUint64(s[:], uint64(i)+1)
	return s
}

// sumRequests adds up the requests of the edges into target.
func sumRequests(s *Snapshot) (total uint64) {
	for _, e := range s.Edges {
		total += e.Requests
	}
	return total
}

// TestCardinalityAttackFoldsIntoOverflow: a sender that invents a new
// name on every span (service, destination, peer, consumer group) cannot
// grow the graph past its limits: the excess lands on one overflow node per
// kind, the edges to it carry the traffic, and the folding is counted.
func TestCardinalityAttackFoldsIntoOverflow(t *testing.T) {
	const n, maxNodes = 2000, 20
	cases := []struct {
		name     string
		span     func(i int) Span
		overflow string // node id that must appear
		label    string // overflow counter label
		display  string
	}{
		{
			name: "service names",
			span: func(i int) Span {
				return server(uniqueTrace(i), uniqueSpan(i), SpanID{}, fmt.Sprintf("svc-%d", i), 0, ms)
			},
			overflow: "service:__overflow__", label: "service", display: "(other services)",
		},
		{
			name: "topic names",
			span: func(i int) Span {
				return Span{Trace: uniqueTrace(i), ID: uniqueSpan(i), Kind: SpanProducer, Service: "shop", Start: 0, End: ms,
					Protocol: ProtocolKafka, Messaging: MessagingPublish,
					Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: fmt.Sprintf("t-%d", i)}}
			},
			overflow: "topic:__overflow__", label: "topic", display: "(other topics)",
		},
		{
			name: "queue names",
			span: func(i int) Span {
				return Span{Trace: uniqueTrace(i), ID: uniqueSpan(i), Kind: SpanConsumer, Service: "worker", Start: 0, End: ms,
					Protocol: ProtocolRabbitMQ, Messaging: MessagingProcess, ConsumerGroup: fmt.Sprintf("g-%d", i),
					Destination: NodeKey{Kind: NodeQueue, Group: "rabbitmq", Name: fmt.Sprintf("q-%d", i)}}
			},
			overflow: "queue:__overflow__", label: "queue", display: "(other queues)",
		},
		{
			name: "database peers",
			span: func(i int) Span {
				c := client(uniqueTrace(i), uniqueSpan(i), uniqueSpan(n+i), "api", 0, ms)
				c.Protocol, c.Peer = ProtocolDB, NodeKey{Kind: NodeDatabase, Group: "postgresql", Name: fmt.Sprintf("db-%d", i)}
				return c
			},
			overflow: "database:__overflow__", label: "database", display: "(other databases)",
		},
		{
			name: "external peers",
			span: func(i int) Span {
				c := client(uniqueTrace(i), uniqueSpan(i), uniqueSpan(n+i), "api", 0, ms)
				c.Peer = NodeKey{Kind: NodeExternal, Name: fmt.Sprintf("host-%d.example:443", i)}
				return c
			},
			overflow: "external:__overflow__", label: "external", display: "(other externals)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, reg := newTestGraph(t, Options{MaxNodes: maxNodes, MaxEdges: 10_000, PairTTL: time.Second})
			for i := 0; i < n; i += 100 {
				batch := make([]Span, 0, 100)
				for j := i; j < i+100; j++ {
					batch = append(batch, tc.span(j))
				}
				rej, why := g.ConsumeSpans(batch)
				require.Zero(t, rej, why)
			}
			clk.advance(2 * time.Second) // unanswered calls become edges to their peers
			g.Expire()
			s, err := g.Snapshot(0)
			require.NoError(t, err)

			require.LessOrEqual(t, len(g.nodeIx), maxNodes+int(NodeClient), "nodes: the limit plus one overflow node per kind at most")
			require.LessOrEqual(t, len(g.peerIx), maxNodes+int(NodeClient))
			nd, ok := s.Node(tc.overflow)
			require.True(t, ok, "overflow node %s in the snapshot", tc.overflow)
			require.Equal(t, tc.display, nd.Name)
			require.EqualValues(t, n, sumRequests(s), "every span still counts, on its own edge or on the overflow node's")
			var onOverflow uint64
			for _, e := range s.Edges {
				if e.Source == tc.overflow || e.Target == tc.overflow {
					onOverflow += e.Requests
				}
			}
			require.Greater(t, onOverflow, uint64(n-maxNodes-10))
			require.Positive(t, testutil.ToFloat64(g.overflow.WithLabelValues(tc.label)))
			got, err := testutil.GatherAndCount(reg, "cartograph_graph_overflow_total", "cartograph_graph_overflow_nodes")
			require.NoError(t, err)
			require.Positive(t, got)
			require.GreaterOrEqual(t, g.nOverflow.Load(), int64(1))
		})
	}
}

// TestEdgeLimitFoldsIntoOverflowEdge: beyond the edge limit a new edge is
// recorded between the overflow nodes of its endpoints' kinds; existing
// edges keep counting on their own.
func TestEdgeLimitFoldsIntoOverflowEdge(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{MaxEdges: 5})
	var spans []Span
	for i := range 50 {
		// svc-i calls b: a new edge per caller.
		c := client(uniqueTrace(i), uniqueSpan(2*i), uniqueSpan(1000+i), fmt.Sprintf("svc-%d", i), 0, 2*ms)
		spans = append(spans, c, server(uniqueTrace(i), uniqueSpan(2*i+1), uniqueSpan(2*i), "b", 0, ms))
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	require.LessOrEqual(t, len(g.edgeIx), 6)
	e := edgeByID(t, s, "service:__overflow__->service:__overflow__ http")
	require.EqualValues(t, 45, e.Requests)
	require.EqualValues(t, 50, sumRequests(s))
	require.EqualValues(t, 45, testutil.ToFloat64(g.overflow.WithLabelValues("edge")))

	// An edge that exists keeps its own traffic at the limit.
	rej, _ = g.ConsumeSpans([]Span{
		client(uniqueTrace(0), uniqueSpan(9000), uniqueSpan(1000), "svc-0", 0, 2*ms),
		server(uniqueTrace(0), uniqueSpan(9001), uniqueSpan(9000), "b", 0, ms)})
	require.Zero(t, rej)
	s, err = g.Snapshot(0)
	require.NoError(t, err)
	require.EqualValues(t, 2, edgeByID(t, s, "service:svc-0->service:b http").Requests)
}

// TestOverflowPeerLearnsNoAlias: calls to the overflow peer answered by one
// service must not make later unanswered calls to other overflowed peers
// land on that service.
func TestOverflowPeerLearnsNoAlias(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{MaxNodes: 3, PairTTL: time.Second})
	ext := func(i int, name string) Span {
		c := client(uniqueTrace(i), uniqueSpan(i), uniqueSpan(500+i), "api", 0, ms)
		c.Peer = NodeKey{Kind: NodeExternal, Name: name}
		return c
	}
	var spans []Span
	for i := range 5 {
		spans = append(spans, ext(i, fmt.Sprintf("h%d", i)))
	}
	// The last one is answered by a service.
	spans = append(spans, server(uniqueTrace(4), uniqueSpan(100), uniqueSpan(4), "answering", 0, ms))
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	clk.advance(2 * time.Second)
	g.Expire()
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	a := edgeByID(t, s, "service:api->service:answering http")
	require.EqualValues(t, 1, a.Requests, "only the answered call: an overflow peer stands for many and aliases to none")
	require.Zero(t, a.Unanswered)
	require.EqualValues(t, 5, sumRequests(s), "5 calls, one of them answered")
}

// fixedPaths is a PathSource returning the same paths every time.
type fixedPaths []EntryPath

func (fixedPaths) ObserveSpans([]Span)               {}
func (f fixedPaths) Paths(time.Duration) []EntryPath { return append([]EntryPath(nil), f...) }

// TestPathsNameOnlySnapshotNodes: critical paths through services the
// graph folded into the overflow node are charged to that node.
func TestPathsNameOnlySnapshotNodes(t *testing.T) {
	paths := fixedPaths{{Node: "service:svc-7", Operation: "GET /", Traces: 3, Shares: []PathShare{
		{Node: "service:svc-7", SelfMs: 1, Share: 0.1},
		{Node: "service:a", SelfMs: 5, Share: 0.5},
		{Node: "service:svc-8", SelfMs: 4, Share: 0.4},
		{Node: "database:pg/orders", SelfMs: 0, Share: 0},
	}}}
	g, _, _ := newTestGraph(t, Options{MaxNodes: 1, Paths: paths})
	var spans []Span
	for i, svc := range []string{"a", "svc-7", "svc-8"} {
		spans = append(spans, server(uniqueTrace(i), uniqueSpan(i), SpanID{}, svc, 0, ms))
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	require.Len(t, s.Paths, 1)
	p := s.Paths[0]
	require.Equal(t, "service:__overflow__", p.Node)
	require.Equal(t, []PathShare{
		{Node: "service:__overflow__", SelfMs: 5, Share: 0.5},
		{Node: "service:a", SelfMs: 5, Share: 0.5},
		{Node: "database:pg/orders", SelfMs: 0, Share: 0},
	}, p.Shares, "svc-7 and svc-8 are one node; a node of a kind without overflow stays")
}
