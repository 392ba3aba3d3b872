package pairing

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// arrivals are the orders in which a trace's spans may reach the store: in
// one export request or several, callees before callers, roots last, and
// re-sent by an exporter that did not hear back.
var arrivals = []struct {
	name    string
	batches func(spans []tspan) [][]tspan
}{
	{"one batch", func(s []tspan) [][]tspan { return [][]tspan{s} }},
	{"one batch, children first", func(s []tspan) [][]tspan { return [][]tspan{reversed(s)} }},
	{"a batch a span", func(s []tspan) [][]tspan { return each(s) }},
	{"a batch a span, children first", func(s []tspan) [][]tspan { return each(reversed(s)) }},
	{"roots last", func(s []tspan) [][]tspan {
		var roots, rest []tspan
		for _, sp := range s {
			if sp.parent == 0 {
				roots = append(roots, sp)
			} else {
				rest = append(rest, sp)
			}
		}
		return [][]tspan{rest, roots}
	}},
	{"re-sent", func(s []tspan) [][]tspan { return [][]tspan{s, s} }},
	{"re-sent span by span, children first", func(s []tspan) [][]tspan {
		return append(each(reversed(s)), each(reversed(s))...)
	}},
}

func reversed(s []tspan) []tspan { r := slices.Clone(s); slices.Reverse(r); return r }

func each(s []tspan) [][]tspan {
	var out [][]tspan
	for _, sp := range s {
		out = append(out, []tspan{sp})
	}
	return out
}

func withLinks(s tspan, links ...uint8) tspan { s.links = links; return s }

func selfPeer(s tspan) tspan { s.selfPeer = true; return s }

func database(s tspan) tspan { s.db = true; return s }

// TestArrivalOrders: whatever order a trace's spans come in, and however
// often they are re-sent, the store finds the same calls and messages
// (within the TTL).
func TestArrivalOrders(t *testing.T) {
	cases := []struct {
		name  string
		trace []tspan
		want  []string
	}{
		{"a client and its server", []tspan{
			server(1, 1, 0, "frontend"),
			client(1, 2, 1, "frontend", "backend:80"),
			server(1, 3, 2, "backend"),
		}, []string{"call frontend->backend", "uncalled ->frontend"}},
		{"a chain of three services", []tspan{
			server(1, 1, 0, "frontend"),
			client(1, 2, 1, "frontend", "cart:80"),
			server(1, 3, 2, "cart"),
			client(1, 4, 3, "cart", "stock:80"),
			server(1, 5, 4, "stock"),
		}, []string{"call cart->stock", "call frontend->cart", "uncalled ->frontend"}},
		{"a call answered by a span that is no server span", []tspan{
			server(1, 1, 0, "frontend"),
			client(1, 2, 1, "frontend", "legacy:80"),
			internal(1, 3, 2, "legacy"),
		}, []string{"call frontend->legacy", "uncalled ->frontend"}},
		{"a service calling another without client spans", []tspan{
			server(1, 1, 0, "frontend"),
			internal(1, 2, 1, "frontend"),
			server(1, 3, 2, "backend"),
		}, []string{"hop frontend->backend", "uncalled ->frontend"}},
		{"a child of another service without a server span", []tspan{
			server(1, 1, 0, "frontend"),
			internal(1, 2, 1, "worker"),
		}, []string{"hop frontend->worker", "uncalled ->frontend"}},
		{"the instrumentation of a peer, under the peer's name", []tspan{
			server(1, 1, 0, "frontend"),
			selfPeer(client(1, 2, 1, "redis", "redis")),
		}, []string{"hop frontend->redis (client side)", "uncalled ->frontend"}},
		{"retried attempts answering one client span", []tspan{
			client(1, 1, 0, "frontend", "backend:80"),
			server(1, 2, 1, "backend"),
			server(1, 3, 1, "backend"),
		}, []string{"call frontend->backend", "retry frontend->backend"}},
		{"a database call, recorded at once", []tspan{
			server(1, 1, 0, "frontend"),
			database(client(1, 2, 1, "frontend", "postgres")),
		}, []string{"uncalled ->frontend", "unpaired frontend->peer postgres"}},
		{"a call nobody answers, to a peer", []tspan{
			server(1, 1, 0, "frontend"),
			client(1, 2, 1, "frontend", "api.example.com:443"),
		}, []string{"uncalled ->frontend", "unpaired frontend->peer api.example.com:443"}},
		{"a message from a producer to a consumer", []tspan{
			server(1, 1, 0, "orders"),
			producer(1, 2, 1, "orders", "topic payments"),
			consumer(1, 3, 2, "billing", "payments->billing"),
		}, []string{"message orders->billing via payments->billing, delay 29ms", "uncalled ->orders"}},
		{"a batch consumer linking two producers", []tspan{
			producer(1, 1, 0, "orders", "topic payments"),
			producer(1, 2, 0, "refunds", "topic payments"),
			withLinks(consumer(1, 3, 0, "billing", "payments->billing"), 1, 2),
		}, []string{"message orders->billing via payments->billing, delay 29ms", "message refunds->billing via payments->billing, delay 29ms"}},
		{"two consumer groups reading one message", []tspan{
			producer(1, 1, 0, "orders", "topic payments"),
			consumer(1, 2, 1, "billing", "payments->billing"),
			consumer(1, 3, 1, "audit", "payments->audit"),
		}, []string{"message orders->audit via payments->audit, delay 29ms", "message orders->billing via payments->billing, delay 29ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, a := range arrivals {
				t.Run(a.name, func(t *testing.T) {
					h := newHarness(t, Options{})
					for _, b := range a.batches(tc.trace) {
						h.sendOK(b...)
					}
					h.expireAll()
					require.Equal(t, tc.want, h.events())
					require.Zero(t, h.st.Len(), "everything expired")
				})
			}
		})
	}
}

