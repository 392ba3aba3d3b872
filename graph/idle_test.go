package graph

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIdleNodesAndEdges: a service called once stays in the snapshot
// after its traffic has left the window, idle, with the time it was last
// seen, until the idle horizon retires it; it takes no part in the
// coupling figures; JSON lists it among the others, marked, and decoding
// gives the same snapshot back, node index included.
func TestIdleNodesAndEdges(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{PairTTL: time.Second, IdleExpiry: 5 * time.Minute})
	pair := func(tr byte, callee string) []Span {
		now := clk.t.UnixNano()
		return []Span{client(tid(tr), sid(1), SpanID{}, "web", now, 10*ms), server(tid(tr), sid(2), sid(1), callee, now+ms, 8*ms)}
	}
	rej, why := g.ConsumeSpans(pair(1, "ledger"))
	require.Zero(t, rej, why)
	calledAt := clk.t
	for i := range 9 { // cart goes on being called for 90 s
		clk.advance(10 * time.Second)
		rej, why = g.ConsumeSpans(pair(byte(10+i), "cart"))
		require.Zero(t, rej, why)
	}
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	_, inWindow := snap.Node("service:ledger")
	require.False(t, inWindow, "ledger had no traffic in the window")
	require.Len(t, snap.IdleNodes, 1)
	ledger := snap.IdleNodes[0]
	require.Equal(t, "service:ledger", ledger.ID)
	require.True(t, ledger.Idle)
	require.NotNil(t, ledger.LastSeen)
	require.WithinDuration(t, calledAt, *ledger.LastSeen, 6*time.Second, "the end of its last bucket")
	require.Len(t, snap.IdleEdges, 1)
	e := snap.IdleEdges[0]
	require.Equal(t, "service:web->service:ledger http", e.ID)
	require.True(t, e.Idle)
	require.Zero(t, e.Requests)
	web, ok := snap.Node("service:web")
	require.True(t, ok)
	require.Equal(t, 1, web.FanOut, "the idle edge is no part of coupling")
	for _, x := range snap.Edges {
		require.False(t, x.Idle)
	}

	b, err := json.Marshal(snap)
	require.NoError(t, err)
	require.Contains(t, string(b), `"id":"service:ledger","kind":"service","name":"ledger","fan_in":0,"fan_out":0,"instability":0,"betweenness":0,"idle":true,"last_seen":`)
	var back Snapshot
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, snap.Nodes, back.Nodes)
	require.Equal(t, snap.IdleNodes, back.IdleNodes)
	require.Len(t, back.IdleEdges, 1)
	require.Equal(t, len(snap.Edges), len(back.Edges))
	_, ok = back.Node("service:cart")
	require.True(t, ok, "a decoded snapshot has its node index")

	clk.advance(5 * time.Minute)
	g.Expire()
	snap, err = g.Snapshot(0)
	require.NoError(t, err)
	for _, n := range snap.IdleNodes {
		require.NotEqual(t, "service:ledger", n.ID, "retired after the idle horizon")
	}
}
