package graph

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// edgeCount is what a rules test asserts of one edge.
type edgeCount struct {
	requests, errors, retries, unanswered uint64
}

func (c edgeCount) String() string {
	return fmt.Sprintf("req=%d err=%d retry=%d unanswered=%d", c.requests, c.errors, c.retries, c.unanswered)
}

// permutations returns every order of n items (n! of them).
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// runBatches delivers batches in the given order, gap apart (the way
// exporters of different services deliver one trace), lets every half-edge
// expire and returns the edges with their counts.
// A self-edge fails the test unless allowSelf.
func runBatches(t *testing.T, batches [][]Span, order []int, gap time.Duration, allowSelf bool) (map[string]edgeCount, *Graph) {
	t.Helper()
	g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	for _, i := range order {
		rej, why := g.ConsumeSpans(slices.Clone(batches[i]))
		require.Zero(t, rej, why)
		clk.advance(gap)
	}
	clk.advance(30 * time.Second)
	g.Expire()
	require.Zero(t, g.store.Len(), "everything expired")
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	got := map[string]edgeCount{}
	for _, e := range snap.Edges {
		got[e.ID] = edgeCount{e.Requests, e.Errors, e.Retries, e.Unanswered}
		if e.Source == e.Target && !allowSelf {
			t.Errorf("self-edge %s", e.ID)
		}
		require.Equal(t, e.Source == e.Target, e.SelfCall, "a self-call is marked: %s", e.ID)
	}
	return got, g
}

// TestPlacementRules: each hop is drawn once, from the right caller to the
// right callee, in every order the batches of one trace can arrive in, a
// few seconds apart (several exporters) or together.
func TestPlacementRules(t *testing.T) {
	tr := tid(1)
	selfPeer := func(s Span, name string) Span {
		s.Peer, s.SelfPeer = NodeKey{Kind: NodeExternal, Name: name}, true
		return s
	}
	internal := func(id, parent SpanID, svc string, start, dur int64) Span {
		return Span{Trace: tr, ID: id, Parent: parent, Kind: SpanInternal, Service: svc, Start: start, End: start + dur, Operation: "work"}
	}
	withErr := func(s Span) Span { s.Error = true; return s }
	cases := []struct {
		name      string
		batches   [][]Span
		want      map[string]edgeCount
		allowSelf bool
	}{
		{
			// Jaeger's HotROD: customer's handler runs a query through a
			// tracer named "mysql", whose CLIENT span names itself.
			name: "client span naming its own service (HotROD's mysql)",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "customer", 0, 300*ms)},
				{selfPeer(client(tr, sid(2), sid(1), "mysql", 10*ms, 280*ms), "mysql")},
			},
			want: map[string]edgeCount{
				"client:client->service:customer http": {1, 0, 0, 0},
				"service:customer->service:mysql http": {1, 0, 0, 0},
			},
		},
		{
			name: "internal span of another service under a server span (OpenTracing-era database client)",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "driver", 0, 30*ms)},
				{internal(sid(2), sid(1), "redis", 1*ms, 2*ms), internal(sid(3), sid(1), "redis", 4*ms, 2*ms)},
				{internal(sid(4), sid(1), "driver", 7*ms, 1*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:driver http":     {1, 0, 0, 0},
				"service:driver->service:redis internal": {2, 0, 0, 0},
			},
		},
		{
			name: "server span whose parent is an internal span of another service",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 30*ms), internal(sid(2), sid(1), "web", 1*ms, 20*ms)},
				{server(tr, sid(3), sid(2), "api", 2*ms, 10*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http": {1, 0, 0, 0},
				"service:web->service:api http":   {1, 0, 0, 0},
			},
		},
		{
			name: "a proper client/server pair wins: no second edge from the parent",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 30*ms), client(tr, sid(2), sid(1), "web", 1*ms, 20*ms)},
				{server(tr, sid(3), sid(2), "api", 2*ms, 10*ms), internal(sid(4), sid(3), "api", 3*ms, 1*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http": {1, 0, 0, 0},
				"service:web->service:api http":   {1, 0, 0, 0},
			},
		},
		{
			name: "callee's first span is no server span: it answers the client",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 30*ms), client(tr, sid(2), sid(1), "web", 1*ms, 20*ms)},
				{internal(sid(3), sid(2), "legacy", 2*ms, 10*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http":  {1, 0, 0, 0},
				"service:web->service:legacy http": {1, 0, 0, 0},
			},
		},
		{
			// The Zipkin receiver and B3 single-header propagation report
			// the client and the server of a call under one span id.
			name: "Zipkin shared span",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 30*ms), client(tr, sid(2), sid(1), "web", 1*ms, 20*ms)},
				{server(tr, sid(2), sid(1), "api", 2*ms, 10*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http": {1, 0, 0, 0},
				"service:web->service:api http":   {1, 0, 0, 0},
			},
		},
		{
			// grpc-go retries: one CLIENT span, a SERVER span per attempt
			// (grpc-previous-rpc-attempts counts them up).
			name: "gRPC retry attempts answer one client span",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 60*ms), client(tr, sid(2), sid(1), "web", 1*ms, 50*ms)},
				{withErr(server(tr, sid(3), sid(2), "api", 2*ms, 5*ms))},
				{server(tr, sid(4), sid(2), "api", 20*ms, 10*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http": {1, 0, 0, 0},
				"service:web->service:api http":   {2, 1, 1, 0},
			},
		},
		{
			name: "a real call of a service to itself over the network is kept",
			batches: [][]Span{
				{server(tr, sid(1), SpanID{}, "web", 0, 60*ms), client(tr, sid(2), sid(1), "web", 1*ms, 50*ms)},
				{server(tr, sid(3), sid(2), "web", 2*ms, 5*ms)},
			},
			want: map[string]edgeCount{
				"client:client->service:web http": {1, 0, 0, 0},
				"service:web->service:web http":   {1, 0, 0, 0},
			},
			allowSelf: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, gap := range []time.Duration{0, 3 * time.Second} {
				for _, order := range permutations(len(tc.batches)) {
					t.Run(fmt.Sprintf("gap=%v order=%v", gap, order), func(t *testing.T) {
						got, _ := runBatches(t, tc.batches, order, gap, tc.allowSelf)
						require.Equal(t, tc.want, got)
					})
				}
			}
		})
	}
}

