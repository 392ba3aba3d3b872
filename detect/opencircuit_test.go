package detect_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

const circuitPairTTL = 5 * time.Second

// circuitWorld builds snapshots through a real graph.Graph, with a settable
// clock shared with a real resilience.Store feeding it breaker states.
type circuitWorld struct {
	now   time.Time
	g     *graph.Graph
	store *resilience.Store
	spans []graph.Span
	next  uint64
}

func newCircuitWorld(tb testing.TB) *circuitWorld {
	tb.Helper()
	w := &circuitWorld{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return w.now }
	var err error
	w.store, err = resilience.New(resilience.Options{Now: clock})
	require.NoError(tb, err)
	w.g, err = graph.New(graph.Options{
		Now: clock, PairTTL: circuitPairTTL, Circuits: w.store,
		MaxNodes: 20_000, MaxEdges: 100_000, MaxPending: 2_000_000,
	})
	require.NoError(tb, err)
	return w
}

func (w *circuitWorld) ids() (graph.TraceID, graph.SpanID) {
	w.next++
	var t graph.TraceID
	var s graph.SpanID
	binary.BigEndian.PutUint64(t[:8], w.next)
	binary.BigEndian.PutUint64(s[:], w.next)
	return t, s
}

// address is the peer address callers use for callee.
func address(callee string) graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeExternal, Name: callee + ":8080"}
}

func (w *circuitWorld) clientSpan(caller, callee string, ms float64, fail bool) graph.Span {
	t, id := w.ids()
	start := w.now.UnixNano()
	return graph.Span{Trace: t, ID: id, Parent: graph.SpanID{0xff}, Kind: graph.SpanClient, Service: caller,
		Start: start, End: start + int64(ms*float64(time.Millisecond)), Error: fail,
		Protocol: graph.ProtocolHTTP, Peer: address(callee), Operation: "GET /" + callee}
}

// answered adds n calls from caller that callee answers, taking ms at the
// caller; fail makes them fail on the callee's account (5xx).
func (w *circuitWorld) answered(caller, callee string, n int, ms float64, fail bool) *circuitWorld {
	for range n {
		c := w.clientSpan(caller, callee, ms, fail)
		_, sid := w.ids()
		w.spans = append(w.spans, c, graph.Span{Trace: c.Trace, ID: sid, Parent: c.ID, Kind: graph.SpanServer,
			Service: callee, Start: c.Start, End: c.End - int64(time.Millisecond/10), Error: fail, Protocol: graph.ProtocolHTTP})
	}
	return w
}

// unanswered adds n calls from caller to callee's address that no server
// span answers, taking ms at the caller and failing when fail.
func (w *circuitWorld) unanswered(caller, callee string, n int, ms float64, fail bool) *circuitWorld {
	for range n {
		w.spans = append(w.spans, w.clientSpan(caller, callee, ms, fail))
	}
	return w
}

// breaker reports a breaker's state as read age ago.
func (w *circuitWorld) breaker(tb testing.TB, service, name string, st resilience.CircuitState, age time.Duration) *circuitWorld {
	tb.Helper()
	require.Zero(tb, w.store.AddCircuits([]resilience.CircuitSample{{
		Time: w.now.Add(-age), BreakerKey: resilience.BreakerKey{Service: service, Name: name}, State: st, Source: "resilience4j",
	}}))
	return w
}

// snapshot consumes the spans added, lets the unanswered ones expire, and
// returns the snapshot.
func (w *circuitWorld) snapshot(tb testing.TB) *graph.Snapshot {
	tb.Helper()
	consumeAll(tb, w.g, w.spans)
	w.spans = nil
	w.now = w.now.Add(circuitPairTTL + time.Second)
	w.g.Expire()
	s, err := w.g.Snapshot(0)
	require.NoError(tb, err)
	return s
}

// later moves the clock past the window: later snapshots hold nothing of
// before.
func (w *circuitWorld) later() { w.now = w.now.Add(2 * time.Minute) }