// TestResentSpansAreNoted: a span re-sent (same id, kind and service) is
// noted a duplicate, whatever came between; a server span carrying its
// client's id (Zipkin's shared spans) is not.
func TestResentSpansAreNoted(t *testing.T) {
	h := newHarness(t, Options{})
	remember := func(ts tspan) Note {
		sp := h.pairingSpan(ts, 0)
		return h.st.Remember(&sp.Trace, sp.ID, ts.kind, sp.Half.Node, ts.role == RoleProducer, sp.Half.End, h.now)
	}
	c := client(1, 2, 1, "frontend", "backend:80")
	require.Equal(t, NoteNew, remember(c))
	require.Equal(t, NoteDuplicate, remember(c), "re-sent")
	other := c
	other.svc = "frontend-v2"
	require.Equal(t, NoteNew, remember(other), "the same id from another service is no re-send")
	require.Equal(t, NoteShared, remember(server(1, 2, 1, "backend")), "a shared span of another service")
	h.advance(testTTL)
	require.Equal(t, NoteDuplicate, remember(c), "re-sent a TTL later")
}

// TestSharedSpans: Zipkin's client and server spans of one call share a
// span id (and a parent). They pair whichever of two batches comes first,
// unless the server span found its parent already: then the hop is
// recorded from the parent's service and the client comes late.
func TestSharedSpans(t *testing.T) {
	shared := func(svc string) tspan { s := server(1, 2, 1, svc); return s }
	cases := []struct {
		name    string
		batches [][]tspan
		want    []string
	}{
		{"client first", [][]tspan{{client(1, 2, 1, "frontend", "backend:80")}, {shared("backend")}},
			[]string{"call frontend->backend"}},
		{"server first", [][]tspan{{shared("backend")}, {client(1, 2, 1, "frontend", "backend:80")}},
			[]string{"call frontend->backend"}},
		{"one batch", [][]tspan{{client(1, 2, 1, "frontend", "backend:80"), shared("backend")}},
			[]string{"call frontend->backend"}},
		{"server first, its parent seen before it", [][]tspan{
			{server(1, 1, 0, "frontend")}, {shared("backend")}, {client(1, 2, 1, "frontend", "backend:80")},
		}, []string{"hop frontend->backend", "uncalled ->frontend"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			for _, b := range tc.batches {
				h.sendOK(b...)
			}
			h.expireAll()
			require.Equal(t, tc.want, h.events())
		})
	}
}