// TestLateSpansAddNoTraffic: a client span arriving after its server span
// was given up on (and the other way round) adds neither a request nor an
// unanswered call.
func TestLateSpansAddNoTraffic(t *testing.T) {
	for _, late := range []string{"client", "server"} {
		t.Run("late "+late, func(t *testing.T) {
			g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
			tr := tid(1)
			// web has been seen answering api's address, so an unanswered
			// call to it would count as unanswered on web -> api.
			learn := client(tid(9), sid(1), SpanID{}, "web", 0, ms)
			learn.Peer = NodeKey{Kind: NodeExternal, Name: "api:8080"}
			c := client(tr, sid(2), SpanID{}, "web", 0, 20*ms)
			c.Peer = learn.Peer
			sv := server(tr, sid(3), sid(2), "api", ms, 10*ms)
			first, second := sv, c
			if late == "server" {
				first, second = c, sv
			}
			for _, b := range [][]Span{{learn, server(tid(9), sid(2), sid(1), "api", 0, ms)}, {first}} {
				rej, why := g.ConsumeSpans(b)
				require.Zero(t, rej, why)
			}
			clk.advance(15 * time.Second)
			g.Expire()
			rej, why := g.ConsumeSpans([]Span{second})
			require.Zero(t, rej, why)
			clk.advance(15 * time.Second)
			g.Expire()
			require.Zero(t, g.store.Len())
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			var total, unanswered uint64
			for _, e := range snap.Edges {
				if e.Target == "service:api" {
					total += e.Requests
					unanswered += e.Unanswered
				}
			}
			require.EqualValues(t, 2, total, "the learning call and this one, once")
			if late == "server" {
				require.EqualValues(t, 1, unanswered, "the client's call was given up as unanswered before its server came")
			} else {
				require.Zero(t, unanswered)
			}
			require.EqualValues(t, 1, testutil.ToFloat64(g.m.dropped.WithLabelValues("late_"+late)))
		})
	}
}