func TestOpenCircuit(t *testing.T) {
	type want struct {
		severity   detect.Severity
		state      string
		from       string // normal_from; "" when the condition is seen only in metrics
		requests   uint64
		unanswered uint64
		p50        float64 // unanswered p50, ms
		normal     float64 // normal p50, ms; 0 when absolute
		breaker    map[string]any
	}
	oc := edgeID("orders", "stock")
	cases := []struct {
		name  string
		build func(t *testing.T, w *circuitWorld, d *detect.OpenCircuit) *graph.Snapshot
		want  map[string]want // edge id -> expected; nothing else fires
	}{
		{
			name: "breaker open: every call fails fast",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("web", "stock", 10, 20, false) // stock answers at its address
				w.unanswered("orders", "stock", 48, 0.4, true)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {detect.SeverityCritical, "open", "absolute", 48, 48, 0.4, 0, nil}},
		},
		{
			name: "half-open trickle",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 2, 21, false)
				w.unanswered("orders", "stock", 40, 0.4, true)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {detect.SeverityWarning, "half_open", "window", 42, 40, 0.4, 21, nil}},
		},
		{
			name: "normal latency remembered from an earlier snapshot",
			build: func(t *testing.T, w *circuitWorld, d *detect.OpenCircuit) *graph.Snapshot {
				require.Empty(t, d.Detect(context.Background(), w.answered("orders", "stock", 20, 100, false).snapshot(t)))
				w.later()
				// 12ms is slow for the absolute bound, fast against 100ms.
				return w.unanswered("orders", "stock", 30, 12, true).snapshot(t)
			},
			want: map[string]want{oc: {detect.SeverityCritical, "open", "history", 30, 30, 12, 100, nil}},
		},
		{
			name: "remembered latency says the failures are not fast",
			build: func(t *testing.T, w *circuitWorld, d *detect.OpenCircuit) *graph.Snapshot {
				require.Empty(t, d.Detect(context.Background(), w.answered("orders", "stock", 20, 20, false).snapshot(t)))
				w.later()
				return w.unanswered("orders", "stock", 30, 8, true).snapshot(t)
			},
			want: map[string]want{},
		},
		{
			name: "healthy look-alikes",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				// Down callee: calls time out slowly. An outage, not a breaker.
				w.answered("orders", "stock", 2, 20, false)
				w.unanswered("orders", "stock", 30, 5000, true)
				// A few fast failures.
				w.answered("web", "cart", 10, 20, false)
				w.unanswered("orders", "cart", 4, 0.4, true)
				// 5xx errors from a callee the calls do reach.
				w.answered("orders", "payment", 50, 2, true)
				// Partial failure: 40% of the calls get through.
				w.answered("orders", "users", 20, 20, false)
				w.unanswered("orders", "users", 30, 0.4, true)
				// Unanswered yet not failing.
				w.answered("web", "audit", 10, 20, false)
				w.unanswered("orders", "audit", 30, 0.4, false)
				return w.snapshot(t)
			},
			want: map[string]want{},
		},
		{
			name: "metric-only open breaker (resilience4j)",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 30, 20, false)
				w.answered("orders", "payment", 30, 20, false)
				w.breaker(t, "orders", "stock", resilience.CircuitOpen, 0)
				w.breaker(t, "orders", "payment", resilience.CircuitClosed, 0)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {severity: detect.SeverityCritical, state: "open", requests: 30,
				breaker: map[string]any{"name": "stock", "state": "open", "source": "metrics"}}},
		},
		{
			name: "metric-only half-open breaker",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 3, 20, false)
				w.breaker(t, "orders", "stock", resilience.CircuitHalfOpen, 0)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {severity: detect.SeverityWarning, state: "half_open", requests: 3,
				breaker: map[string]any{"name": "stock", "state": "half_open", "source": "metrics"}}},
		},
		{
			name: "Envoy cluster name",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 5, 20, false)
				w.answered("orders", "stock-legacy", 5, 20, false)
				w.answered("orders", "payment", 5, 20, false)
				w.answered("web", "stock", 5, 20, false) // another caller: not its breaker
				w.breaker(t, "orders", "outbound|9090||stock.default.svc.cluster.local", resilience.CircuitForcedOpen, 0)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {severity: detect.SeverityCritical, state: "open", requests: 5,
				breaker: map[string]any{"name": "outbound|9090||stock.default.svc.cluster.local", "state": "forced_open", "source": "metrics"}}},
		},
		{
			name: "stale and closed breakers ignored",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 5, 20, false)
				w.answered("orders", "payment", 5, 20, false)
				w.breaker(t, "orders", "stock", resilience.CircuitOpen, 3*time.Minute)
				w.breaker(t, "orders", "payment", resilience.CircuitClosed, 0)
				w.breaker(t, "orders", "users", resilience.CircuitDisabled, 0)
				return w.snapshot(t)
			},
			want: map[string]want{},
		},
		{
			name: "traces and metrics agree: one observation",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 1, 20, false)
				w.unanswered("orders", "stock", 20, 0.4, true)
				w.breaker(t, "orders", "stock", resilience.CircuitOpen, 0)
				return w.snapshot(t)
			},
			// The breaker's open outranks the trickle of the window.
			want: map[string]want{oc: {detect.SeverityCritical, "open", "window", 21, 20, 0.4, 20,
				map[string]any{"name": "stock", "state": "open", "source": "metrics"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newCircuitWorld(t)
			d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
			require.Equal(t, detect.KindOpenCircuit, d.Kind())
			s := tc.build(t, w, d)
			obs := d.Detect(context.Background(), s)

			gotIDs, wantIDs := []string{}, []string{}
			for _, o := range obs {
				gotIDs = append(gotIDs, o.Subject.EdgeID)
			}
			for id := range tc.want {
				wantIDs = append(wantIDs, id)
			}
			require.ElementsMatch(t, wantIDs, gotIDs)
			got := byEdge(obs)
			for id, wt := range tc.want {
				o := got[id]
				e := findEdge(t, s, id)
				src, _ := s.Node(e.Source)
				dst, _ := s.Node(e.Target)
				require.Equal(t, detect.KindOpenCircuit, o.Kind)
				require.Equal(t, detect.Subject{Source: src.Name, Target: dst.Name, EdgeID: id}, o.Subject)
				require.Equal(t, wt.severity, o.Severity)
				require.NotEmpty(t, o.Summary)
				ev := o.Evidence
				require.Equal(t, wt.state, ev["state"])
				require.Equal(t, wt.requests, ev["requests"])
				if wt.from != "" {
					require.Equal(t, wt.from, ev["normal_from"])
					require.Equal(t, wt.unanswered, ev["unanswered"])
					require.Equal(t, wt.requests-wt.unanswered, ev["answered"])
					require.InDelta(t, float64(wt.unanswered)/float64(wt.requests), ev["unanswered_ratio"], 1e-4)
					require.InDelta(t, wt.p50, ev["unanswered_p50_ms"], wt.p50*0.02)
					if wt.normal > 0 {
						require.InDelta(t, wt.normal, ev["normal_p50_ms"], wt.normal*0.02)
						require.InDelta(t, 0.25*ev["normal_p50_ms"].(float64), ev["fast_bound_ms"], 1e-3)
					} else {
						require.NotContains(t, ev, "normal_p50_ms")
						require.Equal(t, 10.0, ev["fast_bound_ms"])
					}
				} else {
					require.NotContains(t, ev, "normal_from", "no trace condition")
				}
				if wt.breaker != nil {
					b := ev["breaker"].(map[string]any)
					require.IsType(t, time.Time{}, b["updated_at"])
					require.Equal(t, 1, b["instances"], "one instance reports")
					require.Equal(t, map[bool]int{true: 1, false: 0}[wt.breaker["state"] == "open" || wt.breaker["state"] == "forced_open"], b["open_instances"])
					delete(b, "updated_at")
					delete(b, "instances")
					delete(b, "open_instances")
					require.Equal(t, wt.breaker, b)
				} else {
					require.NotContains(t, ev, "breaker")
				}
				_, err := json.Marshal(ev)
				require.NoError(t, err)
			}
		})
	}
}

