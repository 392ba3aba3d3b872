package graph

import (
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestGraph(t *testing.T, o Options) (*Graph, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	o.Now, o.Registerer = c.now, reg
	g, err := New(o)
	require.NoError(t, err)
	return g, c, reg
}

func tid(b byte) TraceID { return TraceID{b, 1} }
func sid(b byte) SpanID  { return SpanID{b, 2} }

const ms = int64(time.Millisecond)

func client(tr TraceID, id, parent SpanID, svc string, start, dur int64) Span {
	return Span{Trace: tr, ID: id, Parent: parent, Kind: SpanClient, Service: svc, Start: start, End: start + dur, Protocol: ProtocolHTTP, Operation: "GET /x"}
}

func server(tr TraceID, id, parent SpanID, svc string, start, dur int64) Span {
	return Span{Trace: tr, ID: id, Parent: parent, Kind: SpanServer, Service: svc, Start: start, End: start + dur, Protocol: ProtocolHTTP}
}

func edgeByID(t *testing.T, s *Snapshot, id string) Edge {
	t.Helper()
	for _, e := range s.Edges {
		if e.ID == id {
			return e
		}
	}
	ids := []string{}
	for _, e := range s.Edges {
		ids = append(ids, e.ID)
	}
	t.Fatalf("no edge %q in %v", id, ids)
	return Edge{}
}

func TestPairingEitherOrder(t *testing.T) {
	for _, order := range []string{"client-first", "server-first"} {
		t.Run(order, func(t *testing.T) {
			g, _, _ := newTestGraph(t, Options{})
			c := client(tid(1), sid(1), SpanID{}, "a", 0, 30*ms)
			s := server(tid(1), sid(2), sid(1), "b", 5*ms, 20*ms)
			first, second := c, s
			if order == "server-first" {
				first, second = s, c
			}
			rej, _ := g.ConsumeSpans([]Span{first})
			require.Zero(t, rej)
			require.EqualValues(t, 1, g.nPending.Load())
			rej, _ = g.ConsumeSpans([]Span{second})
			require.Zero(t, rej)
			require.EqualValues(t, 0, g.nPending.Load(), "a pair leaves nothing pending")
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			e := edgeByID(t, snap, "service:a->service:b http")
			require.EqualValues(t, 1, e.Requests)
			require.InDelta(t, 20, e.ServerLatency.P50, 0.5)
			require.InDelta(t, 30, e.ClientLatency.P50, 0.5)
			require.Equal(t, e.ServerLatency, e.Latency)
		})
	}
}

func TestExpiryInfersVirtualNodes(t *testing.T) {
	g, clk, reg := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	db := client(tid(1), sid(1), sid(9), "a", 0, 3*ms)
	db.Protocol, db.Peer = ProtocolDB, NodeKey{Kind: NodeDatabase, Group: "postgresql", Name: "orders"}
	ext := client(tid(1), sid(2), sid(9), "a", 0, 100*ms)
	ext.Peer = NodeKey{Kind: NodeExternal, Name: "api.stripe.com:443"}
	anon := client(tid(1), sid(3), sid(9), "a", 0, 1*ms) // names no peer
	orphan := server(tid(2), sid(4), sid(5), "b", 0, 7*ms)
	root := server(tid(3), sid(6), SpanID{}, "c", 0, 9*ms)
	rej, _ := g.ConsumeSpans([]Span{db, ext, anon, orphan, root})
	require.Zero(t, rej)

	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	require.Len(t, snap.Edges, 2, "before expiry, only the root server span and the database call (a database has no span to wait for) are edges")
	edgeByID(t, snap, "client:client->service:c http")
	edgeByID(t, snap, "service:a->database:postgresql/orders db")

	clk.advance(11 * time.Second)
	g.Expire()
	snap, err = g.Snapshot(0)
	require.NoError(t, err)
	d := edgeByID(t, snap, "service:a->database:postgresql/orders db")
	require.EqualValues(t, 1, d.Requests)
	require.Nil(t, d.ServerLatency)
	require.InDelta(t, 3, d.Latency.P50, 0.1)
	edgeByID(t, snap, "service:a->external:api.stripe.com:443 http")
	e := edgeByID(t, snap, "client:client->service:b http")
	require.EqualValues(t, 1, e.Requests)
	require.Len(t, snap.Edges, 4)
	require.EqualValues(t, 1, testutil.ToFloat64(g.m.expired.WithLabelValues("client_no_peer")))
	require.EqualValues(t, 1, testutil.ToFloat64(g.m.expired.WithLabelValues("client")), "the external call")
	require.EqualValues(t, 1, testutil.ToFloat64(g.m.expired.WithLabelValues("server")))
	n, err := testutil.GatherAndCount(reg, "cartograph_graph_half_edges")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestAsyncByParentAndLinks(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{})
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	var spans []Span
	// Two producers in two traces; a batch consumer links to both and
	// arrives first; a second group's consumer is a child of producer 1.
	batch := Span{Trace: tid(9), ID: sid(9), Kind: SpanConsumer, Service: "billing", Start: 50 * ms, End: 60 * ms,
		Protocol: ProtocolKafka, Messaging: MessagingProcess, Destination: orders, ConsumerGroup: "billing",
		Links: []SpanRef{{Trace: tid(1), Span: sid(1)}, {Trace: tid(2), Span: sid(2)}}}
	spans = append(spans, batch)
	for i, tr := range []TraceID{tid(1), tid(2)} {
		spans = append(spans, Span{Trace: tr, ID: sid(byte(i + 1)), Kind: SpanProducer, Service: "shop", Start: 0, End: 10 * ms,
			Protocol: ProtocolKafka, Messaging: MessagingPublish, Destination: orders})
	}
	spans = append(spans, Span{Trace: tid(1), ID: sid(7), Parent: sid(1), Kind: SpanConsumer, Service: "mailer", Start: 30 * ms, End: 31 * ms,
		Protocol: ProtocolKafka, Destination: orders, ConsumerGroup: "mailer"})
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)

	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	p := edgeByID(t, snap, "service:shop->topic:kafka/orders kafka")
	require.Equal(t, EdgeAsync, p.Kind)
	require.EqualValues(t, 2, p.Requests)
	b := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing")
	require.EqualValues(t, 2, b.Requests, "a batch of two linked messages")
	require.EqualValues(t, 2, b.Stats.Delay.GetCount())
	require.InDelta(t, 40, b.Delay.P50, 0.5)
	m := edgeByID(t, snap, "topic:kafka/orders->service:mailer kafka @mailer")
	require.EqualValues(t, 1, m.Requests)
	require.InDelta(t, 20, m.Delay.P50, 0.3)
}