// TestExpiry: what a half-edge that waited out the TTL leaves, and that it
// waits the whole TTL and no more.
func TestExpiry(t *testing.T) {
	// answered teaches the store that calls from frontend to backend:80
	// reach backend, kept at weight n for the client and m for the server.
	answered := func(tr uint8, n, m uint32) []tspan {
		c, sv := client(tr, 1, 0, "frontend", "backend:80"), server(tr, 2, 1, "backend")
		c.n, sv.n = n, m
		return []tspan{c, sv}
	}
	cases := []struct {
		name    string
		batches [][]tspan
		want    []string
		dropped map[Drop]uint64
		expired map[Expiry]uint64
	}{
		{"a client naming no peer", [][]tspan{{client(1, 2, 0, "frontend", "")}},
			[]string{"unplaced frontend client_no_peer"}, nil, map[Expiry]uint64{ExpiredClientNoPeer: 1}},
		{"a client to a peer nobody answers for", [][]tspan{{client(1, 2, 0, "frontend", "api:443")}},
			[]string{"unpaired frontend->peer api:443"}, nil, map[Expiry]uint64{ExpiredClient: 1}},
		{"a client to a peer a service answered", [][]tspan{answered(1, 1, 1), {client(2, 1, 0, "frontend", "backend:80")}},
			[]string{"call frontend->backend", "unanswered frontend->backend"}, nil, map[Expiry]uint64{ExpiredClientUnanswered: 1}},
		{"a sampled client whose server span was sampled out", [][]tspan{answered(1, 4, 1), {func() tspan {
			c := client(2, 1, 0, "frontend", "backend:80")
			c.n = 4
			return c
		}()}}, []string{"call frontend->backend", "sampled out frontend->backend"}, nil, map[Expiry]uint64{ExpiredClientSampled: 1}},
		{"consistent sampling keeps unanswered calls", [][]tspan{answered(1, 4, 4), {func() tspan {
			c := client(2, 1, 0, "frontend", "backend:80")
			c.n = 4
			return c
		}()}}, []string{"call frontend->backend", "unanswered frontend->backend"}, nil, map[Expiry]uint64{ExpiredClientUnanswered: 1}},
		{"a server whose client never comes", [][]tspan{{server(1, 2, 1, "backend")}},
			[]string{"uncalled ->backend"}, nil, map[Expiry]uint64{ExpiredServer: 1}},
		{"a sampled server whose caller was not kept", [][]tspan{{func() tspan { s := server(1, 2, 1, "backend"); s.n = 8; return s }()}},
			[]string{"unplaced backend sampled_out"}, nil, map[Expiry]uint64{ExpiredServer: 1}},
		{"a span whose parent never comes", [][]tspan{{internal(1, 2, 1, "worker")}},
			[]string{"unplaced worker parent_not_seen"}, nil, nil},
		{"a client whose parent never comes is placed anyway", [][]tspan{{client(1, 2, 1, "frontend", "backend:80"), server(1, 3, 2, "backend")}},
			[]string{"call frontend->backend"}, nil, nil},
		{"a producer no consumer reads", [][]tspan{{producer(1, 1, 0, "orders", "topic payments")}},
			nil, nil, map[Expiry]uint64{ExpiredProducer: 1}},
		{"a consumer whose producer never comes", [][]tspan{{consumer(1, 2, 1, "billing", "payments->billing")}},
			nil, nil, map[Expiry]uint64{ExpiredConsumer: 1}},
		{"a consumer naming no destination whose producer never comes", [][]tspan{{func() tspan {
			c := consumer(1, 2, 1, "billing", "")
			c.group = "billing-group"
			return c
		}()}}, nil, map[Drop]uint64{DropNoDestination: 1}, map[Expiry]uint64{ExpiredConsumer: 1}},
		{"a consumer naming no destination reads its producer's", [][]tspan{{producer(1, 1, 0, "orders", "topic payments"), func() tspan {
			c := consumer(1, 2, 1, "billing", "")
			c.group = "billing-group"
			return c
		}()}}, []string{"message orders->billing via group billing-group, delay 29ms"}, nil, map[Expiry]uint64{ExpiredProducer: 1}},
		{"a late client, after its server was given up", [][]tspan{{server(1, 2, 1, "backend")}, nil, {client(1, 1, 0, "frontend", "backend:80")}},
			[]string{"uncalled ->backend"}, map[Drop]uint64{DropLateClient: 1}, map[Expiry]uint64{ExpiredServer: 1}},
		{"a late server, after its client was given up", [][]tspan{{client(1, 1, 0, "frontend", "backend:80")}, nil, {server(1, 2, 1, "backend")}},
			[]string{"unpaired frontend->peer backend:80"}, map[Drop]uint64{DropLateServer: 1}, map[Expiry]uint64{ExpiredClient: 1}},
		{"a consumer after its producer's half-edge expired", [][]tspan{{producer(1, 1, 0, "orders", "topic payments")}, nil, {consumer(1, 2, 1, "billing", "payments->billing")}},
			[]string{"late message ->billing via payments->billing, delay 11029ms"}, nil, map[Expiry]uint64{ExpiredProducer: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			for _, b := range tc.batches {
				if b == nil { // a TTL and more passes
					h.advance(testTTL + time.Second)
					continue
				}
				h.sendOK(b...)
			}
			h.expireAll()
			require.Equal(t, tc.want, h.events())
			st := h.st.Stats()
			for d := range NumDrops {
				require.Equal(t, tc.dropped[d], st.Dropped[d], "dropped %v", d)
			}
			for e := range NumExpiries {
				require.Equal(t, tc.expired[e], st.Expired[e], "expired %v", e)
			}
			require.Zero(t, st.Pending)
		})
	}
}