func TestOpenCircuitEvidence(t *testing.T) {
	w := newCircuitWorld(t)
	s := w.answered("orders", "stock", 2, 21, false).unanswered("orders", "stock", 48, 0.4, true).snapshot(t)
	e := findEdge(t, s, edgeID("orders", "stock"))
	obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 1)
	o := obs[0]
	require.Equal(t, map[string]any{
		"state":             "half_open",
		"unanswered":        uint64(48),
		"requests":          uint64(50),
		"answered":          uint64(2),
		"unanswered_ratio":  0.96,
		"unanswered_p50_ms": e.UnansweredLatency.P50,
		"normal_p50_ms":     e.ClientLatency.P50,
		"normal_from":       "window",
		"fast_bound_ms":     math.Round(0.25*e.ClientLatency.P50*1e4) / 1e4,
	}, o.Evidence)
	require.Equal(t, detect.SeverityWarning, o.Severity)
	require.Equal(t, "orders' calls to stock fail fast without reaching it: 48 of 50 calls in the last 60s never reached stock, failing in 0.4 ms against 21 ms normally (circuit half-open)", o.Summary)

	w = newCircuitWorld(t)
	s = w.answered("web", "stock", 1, 20, false).unanswered("cart", "stock", 10, 0.4, true).snapshot(t)
	obs = detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 1)
	require.Equal(t, "cart's calls to stock fail fast without reaching it: 10 of 10 calls in the last 60s never reached stock, failing in 0.4 ms, with no normal latency known to compare (fast below 10 ms) (circuit open)", obs[0].Summary)
}