func TestRetriesRecognisedInAnyOrder(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{})
	fail := client(tid(1), sid(1), sid(9), "a", 0, 10*ms)
	fail.Error = true
	retry := client(tid(1), sid(2), sid(9), "a", 20*ms, 10*ms)
	resent := client(tid(2), sid(3), sid(9), "a", 0, 10*ms)
	resent.ResendCount = 1
	other := client(tid(1), sid(4), sid(9), "a", 20*ms, 10*ms) // same parent, other operation
	other.Operation = "GET /y"
	// The retry arrives before the failure it repeats.
	rej, _ := g.ConsumeSpans([]Span{retry, other, resent, fail,
		server(tid(1), sid(11), sid(1), "b", 1*ms, 5*ms), server(tid(1), sid(12), sid(2), "b", 21*ms, 5*ms),
		server(tid(2), sid(13), sid(3), "b", 1*ms, 5*ms), server(tid(1), sid(14), sid(4), "b", 21*ms, 5*ms)})
	require.Zero(t, rej)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "service:a->service:b http")
	require.EqualValues(t, 4, e.Requests)
	require.EqualValues(t, 2, e.Retries)
	require.EqualValues(t, 1, e.Errors)
	require.InDelta(t, 0.5, e.RetryRatio, 1e-9)
}