// TestRerouted: a half-edge that expires unpaired is counted as rerouted
// too when its span began before a change of the collectors and it
// expires after it; one begun after the change, or expired before it, is
// not; pairs and producers are never counted.
func TestRerouted(t *testing.T) {
	h := newHarness(t, Options{})
	sec := int64(time.Second)
	h.sendOK(server(1, 2, 1, "early")) // expires before the change
	h.advance(testTTL + time.Second)
	h.st.Expire(h.now)
	t0 := h.now
	h.sendOK(server(2, 2, 1, "straddles"), consumer(3, 2, 1, "billing", "payments->billing"), producer(4, 1, 0, "orders", "topic payments"))
	h.sendOK(client(5, 1, 0, "frontend", "backend:80"), server(5, 2, 1, "backend")) // pairs
	h.advance(time.Second)
	h.st.Rerouted(t0+sec/2, t0+sec) // a collector stopped between t0+0.5s and t0+1s
	h.advance(time.Second)
	h.sendOK(server(6, 2, 1, "after")) // begins after the change
	h.expireAll()
	st := h.st.Stats()
	require.Equal(t, uint64(3), st.Expired[ExpiredServer])
	require.Equal(t, uint64(1), st.Rerouted[ExpiredServer], "only the server span that straddles the change")
	require.Equal(t, uint64(1), st.Rerouted[ExpiredConsumer])
	require.Zero(t, st.Rerouted[ExpiredProducer], "producers always expire: not a lost half")
	require.Zero(t, st.Rerouted[ExpiredClient])

	// The newest maxReroutes changes are remembered.
	for i := range maxReroutes + 2 {
		h.st.Rerouted(int64(i), int64(i)+1)
	}
	require.Equal(t, maxReroutes, h.st.nReroutes)
	require.Equal(t, [2]int64{maxReroutes + 1, maxReroutes + 2}, h.st.reroutes[0])
}