func TestOpenCircuitMetricSummaries(t *testing.T) {
	w := newCircuitWorld(t)
	w.answered("orders", "stock", 3, 20, false)
	w.answered("orders", "payment", 3, 20, false).unanswered("orders", "payment", 6, 0.5, true)
	w.breaker(t, "orders", "stock", resilience.CircuitOpen, 0)
	w.breaker(t, "orders", "payment_primary", resilience.CircuitHalfOpen, 0)
	w.breaker(t, "billing", "ledger", resilience.CircuitOpen, 0)
	s := w.snapshot(t)
	obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
	got := map[string]string{}
	for _, o := range obs {
		got[o.Subject.EdgeID] = o.Summary
	}
	require.Equal(t, map[string]string{
		"circuit:billing/ledger": "billing's circuit breaker for ledger reports open (metrics), so its calls fail fast without reaching ledger",
		edgeID("orders", "stock"): "orders' circuit breaker for stock reports open (metrics), so its calls fail fast without reaching stock; " +
			"3 of 3 calls in the last 60s reached it",
		// 3 of 9 answered: partial failure in traces; the breaker speaks.
		edgeID("orders", "payment"): "orders' circuit breaker \"payment_primary\" for payment reports half_open (metrics), so its calls fail fast without reaching payment; " +
			"3 of 9 calls in the last 60s reached it",
	}, got)
}

func TestOpenCircuitBreakerMatching(t *testing.T) {
	type callee struct {
		name  string
		calls int
	}
	for _, tc := range []struct {
		breaker string
		callees []callee
		want    string // edge id
	}{
		{"stock", []callee{{"stock", 5}, {"stock-legacy", 50}}, edgeID("orders", "stock")},
		{"outbound|9090||stock.default.svc.cluster.local", []callee{{"payment", 5}, {"stock", 5}}, edgeID("orders", "stock")},
		{"stock_primary", []callee{{"stock", 5}}, edgeID("orders", "stock")},
		{"stock:8080", []callee{{"stock", 5}}, edgeID("orders", "stock")},
		// An exact name beats a component, whatever the traffic.
		{"stock.default", []callee{{"stock", 50}, {"stock.default", 5}}, edgeID("orders", "stock.default")},
		// Among component matches, the busiest edge.
		{"a.b", []callee{{"a", 5}, {"b", 10}}, edgeID("orders", "b")},
		// '-' is part of service names, not a separator.
		{"stock-cluster", []callee{{"stock", 5}}, "circuit:orders/stock-cluster"},
	} {
		t.Run(tc.breaker, func(t *testing.T) {
			w := newCircuitWorld(t)
			for _, c := range tc.callees {
				w.answered("orders", c.name, c.calls, 20, false)
			}
			w.breaker(t, "orders", tc.breaker, resilience.CircuitOpen, 0)
			obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), w.snapshot(t))
			require.Len(t, obs, 1)
			require.Equal(t, tc.want, obs[0].Subject.EdgeID)
		})
	}
}