func TestBoundsRefuseAndCount(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		g, _, _ := newTestGraph(t, Options{MaxPending: 2})
		rej, why := g.ConsumeSpans([]Span{
			client(tid(1), sid(1), sid(9), "a", 0, ms), client(tid(1), sid(2), sid(9), "a", 0, ms), client(tid(1), sid(3), sid(9), "a", 0, ms)})
		require.Equal(t, 1, rej)
		require.Equal(t, "half-edge store full", why)
		require.EqualValues(t, 1, testutil.ToFloat64(g.m.refused.WithLabelValues("pending_full")))
	})
	t.Run("nodes", func(t *testing.T) {
		g, _, _ := newTestGraph(t, Options{MaxNodes: 2})
		rej, why := g.ConsumeSpans([]Span{
			server(tid(1), sid(1), SpanID{}, "a", 0, ms), server(tid(1), sid(2), SpanID{}, "b", 0, ms), server(tid(1), sid(3), SpanID{}, "c", 0, ms)})
		require.Zero(t, rej, why)
		require.EqualValues(t, 1, testutil.ToFloat64(g.overflow.WithLabelValues("service")), "a, b; then c folds into the overflow node (the client node is no service)")
	})
	t.Run("re-sent spans", func(t *testing.T) {
		g, _, _ := newTestGraph(t, Options{})
		c := client(tid(1), sid(1), SpanID{}, "a", 0, ms)
		sv := server(tid(1), sid(2), sid(1), "b", 0, ms)
		rej, why := g.ConsumeSpans([]Span{c, c, sv})
		require.Zero(t, rej, why)
		rej, why = g.ConsumeSpans([]Span{sv, c})
		require.Zero(t, rej, why, "an exporter re-sending a batch is not refused")
		require.EqualValues(t, 3, testutil.ToFloat64(g.m.dropped.WithLabelValues("resent_span")))
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		require.EqualValues(t, 1, edgeByID(t, snap, "service:a->service:b http").Requests, "counted once")
	})
	t.Run("duplicate span ids", func(t *testing.T) {
		g, _, _ := newTestGraph(t, Options{})
		rej, why := g.ConsumeSpans([]Span{client(tid(1), sid(1), SpanID{}, "a", 0, ms), client(tid(1), sid(1), SpanID{}, "b", 0, ms)})
		require.Equal(t, 1, rej)
		require.Equal(t, "duplicate span id", why)
	})
}

func TestWindowSlides(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{Window: time.Minute, Bucket: 5 * time.Second})
	for i := range 10 {
		rej, _ := g.ConsumeSpans([]Span{server(tid(byte(i)), sid(1), SpanID{}, "a", 0, ms)})
		require.Zero(t, rej)
	}
	clk.advance(30 * time.Second)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "client:client->service:a http")
	require.EqualValues(t, 10, e.Requests)
	require.InDelta(t, 10.0/30, e.RatePerS, 0.01, "rate over the time actually covered since start")

	snap, err = g.Snapshot(20 * time.Second)
	require.NoError(t, err)
	require.Empty(t, snap.Edges, "a 20s window no longer holds them")
	require.Empty(t, snap.Nodes)

	clk.advance(40 * time.Second)
	snap, err = g.Snapshot(0)
	require.NoError(t, err)
	require.Empty(t, snap.Edges, "70s later the minute window has slid past them")

	_, err = g.Snapshot(2 * time.Minute)
	require.ErrorIs(t, err, ErrWindowTooLong)
}

func TestNodeIDsEscape(t *testing.T) {
	a := NodeKey{Kind: NodeService, Group: "a", Name: "b"}.ID()
	b := NodeKey{Kind: NodeService, Name: "a/b"}.ID()
	require.NotEqual(t, a, b)
	require.Equal(t, "service:a/b", a)
	require.Equal(t, "service:a%2Fb", b)
}

func TestKindsRejectUnknownText(t *testing.T) {
	var k NodeKind
	require.NoError(t, k.UnmarshalText([]byte("topic")))
	require.Equal(t, NodeTopic, k)
	require.Error(t, k.UnmarshalText([]byte("galaxy")))
	var p Protocol
	require.Error(t, p.UnmarshalText([]byte("smtp")))
	var e EdgeKind
	require.Error(t, e.UnmarshalText([]byte("maybe")))
}

func TestReceivePollIsNotAMessage(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{})
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	spans := []Span{{Trace: tid(9), ID: sid(9), Kind: SpanClient, Service: "worker", Start: 0, End: 15 * ms,
		Protocol: ProtocolKafka, Messaging: MessagingReceive, Destination: orders, ConsumerGroup: "worker"}}
	for i := range 3 {
		tr := tid(byte(i + 1))
		spans = append(spans,
			Span{Trace: tr, ID: sid(1), Kind: SpanProducer, Service: "shop", End: ms, Protocol: ProtocolKafka, Messaging: MessagingPublish, Destination: orders},
			Span{Trace: tid(9), ID: sid(byte(10 + i)), Parent: sid(9), Kind: SpanConsumer, Service: "worker", Start: 16 * ms, End: 17 * ms,
				Protocol: ProtocolKafka, Messaging: MessagingProcess, Destination: orders, ConsumerGroup: "worker",
				Links: []SpanRef{{Trace: tr, Span: sid(1)}}})
	}
	rej, why := g.ConsumeSpans(spans)
	require.Zero(t, rej, why)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "topic:kafka/orders->service:worker kafka @worker")
	require.EqualValues(t, 3, e.Requests, "three messages, not three plus the poll")
	require.InDelta(t, 1, e.ServerLatency.P99, 0.05, "the poll's 15ms is not a message's processing time")
}