// TestAliasesArePerCaller: one address (a sidecar on localhost) answered
// by different services for different callers: unanswered calls land on
// each caller's own callee.
func TestAliasesArePerCaller(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	sidecar := NodeKey{Kind: NodeExternal, Name: "localhost:15001"}
	call := func(tr TraceID, caller string) Span {
		c := client(tr, sid(1), SpanID{}, caller, 0, ms)
		c.Peer = sidecar
		return c
	}
	rej, why := g.ConsumeSpans([]Span{
		call(tid(1), "a"), server(tid(1), sid(2), sid(1), "b", 0, ms),
		call(tid(2), "c"), server(tid(2), sid(2), sid(1), "d", 0, ms),
		call(tid(3), "c"), // unanswered
		call(tid(4), "e"), // unanswered, from a caller that never saw it answered
	})
	require.Zero(t, rej, why)
	clk.advance(15 * time.Second)
	g.Expire()
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	require.EqualValues(t, 1, edgeByID(t, snap, "service:c->service:d http").Unanswered)
	require.Zero(t, edgeByID(t, snap, "service:a->service:b http").Unanswered)
	require.EqualValues(t, 1, edgeByID(t, snap, "service:e->external:localhost:15001 http").Requests,
		"an address two services answer is no alias for a caller that saw neither")
}

// TestUnplacedSpansAreCounted: what no rule could place is counted by
// service and reason, with example span names.
func TestUnplacedSpansAreCounted(t *testing.T) {
	g, clk, reg := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	anon := client(tid(1), sid(1), SpanID{}, "web", 0, ms)
	anon.Operation = "HTTP GET"
	orphan := Span{Trace: tid(2), ID: sid(2), Parent: sid(7), Kind: SpanInternal, Service: "worker", Start: 0, End: ms, Operation: "process-job"}
	rej, why := g.ConsumeSpans([]Span{anon, orphan})
	require.Zero(t, rej, why)
	clk.advance(15 * time.Second)
	g.Expire()
	rep, err := g.Unplaced(0)
	require.NoError(t, err)
	require.Equal(t, []Unplaced{
		{Service: "web", Reason: ReasonClientNoPeer, Spans: 1, Examples: []string{"HTTP GET"}},
		{Service: "worker", Reason: ReasonParentNotSeen, Spans: 1, Examples: []string{"process-job"}},
	}, rep.Unplaced)
	_, err = g.Unplaced(2 * time.Hour)
	require.ErrorIs(t, err, ErrWindowTooLong)
	n, err := testutil.GatherAndCount(reg, "cartograph_graph_unplaced_spans_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	clk.advance(2 * time.Minute)
	rep, err = g.Unplaced(0)
	require.NoError(t, err)
	require.Empty(t, rep.Unplaced, "counted over the window")
}

// TestRepeatRuleKnowsItsCalls: repeats after a failure are retries only
// when they are the same call (same operation and target), and a throttled
// call (HTTP 429) is a failure callers retry.
func TestRepeatRuleKnowsItsCalls(t *testing.T) {
	get := func(id byte, path string, start int64) Span {
		c := client(tid(1), sid(id), sid(100), "web", start, 5*ms)
		c.Operation, c.Target, c.Peer = "GET", path, NodeKey{Kind: NodeExternal, Name: "api:8080"}
		return c
	}
	cases := []struct {
		name                    string
		spans                   func() []Span
		requests, retries, errs uint64
	}{
		{"a loop of GETs to ten paths after one failure: no retry", func() []Span {
			var out []Span
			for i := range 10 {
				c := get(byte(i+1), fmt.Sprintf("/items/%d", i), int64(i)*10*ms)
				c.Error = i == 0
				out = append(out, c)
			}
			return out
		}, 10, 0, 1},
		{"the same GET three times after a failure: two retries", func() []Span {
			var out []Span
			for i := range 3 {
				c := get(byte(i+1), "/items/1", int64(i)*10*ms)
				c.Error = i < 2
				out = append(out, c)
			}
			return out
		}, 3, 2, 2},
		{"a 429 and its repeat: one retry, no error", func() []Span {
			a, b := get(1, "/quota", 0), get(2, "/quota", 20*ms)
			a.Throttled = true
			return []Span{b, a}
		}, 2, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spans := tc.spans()
			var servers []Span
			for _, c := range spans {
				sv := server(c.Trace, SpanID{c.ID[0], 9}, c.ID, "api", c.Start+ms, 3*ms)
				sv.Error = c.Error
				servers = append(servers, sv)
			}
			got, _ := runBatches(t, [][]Span{spans, servers}, []int{0, 1}, 0, false)
			require.Equal(t, edgeCount{requests: tc.requests, errors: tc.errs, retries: tc.retries}, got["service:web->service:api http"])
		})
	}
}