// TestExpiryWaitsTheTTL: a half-edge expires at its TTL, not a nanosecond
// before, oldest first.
func TestExpiryWaitsTheTTL(t *testing.T) {
	h := newHarness(t, Options{})
	h.sendOK(server(1, 2, 1, "a"))
	h.advance(time.Second)
	h.sendOK(server(2, 2, 1, "b"))
	h.advance(testTTL - time.Second - 1)
	h.st.Expire(h.now)
	require.Empty(t, h.events())
	require.Equal(t, 2, h.st.Len())
	h.advance(1)
	h.st.Expire(h.now)
	require.Equal(t, []string{"uncalled ->a"}, h.events())
	require.Equal(t, 1, h.st.Len())
	h.advance(time.Second)
	h.st.Expire(h.now)
	require.Equal(t, []string{"uncalled ->b"}, h.events())
	require.Zero(t, h.st.Len())
}

// TestFullStore: at MaxItems half-edges a span that would wait is refused
// with ErrTooManyItems, or, when only part of it is lost, that part is
// dropped and counted; pairing still works, and frees room.
func TestFullStore(t *testing.T) {
	h := newHarness(t, Options{MaxItems: 2})
	h.sendOK(client(1, 1, 0, "a", "b:80"), client(2, 1, 0, "a", "b:80"))
	require.Equal(t, 2, h.st.Len())

	cases := []struct {
		name string
		span tspan
		err  error
		drop Drop
	}{
		{"a client", client(3, 1, 0, "a", "b:80"), ErrTooManyItems, NumDrops},
		{"a server", server(4, 2, 1, "b"), ErrTooManyItems, NumDrops},
		{"a producer naming no destination", producer(5, 1, 0, "a", ""), ErrTooManyItems, NumDrops},
		{"a producer naming its destination", producer(6, 1, 0, "a", "topic t"), nil, DropFull},
		{"a consumer naming its destination", consumer(7, 2, 1, "c", "t->c"), nil, DropFull},
		{"a consumer naming no destination", consumer(8, 2, 1, "c", ""), ErrNoDestination, DropFull},
		{"a span whose parent is not seen", internal(9, 2, 1, "c"), nil, DropFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.st.Stats().Dropped
			err := h.send(tc.span)[0]
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
			after := h.st.Stats().Dropped
			for d := range NumDrops {
				want := before[d]
				if d == tc.drop {
					want++
				}
				require.Equal(t, want, after[d], "dropped %v", d)
			}
			require.Equal(t, 2, h.st.Len())
		})
	}
	h.events()

	// A server answering a waiting client needs no room, and frees one.
	h.sendOK(server(1, 2, 1, "b"))
	require.Equal(t, []string{"call a->b"}, h.events())
	require.Equal(t, 1, h.st.Len())
	h.sendOK(client(10, 1, 0, "a", "b:80"))
	require.Equal(t, 2, h.st.Len())
}

// TestWaitersAreBounded: at most MaxWaiters consumers wait for one
// producer; the others are dropped and counted, and the waiting ones pair
// when it comes.
func TestWaitersAreBounded(t *testing.T) {
	h := newHarness(t, Options{})
	var consumers []tspan
	for i := range MaxWaiters + 6 {
		consumers = append(consumers, consumer(1, uint8(10+i), 1, "billing", "payments->billing"))
	}
	h.sendOK(consumers...)
	require.Equal(t, MaxWaiters, h.st.Waiting(SpanRef{Trace: tid(1), Span: sid(1)}))
	require.EqualValues(t, 6, h.st.Stats().Dropped[DropWaitersFull])
	h.sendOK(producer(1, 1, 0, "orders", "topic payments"))
	require.Len(t, h.events(), MaxWaiters)
	require.Zero(t, h.st.Waiting(SpanRef{Trace: tid(1), Span: sid(1)}))
}

