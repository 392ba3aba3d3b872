package graph

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// churnTraffic makes one second of production-shaped traffic whose peer
// names never repeat: each trace's spans come in two export requests of
// different services (the callee's first half the time), a client calls a
// fresh ip:port every peerEvery seconds and never hears back, calls to an
// address answered before fail fast now and then (they land on the edge
// of the service that answered there), a message's consumer span is
// exported a request before its producer's, a legacy client reports as
// a child of another service's server span, and a cron job under a new
// name runs every five minutes.
type churnTraffic struct {
	rng       *rand.Rand
	next      uint64
	peerEvery int
	late      []Span // spans exported a second later (another batch)
}

func (c *churnTraffic) ids() (TraceID, SpanID) {
	c.next++
	var tr TraceID
	var sp SpanID
	binary.BigEndian.PutUint64(tr[:8], c.rng.Uint64())
	binary.BigEndian.PutUint64(tr[8:], c.next)
	binary.BigEndian.PutUint64(sp[:], c.rng.Uint64()|1)
	return tr, sp
}

func (c *churnTraffic) span() SpanID {
	var sp SpanID
	binary.BigEndian.PutUint64(sp[:], c.rng.Uint64()|1)
	return sp
}

// second returns the export requests of second sec, starting at startN.
func (c *churnTraffic) second(sec int, startN int64) [][]Span {
	var callers, callees []Span
	callees, c.late = c.late, nil
	if sec == 0 { // the first node of all is never seen again: every index moves
		tr, root := c.ids()
		cs := client(tr, c.span(), root, "db-migrate", startN, 3*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: "schema-registry:8081"}
		callers = append(callers, Span{Trace: tr, ID: root, Kind: SpanInternal, Service: "db-migrate", Start: startN, End: startN + 5*ms, Operation: "migrate"},
			cs, server(tr, c.span(), cs.ID, "schema-registry", startN+ms, ms))
	}
	if sec%4 == 0 { // an external API nobody answers for: its node is the peer's
		tr, cl := c.ids()
		cs := client(tr, cl, SpanID{}, "frontend", startN, 80*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: "api.stripe.com:443"}
		callers = append(callers, cs)
	}
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	for range 1 + c.rng.IntN(3) {
		tr, cl := c.ids()
		sv, legacy := c.span(), c.span()
		at := startN + int64(c.rng.IntN(900))*ms
		cs := client(tr, cl, SpanID{}, "frontend", at, 40*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: "checkout:8080"}
		callers = append(callers, cs)
		ss := server(tr, sv, cl, "checkout", at+2*ms, 30*ms)
		ss.Error = c.rng.IntN(100) == 0
		lg := Span{Trace: tr, ID: legacy, Parent: sv, Kind: SpanInternal, Service: "legacy-ledger", Start: at + 5*ms, End: at + 9*ms, Operation: "ledger.write"}
		callees = append(callees, ss)
		if c.rng.IntN(2) == 0 {
			c.late = append(c.late, lg) // its parent comes a request earlier
		} else {
			callees = append(callees, lg)
		}
	}
	if sec%3 == 0 { // an answered call now and then teaches the alias
		tr, cl := c.ids()
		cs := client(tr, cl, SpanID{}, "frontend", startN, 20*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: "payments:80"}
		callers = append(callers, cs)
		callees = append(callees, server(tr, c.span(), cl, "payments", startN+ms, 15*ms))
	} else if sec%7 == 0 { // and a call that fails fast goes unanswered
		tr, cl := c.ids()
		cs := client(tr, cl, SpanID{}, "frontend", startN, ms)
		cs.Peer, cs.Error = NodeKey{Kind: NodeExternal, Name: "payments:80"}, true
		callers = append(callers, cs)
	}
	if sec%c.peerEvery == 0 { // a peer that is never seen again
		tr, cl := c.ids()
		cs := client(tr, cl, SpanID{}, "scraper", startN, 5*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: fmt.Sprintf("10.%d.%d.%d:9100", sec>>16&255, sec>>8&255, sec&255)}
		callers = append(callers, cs)
	}
	{ // the consumer's span is exported before its producer's
		tr, p := c.ids()
		prod := Span{Trace: tr, ID: p, Kind: SpanProducer, Service: "checkout", Start: startN, End: startN + 2*ms, Protocol: ProtocolKafka, Destination: orders, Messaging: MessagingPublish}
		cons := Span{Trace: tr, ID: c.span(), Parent: p, Kind: SpanConsumer, Service: "billing", Start: startN + 300*ms, End: startN + 320*ms,
			Protocol: ProtocolKafka, Destination: orders, ConsumerGroup: "billing", Messaging: MessagingProcess}
		c.late = append(c.late, prod)
		callees = append(callees, cons)
	}
	if sec%300 == 0 {
		tr, root := c.ids()
		cron := fmt.Sprintf("report-%d", sec/300)
		cs := client(tr, c.span(), root, cron, startN+ms, 50*ms)
		cs.Peer = NodeKey{Kind: NodeExternal, Name: "warehouse:5432"}
		callers = append(callers, Span{Trace: tr, ID: root, Kind: SpanInternal, Service: cron, Start: startN, End: startN + 60*ms, Operation: "run"}, cs)
	}
	if c.rng.IntN(2) == 0 && sec > 0 {
		return [][]Span{callees, callers}
	}
	return [][]Span{callers, callees}
}