func TestUnansweredCallsLandOnTheKnownCallee(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	peer := NodeKey{Kind: NodeExternal, Name: "stock:8080"}
	ok := client(tid(1), sid(1), sid(9), "orders", 0, 20*ms)
	ok.Peer = peer
	rej, _ := g.ConsumeSpans([]Span{ok, server(tid(1), sid(2), sid(1), "stock", 2*ms, 15*ms)})
	require.Zero(t, rej)
	var fast []Span
	for i := range 5 {
		c := client(tid(byte(10+i)), sid(1), sid(9), "orders", 0, ms/2)
		c.Peer, c.Error = peer, true
		fast = append(fast, c)
	}
	stranger := client(tid(30), sid(1), sid(9), "orders", 0, 3*ms)
	stranger.Peer = NodeKey{Kind: NodeExternal, Name: "api.stripe.com:443"}
	rej, _ = g.ConsumeSpans(append(fast, stranger))
	require.Zero(t, rej)
	clk.advance(11 * time.Second)
	g.Expire()
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "service:orders->service:stock http")
	require.EqualValues(t, 6, e.Requests)
	require.EqualValues(t, 5, e.Unanswered)
	require.EqualValues(t, 5, e.Errors)
	require.InDelta(t, 0.5, e.UnansweredLatency.P50, 0.01)
	require.InDelta(t, 20, e.ClientLatency.P50, 0.2, "answered calls keep their own latency")
	edgeByID(t, snap, "service:orders->external:api.stripe.com:443 http")
	for _, n := range snap.Nodes {
		require.NotEqual(t, "external:stock:8080", n.ID, "a known service is not an external peer")
	}
}

// staticLag is a LagSource returning fixed statuses.
type staticLag []lag.Status

func (s staticLag) Evaluate(time.Duration) []lag.Status { return s }

func TestLagJoinsConsumerEdges(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	g, _, _ := newTestGraph(t, Options{Lag: staticLag{
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: "billing"}, Messages: lagMsgs(40), Seconds: f(12.5)}, State: lag.StateWarning, Reason: "falling behind"},
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: "audit"}, Messages: lagMsgs(7)}, State: lag.StateStopped},
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "rabbitmq", Destination: "emails"}, Messages: lagMsgs(0), DrainSeconds: f(0)}, State: lag.StateOK},
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "clicks", Group: "etl"}, Messages: lagMsgs(3)}, State: lag.StateStale},
	}})
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	emails := NodeKey{Kind: NodeQueue, Group: "rabbitmq", Name: "emails"}
	rej, why := g.ConsumeSpans([]Span{
		{Trace: tid(1), ID: sid(1), Kind: SpanConsumer, Service: "billing", End: ms, Protocol: ProtocolKafka, Destination: orders, ConsumerGroup: "billing"},
		{Trace: tid(2), ID: sid(1), Kind: SpanConsumer, Service: "mailer", End: ms, Protocol: ProtocolRabbitMQ, Destination: emails},
		{Trace: tid(3), ID: sid(1), Kind: SpanConsumer, Service: "mailer2", End: ms, Protocol: ProtocolRabbitMQ, Destination: emails},
	})
	require.Zero(t, rej, why)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	b := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing")
	require.NotNil(t, b.Lag)
	require.Equal(t, lag.StateWarning, b.Lag.Status)
	require.Equal(t, 40.0, *b.Lag.Messages)
	require.Equal(t, 12.5, *b.Lag.Seconds)
	require.Nil(t, b.Lag.DrainSeconds, "unknown is omitted, not zero")
	a := edgeByID(t, snap, "topic:kafka/orders->service:audit kafka @audit")
	require.Equal(t, lag.StateStopped, a.Lag.Status, "a group no trace names still shows")
	require.Zero(t, a.Requests)
	for _, id := range []string{"queue:rabbitmq/emails->service:mailer rabbitmq", "queue:rabbitmq/emails->service:mailer2 rabbitmq"} {
		require.Equal(t, lag.StateOK, edgeByID(t, snap, id).Lag.Status, "a queue's consumers share its backlog")
	}
	c := edgeByID(t, snap, "topic:kafka/clicks->service:etl kafka @etl")
	require.Equal(t, lag.StateStale, c.Lag.Status)
	_, ok := snap.Node("topic:kafka/clicks")
	require.True(t, ok, "a destination known only from metrics is a node")
}