// TestDuplicateIDs: a second client or producer span with the id of one
// waiting is refused with ErrDuplicate.
func TestDuplicateIDs(t *testing.T) {
	for _, second := range []tspan{client(1, 1, 0, "a2", "b:80"), producer(1, 1, 0, "a2", "topic t")} {
		t.Run(second.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.sendOK(client(1, 1, 0, "a", "b:80"))
			require.ErrorIs(t, h.send(second)[0], ErrDuplicate)
		})
	}
}

// TestRecorderRefusals: what the recorder cannot record is the span's
// refusal.
func TestRecorderRefusals(t *testing.T) {
	h := newHarness(t, Options{})
	full := errors.New("edge limit reached")
	h.sendOK(client(1, 1, 0, "a", "b:80"))
	h.rec.refuse = full
	require.ErrorIs(t, h.send(server(1, 2, 1, "b"))[0], full)
	require.ErrorIs(t, h.send(server(2, 2, 0, "b"))[0], full, "a root server span, from the virtual client")
	require.ErrorIs(t, h.send(database(client(3, 1, 0, "a", "postgres")))[0], full)
}

// TestAliases: calls a caller saw answered by one service land on it when
// unanswered; an address answered by several services is no alias; a
// candidate standing for many peers teaches nothing.
func TestAliases(t *testing.T) {
	answered := func(tr uint8, caller, peer, callee string) []tspan {
		return []tspan{client(tr, 1, 0, caller, peer), server(tr, 2, 1, callee)}
	}
	unanswered := func(tr uint8, caller, peer string) []tspan { return []tspan{client(tr, 1, 0, caller, peer)} }
	cases := []struct {
		name    string
		many    string
		batches [][]tspan
		want    []string
	}{
		{"per caller", "", [][]tspan{
			answered(1, "a", "localhost:80", "b"), answered(2, "c", "localhost:80", "d"),
			unanswered(3, "a", "localhost:80"), unanswered(4, "c", "localhost:80"),
		}, []string{"call a->b", "call c->d", "unanswered a->b", "unanswered c->d"}},
		{"a caller that never saw it answered", "", [][]tspan{
			answered(1, "a", "api:80", "api"), unanswered(2, "e", "api:80"),
		}, []string{"call a->api", "unanswered e->api"}},
		{"answered by several services", "", [][]tspan{
			answered(1, "a", "gw:80", "b"), answered(2, "c", "gw:80", "d"), unanswered(3, "e", "gw:80"),
		}, []string{"call a->b", "call c->d", "unpaired e->peer gw:80"}},
		{"a candidate that stands for many peers", "(other)", [][]tspan{
			answered(1, "a", "(other)", "b"), unanswered(2, "a", "(other)"),
		}, []string{"call a->b", "unpaired a->peer (other)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.rec.many[tc.many] = tc.many != ""
			for _, b := range tc.batches {
				h.sendOK(b...)
			}
			h.expireAll()
			require.Equal(t, tc.want, h.events())
		})
	}
}