// windowJSON is what a reader of the window sees: nodes and edges.
func windowJSON(t *testing.T, g *Graph) string {
	t.Helper()
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	b, err := json.Marshal(struct {
		Nodes []Node
		Edges []Edge
	}{s.Nodes, s.Edges})
	require.NoError(t, err)
	return string(b)
}

// TestRetireKeepsTheWindowExact is issue #15 9: a graph that retires what
// it has not seen for the idle horizon holds a fraction of the nodes, edges
// and peer addresses of one that keeps everything, and every snapshot of
// the window is identical between the two, byte for byte, over 40 minutes
// of traffic whose peer names never repeat.
func TestRetireKeepsTheWindowExact(t *testing.T) {
	opts := Options{PairTTL: 10 * time.Second, IdleExpiry: 2 * time.Minute}
	retiring, clk, reg := newTestGraph(t, opts)
	opts.IdleExpiry = 1000 * time.Hour
	keeping, clk2, _ := newTestGraph(t, opts)
	a := &churnTraffic{rng: rand.New(rand.NewPCG(1, 2)), peerEvery: 1}
	b := &churnTraffic{rng: rand.New(rand.NewPCG(1, 2)), peerEvery: 1}
	compared := 0
	for sec := range 40 * 60 {
		startN := clk.t.UnixNano()
		ra, rb := a.second(sec, startN), b.second(sec, startN)
		for i := range ra {
			rej, why := retiring.ConsumeSpans(ra[i])
			require.Zero(t, rej, why)
			rej, why = keeping.ConsumeSpans(rb[i])
			require.Zero(t, rej, why)
			clk.advance(400 * time.Millisecond)
			clk2.advance(400 * time.Millisecond)
		}
		clk.advance(200 * time.Millisecond)
		clk2.advance(200 * time.Millisecond)
		if sec%37 == 0 {
			require.Equal(t, windowJSON(t, keeping), windowJSON(t, retiring), "second %d", sec)
			compared++
		}
	}
	require.Greater(t, compared, 60)
	require.Greater(t, len(keeping.nodeIx), 2000, "the keeping graph holds every peer that was ever called")
	require.Less(t, len(retiring.nodeIx), 250, "the retiring graph holds the last few minutes")
	require.Less(t, len(retiring.peerIx), 250)
	require.Less(t, len(retiring.edgeIx), 250)
	require.Greater(t, len(keeping.edgeIx), 2000)
	require.Greater(t, testutil.ToFloat64(retiring.retired.nodes), 2000.0)
	require.Greater(t, testutil.ToFloat64(retiring.retired.peers), 2000.0)
	require.Greater(t, testutil.ToFloat64(retiring.retired.edges), 2000.0)
	mf, err := reg.Gather()
	require.NoError(t, err)
	found := false
	for _, f := range mf {
		found = found || f.GetName() == "cartograph_graph_retired_total"
	}
	require.True(t, found, "cartograph_graph_retired_total is registered")

	// What remains is still right: the alias to payments survived the
	// compactions (a fast failure lands on frontend -> payments), and so
	// did the edges of the traffic that goes on.
	snap, err := retiring.Snapshot(0)
	require.NoError(t, err)
	require.NotZero(t, edgeByID(t, snap, "service:frontend->service:payments http").Unanswered)
	require.NotZero(t, edgeByID(t, snap, "service:checkout->service:legacy-ledger internal").Requests)
	require.NotZero(t, edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing").Requests)
}

// TestRetireFreesTheNodeLimit is issue #15 9's defect: peer names that keep
// changing filled the node limit for good, and a service deployed after
// that folded into the overflow node until a restart. With the idle
// horizon the limit holds the live graph, and the newcomer is itself.
func TestRetireFreesTheNodeLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idle     time.Duration
		overflow bool
	}{
		{"without retiring, the newcomer folds (the defect)", 1000 * time.Hour, true},
		{"retiring after 2m", 2 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second, IdleExpiry: tc.idle, MaxNodes: 60})
			traffic := &churnTraffic{rng: rand.New(rand.NewPCG(3, 4)), peerEvery: 5}
			for sec := range 30 * 60 {
				for _, req := range traffic.second(sec, clk.t.UnixNano()) {
					g.ConsumeSpans(req)
				}
				clk.advance(time.Second)
			}
			tr := tid(9)
			c := client(tr, sid(1), SpanID{}, "newcomer", clk.t.UnixNano(), 20*ms)
			c.Peer = NodeKey{Kind: NodeExternal, Name: "ledger-v2:443"}
			rej, why := g.ConsumeSpans([]Span{c, server(tr, sid(2), sid(1), "ledger-v2", clk.t.UnixNano()+ms, 10*ms)})
			require.Zero(t, rej, why)
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			_, own := snap.Node("service:newcomer")
			require.Equal(t, !tc.overflow, own, "the newcomer has its own node")
			if !tc.overflow {
				require.NotZero(t, edgeByID(t, snap, "service:newcomer->service:ledger-v2 http").Requests)
				require.LessOrEqual(t, len(g.nodeIx), 60)
			}
		})
	}
}