func TestLagStaysOnAQuietConsumersEdge(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{Lag: staticLag{
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "rabbitmq", Destination: "emails"}, Messages: lagMsgs(900)}, State: lag.StateStalled},
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: "billing-v2"}, Messages: lagMsgs(5)}, State: lag.StateStopped},
	}})
	rej, why := g.ConsumeSpans([]Span{
		{Trace: tid(2), ID: sid(1), Kind: SpanConsumer, Service: "mailer", End: ms, Protocol: ProtocolRabbitMQ, Destination: NodeKey{Kind: NodeQueue, Group: "rabbitmq", Name: "emails"}},
		{Trace: tid(3), ID: sid(1), Kind: SpanConsumer, Service: "billing", End: ms, Protocol: ProtocolKafka,
			Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}, ConsumerGroup: "billing-v2"},
	})
	require.Zero(t, rej, why)
	clk.advance(5 * time.Minute) // the consumers stalled: no spans since
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "queue:rabbitmq/emails->service:mailer rabbitmq")
	require.Zero(t, e.Requests)
	require.Equal(t, lag.StateStalled, e.Lag.Status, "the lag stays on the consumer's own edge")
	b := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing-v2")
	require.Equal(t, lag.StateStopped, b.Lag.Status, "a group named in traces maps to its service, not to a node named after the group")
	_, phantom := snap.Node("service:billing-v2")
	require.False(t, phantom)
}

func TestLagJoinsByNATSSubject(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{Lag: staticLag{
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "nats", Destination: "ORDERS", Group: "shipper"}, Messages: lagMsgs(12), Subjects: []string{"orders.*.created", "orders.>"}}, State: lag.StateWarning},
	}})
	subj := func(name string) NodeKey { return NodeKey{Kind: NodeTopic, Group: "nats", Name: name} }
	rej, why := g.ConsumeSpans([]Span{
		{Trace: tid(1), ID: sid(1), Kind: SpanConsumer, Service: "shipper", End: ms, Protocol: ProtocolNATS, Destination: subj("orders.eu.created")},
		{Trace: tid(2), ID: sid(1), Kind: SpanConsumer, Service: "audit", End: ms, Protocol: ProtocolNATS, Destination: subj("payments.done")},
	})
	require.Zero(t, rej, why)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "topic:nats/orders.eu.created->service:shipper nats")
	require.NotNil(t, e.Lag, "the stream's lag lands on the edge of a subject it captures")
	require.Equal(t, 12.0, *e.Lag.Messages)
	require.Nil(t, edgeByID(t, snap, "topic:nats/payments.done->service:audit nats").Lag)
	for _, tc := range []struct {
		p, s string
		ok   bool
	}{{"a.*.c", "a.b.c", true}, {"a.*", "a.b.c", false}, {"a.>", "a.b.c", true}, {">", "x", true}, {"a.b", "a.b", true}, {"a.b", "a.b.c", false}, {"a.b.c", "a.b", false}} {
		require.Equal(t, tc.ok, subjectMatch(tc.p, tc.s), "%s ~ %s", tc.p, tc.s)
	}
}

// recordingPaths is a PathSource that counts the spans it is handed by id.
type recordingPaths struct{ seen map[SpanID]int }

func (r *recordingPaths) ObserveSpans(spans []Span) {
	for i := range spans {
		r.seen[spans[i].ID]++
	}
}
func (*recordingPaths) Paths(time.Duration) []EntryPath { return nil }

// TestResentSpansReachPathsOnce: the path source sees a re-sent span once.
// The critical-path sampler forgets the traces it completed (a bounded,
// direct-mapped memory): a batch re-sent 5 s later, at 1,000 requests/s,
// found one trace in twenty forgotten and started a partial trace of it,
// whose entry was a mid-trace span and whose unanswered calls were charged
// to a peer name, and a bottleneck fired on "pricing:8080" and on a
// replica warming up in a rolling restart (issue #15's full matrix).
func TestResentSpansReachPathsOnce(t *testing.T) {
	rec := &recordingPaths{seen: map[SpanID]int{}}
	g, _, _ := newTestGraph(t, Options{Paths: rec})
	c := client(tid(1), sid(1), SpanID{}, "a", 0, ms)
	sv := server(tid(1), sid(2), sid(1), "b", 0, ms)
	other := server(tid(2), sid(3), SpanID{}, "c", 0, ms)
	rej, why := g.ConsumeSpans([]Span{c, c, sv})
	require.Zero(t, rej, why)
	rej, why = g.ConsumeSpans([]Span{sv, other, c})
	require.Zero(t, rej, why)
	require.Equal(t, map[SpanID]int{sid(1): 1, sid(2): 1, sid(3): 1}, rec.seen, "each span once, the new one in a re-sent batch too")
}