// TestRemap: what pending half-edges refer to is reported referenced, and
// after the caller renumbers its nodes and peers, pairing goes on with the
// new numbers; aliases of retired nodes are forgotten.
func TestRemap(t *testing.T) {
	h := newHarness(t, Options{})
	h.sendOK(client(1, 1, 0, "a", "a.example:80"), server(1, 2, 1, "b")) // a -> b teaches an alias
	h.sendOK(client(2, 1, 0, "c", "c.example:80"))                       // c waits for its server
	h.sendOK(consumer(3, 2, 1, "d", "t->d"))                             // d waits for its producer
	require.Equal(t, []string{"call a->b"}, h.events())

	nodes := make([]bool, len(h.rec.nodes.names))
	edges := make([]bool, len(h.rec.edges.names))
	peers := make([]bool, len(h.rec.peers.names))
	h.st.Referenced(nodes, edges, peers)
	named := func(n *numbering, keep []bool) (out []string) {
		for i, k := range keep {
			if k {
				out = append(out, n.names[i])
			}
		}
		return out
	}
	require.Equal(t, []string{"c", "d"}, named(&h.rec.nodes, nodes))
	require.Equal(t, []string{"t->d"}, named(&h.rec.edges, edges))
	require.Equal(t, []string{"c.example:80"}, named(&h.rec.peers, peers))

	// The caller retires a, b and a.example:80, and renumbers the rest.
	h.st.Remap(h.rec.nodes.renumber("c", "d"), h.rec.edges.renumber("t->d"), h.rec.peers.renumber("c.example:80"))

	h.sendOK(server(2, 2, 1, "e"), producer(3, 1, 0, "f", "t"))
	require.Equal(t, []string{"call c->e", "message f->d via t->d, delay 29ms"}, h.events())
	// a's alias went with it: a new a calling a.example:80 is unanswered
	// by nobody known.
	h.sendOK(client(4, 1, 0, "a", "a.example:80"))
	h.expireAll()
	require.Equal(t, []string{"unpaired a->peer a.example:80"}, h.events())
}

// TestRemapKeepsSampledOutCallees: the services known to answer sampled
// calls whose callers' spans were not kept are still known after the
// caller renumbers its nodes, so that a sampled call to one that goes
// unanswered is still judged sampled out.
func TestRemapKeepsSampledOutCallees(t *testing.T) {
	h := newHarness(t, Options{})
	weighted := func(s tspan, n uint32) tspan { s.n = n; return s }
	h.sendOK(server(99, 1, 0, "x")) // x is node 0, the one to retire
	var callees, peers, want []string
	for i := range 12 {
		callee := fmt.Sprintf("s%02d", i)
		callees, peers = append(callees, callee), append(peers, callee+":80")
		h.sendOK(weighted(client(uint8(i), 1, 0, "a", callee+":80"), 4), weighted(server(uint8(i), 2, 1, callee), 4))
		h.sendOK(weighted(server(uint8(50+i), 2, 1, callee), 8)) // its caller was sampled out
		want = append(want, "sampled out a->"+callee)
	}
	h.expireAll()
	h.events()

	h.st.Remap(h.rec.nodes.renumber(append([]string{"a"}, callees...)...), nil, h.rec.peers.renumber(peers...))
	for i, callee := range callees {
		h.sendOK(weighted(client(uint8(100+i), 1, 0, "a", callee+":80"), 4))
	}
	h.expireAll()
	require.Equal(t, want, h.events())
}

func TestOptionsValidate(t *testing.T) {
	rec := &recording{}
	ok := Options{TTL: time.Second, MaxItems: 1, MaxRecentSpans: 1, MaxAliases: 1, MaxOrphaned: 1, Start: time.Unix(1, 0), Recorder: rec, Peers: rec}
	require.NoError(t, ok.Validate())
	for name, change := range map[string]func(o *Options){
		"no TTL":        func(o *Options) { o.TTL = 0 },
		"no items":      func(o *Options) { o.MaxItems = 0 },
		"no recent":     func(o *Options) { o.MaxRecentSpans = 0 },
		"no aliases":    func(o *Options) { o.MaxAliases = 0 },
		"no orphaned":   func(o *Options) { o.MaxOrphaned = 0 },
		"no start":      func(o *Options) { o.Start = time.Time{} },
		"no recorder":   func(o *Options) { o.Recorder = nil },
		"no peer table": func(o *Options) { o.Peers = nil },
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			change(&o)
			require.Error(t, o.Validate())
			_, err := New(o)
			require.Error(t, err)
		})
	}
}