// TestSampledTraffic: calls of sampled traces count as the calls they
// stand for and say so; a sampled call whose other half was sampled out
// is neither an unanswered call nor a call from an uninstrumented client.
func TestSampledTraffic(t *testing.T) {
	sampled := func(s Span) Span { s.Weight = 4; return s }
	addr := NodeKey{Kind: NodeExternal, Name: "api:8080"}
	call := func(tr TraceID) Span {
		c := sampled(client(tr, sid(1), SpanID{}, "web", 0, ms))
		c.Peer = addr
		return c
	}

	t.Run("pairs count as estimates", func(t *testing.T) {
		var spans []Span
		for i := range 10 {
			spans = append(spans, call(tid(byte(i))), sampled(server(tid(byte(i)), sid(2), sid(1), "api", 0, ms)))
		}
		g, _, _ := newTestGraph(t, Options{})
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		e := edgeByID(t, snap, "service:web->service:api http")
		require.EqualValues(t, 40, e.Requests)
		require.True(t, e.Estimated)
		require.InDelta(t, 0.25, *e.SampleRatio, 1e-9)
	})
	for _, disagree := range []string{"a pair kept at two weights", "a server span whose caller was not kept"} {
		t.Run("server sampled out, known by "+disagree, func(t *testing.T) {
			g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
			learn := client(tid(9), sid(1), SpanID{}, "web", 0, ms)
			learn.Peer = addr
			// web samples everything, api one call in four: the pair says
			// the samplers disagree.
			spans := []Span{learn, sampled(server(tid(9), sid(2), sid(1), "api", 0, ms))}
			if disagree != "a pair kept at two weights" {
				// Samplers at one weight: only an orphan server says so.
				learn = call(tid(9))
				spans = []Span{learn, sampled(server(tid(9), sid(2), sid(1), "api", 0, ms)), sampled(server(tid(8), sid(2), sid(7), "api", 0, ms))}
			}
			rej, why := g.ConsumeSpans(spans)
			require.Zero(t, rej, why)
			clk.advance(15 * time.Second)
			g.Expire()
			rej, why = g.ConsumeSpans([]Span{call(tid(1))})
			require.Zero(t, rej, why)
			clk.advance(15 * time.Second)
			g.Expire()
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			e := edgeByID(t, snap, "service:web->service:api http")
			require.Zero(t, e.Unanswered, "its server was sampled out")
			require.EqualValues(t, max(learn.Weight, 1)+4, float64(e.Requests), "each kept client span counts its own weight")
		})
	}
	t.Run("consistent sampling keeps unanswered calls", func(t *testing.T) {
		g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
		rej, why := g.ConsumeSpans([]Span{call(tid(9)), sampled(server(tid(9), sid(2), sid(1), "api", 0, ms)), call(tid(1))})
		require.Zero(t, rej, why)
		clk.advance(15 * time.Second)
		g.Expire()
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		require.EqualValues(t, 4, edgeByID(t, snap, "service:web->service:api http").Unanswered)
	})
	t.Run("caller sampled out", func(t *testing.T) {
		g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
		rej, why := g.ConsumeSpans([]Span{sampled(server(tid(1), sid(2), sid(1), "api", 0, ms))})
		require.Zero(t, rej, why)
		clk.advance(15 * time.Second)
		g.Expire()
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		require.Empty(t, snap.Edges, "no invented uninstrumented client")
		rep, err := g.Unplaced(0)
		require.NoError(t, err)
		require.Equal(t, []Unplaced{{Service: "api", Reason: ReasonSampledOut, Spans: 1}}, rep.Unplaced)
	})
}