// TestRetiredConsumerKeepsItsLag: a consumer that stalled longer ago than
// the idle horizon has left memory with its edge, but the broker still
// reports its group's lag: the lag lands on the consumer's own edge, not
// on a node invented from the group's name.
func TestRetiredConsumerKeepsItsLag(t *testing.T) {
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	st := staticLag{{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: "billing-cg"}, Messages: lagMsgs(5000)}, State: lag.StateStalled}}
	g, clk, _ := newTestGraph(t, Options{Lag: st, IdleExpiry: 2 * time.Minute})
	rej, why := g.ConsumeSpans([]Span{{Trace: tid(1), ID: sid(1), Kind: SpanConsumer, Service: "billing", Start: clk.t.UnixNano(), End: clk.t.UnixNano() + ms,
		Protocol: ProtocolKafka, Destination: orders, Messaging: MessagingProcess}})
	require.Zero(t, rej, why)
	for range 30 {
		clk.advance(time.Minute)
		g.Expire()
	}
	require.Empty(t, g.edgeIx, "the quiet edge left memory")
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka")
	require.NotNil(t, e.Lag)
	require.Equal(t, "billing-cg", e.Lag.Group)
	_, invented := snap.Node("service:billing-cg")
	require.False(t, invented)

	// Once the consumer is back, its edge is live again and not doubled.
	rej, why = g.ConsumeSpans([]Span{{Trace: tid(2), ID: sid(1), Kind: SpanConsumer, Service: "billing", Start: clk.t.UnixNano(), End: clk.t.UnixNano() + ms,
		Protocol: ProtocolKafka, Destination: orders, Messaging: MessagingProcess}})
	require.Zero(t, rej, why)
	require.Empty(t, g.dormant)
	snap, err = g.Snapshot(0)
	require.NoError(t, err)
	n := 0
	for _, e := range snap.Edges {
		if e.Target == "service:billing" {
			n++
		}
	}
	require.Equal(t, 1, n)
}

// TestIdleExpiryValidated: a horizon shorter than the window would drop
// edges that still have traffic in it.
func TestIdleExpiryValidated(t *testing.T) {
	_, err := New(Options{Window: 5 * time.Minute, IdleExpiry: 5 * time.Minute})
	require.ErrorContains(t, err, "idle expiry")
	_, err = New(Options{Window: 5 * time.Minute, IdleExpiry: 6 * time.Minute})
	require.NoError(t, err)
}