func TestOpenCircuitBreakerWithoutEdge(t *testing.T) {
	w := newCircuitWorld(t)
	w.answered("orders", "payment", 5, 20, false)
	w.breaker(t, "orders", "stock", resilience.CircuitOpen, 0)
	w.breaker(t, "orders", "a/b%c", resilience.CircuitHalfOpen, 0)
	obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), w.snapshot(t))
	require.Len(t, obs, 2)
	require.Equal(t, detect.Subject{Source: "orders", Target: "a/b%c", EdgeID: "circuit:orders/a%2Fb%25c"}, obs[0].Subject)
	require.Equal(t, detect.SeverityWarning, obs[0].Severity)
	require.Equal(t, detect.Subject{Source: "orders", Target: "stock", EdgeID: "circuit:orders/stock"}, obs[1].Subject)
	require.Equal(t, detect.SeverityCritical, obs[1].Severity)
	require.Equal(t, "open", obs[1].Evidence["state"])
	require.NotContains(t, obs[1].Evidence, "requests", "no edge, no call counts")
}

func TestOpenCircuitResolves(t *testing.T) {
	w := newCircuitWorld(t)
	clock := w.now
	e, err := detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{detect.NewOpenCircuit(detect.OpenCircuitOptions{})},
		Now:       func() time.Time { return clock },
	})
	require.NoError(t, err)
	ctx := context.Background()

	open := w.answered("web", "stock", 5, 20, false).unanswered("orders", "stock", 20, 0.4, true).snapshot(t)
	e.Eval(ctx, open)
	clock = clock.Add(5 * time.Second)
	e.Eval(ctx, open)
	f := e.Findings(detect.StateFiring)
	require.Len(t, f, 1)
	require.Equal(t, edgeID("orders", "stock"), f[0].Subject.EdgeID)
	require.Equal(t, detect.SeverityCritical, f[0].Severity)

	// Calls reach stock again.
	w.later()
	healed := w.answered("orders", "stock", 20, 20, false).snapshot(t)
	require.Empty(t, detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(ctx, healed))
	for range 3 {
		clock = clock.Add(5 * time.Second)
		e.Eval(ctx, healed)
	}
	require.Empty(t, e.Findings(detect.StateFiring))
	r := e.Findings(detect.StateResolved)
	require.Len(t, r, 1)
	require.Equal(t, f[0].ID, r[0].ID)
}