// TestLateConsumerKeepsItsDelay: a message consumed long after its
// producer's half-edge expired (a consumer falling behind by more than the
// pair TTL) still gives its producer-to-consumer delay.
func TestLateConsumerKeepsItsDelay(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{PairTTL: 10 * time.Second})
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	start := clk.now().UnixNano()
	p := Span{Trace: tid(1), ID: sid(1), Kind: SpanProducer, Service: "shop", Start: start, End: start + ms,
		Protocol: ProtocolKafka, Messaging: MessagingPublish, Destination: orders}
	rej, why := g.ConsumeSpans([]Span{p})
	require.Zero(t, rej, why)
	clk.advance(45 * time.Second)
	g.Expire()
	require.Zero(t, g.store.Len(), "the producer's half-edge expired")
	c := Span{Trace: tid(1), ID: sid(2), Parent: sid(1), Kind: SpanConsumer, Service: "billing", Start: start + 40*int64(time.Second), End: start + 41*int64(time.Second),
		Protocol: ProtocolKafka, Messaging: MessagingProcess, Destination: orders, ConsumerGroup: "billing"}
	rej, why = g.ConsumeSpans([]Span{c})
	require.Zero(t, rej, why)
	require.Zero(t, g.store.Len(), "no waiter for a producer that already came")
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing")
	require.NotNil(t, e.Delay)
	require.InDelta(t, 40_000, e.Delay.P50, 400)
}

// TestUnansweredFailureKinds: an unanswered call to a service the caller
// has seen answer counts as refused or rejected when its error says the
// caller could not connect or its breaker turned the call away, so that
// open_circuit can tell a callee that is down from a breaker that is open.
func TestUnansweredFailureKinds(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{PairTTL: time.Second})
	peer := NodeKey{Kind: NodeExternal, Name: "stock:8080"}
	c := client(tid(1), sid(1), SpanID{}, "orders", 0, 20*ms)
	c.Peer = peer
	rej, why := g.ConsumeSpans([]Span{c, server(tid(1), sid(2), sid(1), "stock", ms, 18*ms)})
	require.Zero(t, rej, why)
	var failed []Span
	for i, f := range []Failure{FailureUnreachable, FailureUnreachable, FailureRejected, FailureUnknown} {
		c := client(tid(byte(10+i)), sid(1), SpanID{}, "orders", 0, ms/2)
		c.Peer, c.Error, c.Failure = peer, true, f
		failed = append(failed, c)
	}
	rej, why = g.ConsumeSpans(failed)
	require.Zero(t, rej, why)
	clk.advance(2 * time.Second)
	g.Expire()
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "service:orders->service:stock http")
	require.EqualValues(t, 4, e.Unanswered)
	require.EqualValues(t, 2, e.Stats.Refused)
	require.EqualValues(t, 1, e.Stats.Rejected)
	require.NotNil(t, e.Recent)
	require.EqualValues(t, 2, e.Recent.Refused)
	require.EqualValues(t, 1, e.Recent.Rejected)
}