func TestOpenCircuitOptions(t *testing.T) {
	w := newCircuitWorld(t)
	w.answered("web", "stock", 5, 20, false).answered("web", "cart", 5, 20, false)
	// Few calls.
	w.unanswered("orders", "stock", 4, 0.4, true)
	// 40% answered.
	w.answered("orders", "cart", 10, 20, false).unanswered("orders", "cart", 15, 0.4, true)
	// 3ms with no normal latency known.
	w.answered("web", "users", 5, 20, false).unanswered("billing", "users", 10, 3, true)
	s := w.snapshot(t)

	d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
	require.Equal(t, detect.OpenCircuitOptions{
		MinCalls: 5, MinUnansweredRatio: 0.5, FastRatio: 0.25, FastAbsolute: 10 * time.Millisecond,
		HalfOpenMaxAnswered: 0.2, MaxRemembered: 50_000,
	}, d.Options())
	for _, tc := range []struct {
		name string
		opts detect.OpenCircuitOptions
		want []string
	}{
		{"defaults", detect.OpenCircuitOptions{}, []string{edgeID("billing", "users")}},
		{"fewer calls", detect.OpenCircuitOptions{MinCalls: 4}, []string{edgeID("billing", "users"), edgeID("orders", "stock")}},
		{"more answered allowed", detect.OpenCircuitOptions{HalfOpenMaxAnswered: 0.5}, []string{edgeID("billing", "users"), edgeID("orders", "cart")}},
		{"higher unanswered floor", detect.OpenCircuitOptions{HalfOpenMaxAnswered: 0.5, MinUnansweredRatio: 0.7}, []string{edgeID("billing", "users")}},
		{"tighter absolute bound", detect.OpenCircuitOptions{FastAbsolute: 2 * time.Millisecond}, nil},
		{"tighter ratio", detect.OpenCircuitOptions{HalfOpenMaxAnswered: 0.5, FastRatio: 0.01}, []string{edgeID("billing", "users")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range detect.NewOpenCircuit(tc.opts).Detect(context.Background(), s) {
				got = append(got, o.Subject.EdgeID)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestOpenCircuitForgetsOldestEdges(t *testing.T) {
	w := newCircuitWorld(t)
	d := detect.NewOpenCircuit(detect.OpenCircuitOptions{MaxRemembered: 2})
	ctx := context.Background()
	ids := func(obs []detect.Observation) []string {
		var got []string
		for _, o := range obs {
			got = append(got, o.Subject.EdgeID)
			require.Equal(t, "history", o.Evidence["normal_from"])
		}
		return got
	}
	require.Empty(t, d.Detect(ctx, w.answered("a", "b", 5, 100, false).answered("a", "c", 5, 100, false).snapshot(t)))
	w.later()
	// 12ms is fast only against the remembered 100ms. a->b is seen (open),
	// a->c is not.
	require.Equal(t, []string{edgeID("a", "b")}, ids(d.Detect(ctx, w.unanswered("a", "b", 10, 12, true).snapshot(t))))
	w.later()
	require.Empty(t, d.Detect(ctx, w.answered("a", "d", 5, 100, false).snapshot(t)))
	w.later()
	// Three edges remembered, two kept: a->c, seen least recently, is
	// forgotten; a->b stayed open all along and keeps its normal latency.
	s := w.unanswered("a", "b", 10, 12, true).unanswered("a", "c", 10, 12, true).unanswered("a", "d", 10, 12, true).snapshot(t)
	require.Equal(t, []string{edgeID("a", "b"), edgeID("a", "d")}, ids(d.Detect(ctx, s)))
}

func TestOpenCircuitCancelled(t *testing.T) {
	s := newCircuitWorld(t).answered("web", "b", 1, 20, false).unanswered("a", "b", 10, 0.4, true).snapshot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
	require.Nil(t, d.Detect(ctx, s))
	require.Nil(t, d.Detect(context.Background(), nil))
	require.Len(t, d.Detect(context.Background(), s), 1)
}

func TestOpenCircuitLargeGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("large graph")
	}
	s := largeCircuitSnapshot(t)
	obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 2500+1) // the tripped edges, and the breaker no edge matches
	require.IsNonDecreasing(t, func() []string {
		var ids []string
		for _, o := range obs {
			ids = append(ids, o.Subject.EdgeID)
		}
		return ids
	}())
}

// largeCircuitSnapshot builds a snapshot of 10,000 services and 50,000 sync
// edges, one edge in twenty in a half-open circuit, with a few hundred
// breakers reporting.
func largeCircuitSnapshot(tb testing.TB) *graph.Snapshot {
	tb.Helper()
	const nodes, edges = 10_000, 50_000
	rng := rand.New(rand.NewPCG(3, 4))
	name := func(i int) string { return "svc" + strconv.Itoa(i) }
	w := newCircuitWorld(tb)
	seen := make(map[[2]int]bool, edges)
	var samples []resilience.CircuitSample
	for len(seen) < edges {
		i, j := rng.IntN(nodes), rng.IntN(nodes)
		if i == j || seen[[2]int{i, j}] {
			continue
		}
		seen[[2]int{i, j}] = true
		w.answered(name(i), name(j), 1, 20, false)
		if len(seen)%20 == 0 {
			w.unanswered(name(i), name(j), 10, 0.4, true)
		}
		if len(seen)%100 == 1 {
			samples = append(samples, resilience.CircuitSample{Time: w.now,
				BreakerKey: resilience.BreakerKey{Service: name(i), Name: name(j)}, State: resilience.CircuitClosed})
		}
	}
	samples = append(samples, resilience.CircuitSample{Time: w.now,
		BreakerKey: resilience.BreakerKey{Service: "svc0", Name: "nowhere"}, State: resilience.CircuitOpen})
	require.Zero(tb, w.store.AddCircuits(samples))
	s := w.snapshot(tb)
	require.Len(tb, s.Nodes, nodes)
	require.Len(tb, s.Edges, edges)
	return s
}

func BenchmarkOpenCircuit(b *testing.B) {
	s := largeCircuitSnapshot(b)
	d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if len(d.Detect(ctx, s)) == 0 {
			b.Fatal("no open circuits")
		}
	}
}
