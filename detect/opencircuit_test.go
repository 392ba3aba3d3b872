package detect_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
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
		severity   finding.Severity
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
			want: map[string]want{oc: {finding.SeverityCritical, "open", "absolute", 48, 48, 0.4, 0, nil}},
		},
		{
			name: "half-open trickle",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 2, 21, false)
				w.unanswered("orders", "stock", 40, 0.4, true)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {finding.SeverityWarning, "half_open", "window", 42, 40, 0.4, 21, nil}},
		},
		{
			name: "normal latency remembered from an earlier snapshot",
			build: func(t *testing.T, w *circuitWorld, d *detect.OpenCircuit) *graph.Snapshot {
				require.Empty(t, d.Detect(context.Background(), w.answered("orders", "stock", 20, 100, false).snapshot(t)))
				w.later()
				// 12ms is slow for the absolute bound, fast against 100ms.
				return w.unanswered("orders", "stock", 30, 12, true).snapshot(t)
			},
			want: map[string]want{oc: {finding.SeverityCritical, "open", "history", 30, 30, 12, 100, nil}},
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
			want: map[string]want{oc: {severity: finding.SeverityCritical, state: "open", requests: 30,
				breaker: map[string]any{"name": "stock", "state": "open", "source": "metrics"}}},
		},
		{
			name: "metric-only half-open breaker",
			build: func(t *testing.T, w *circuitWorld, _ *detect.OpenCircuit) *graph.Snapshot {
				w.answered("orders", "stock", 3, 20, false)
				w.breaker(t, "orders", "stock", resilience.CircuitHalfOpen, 0)
				return w.snapshot(t)
			},
			want: map[string]want{oc: {severity: finding.SeverityWarning, state: "half_open", requests: 3,
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
			want: map[string]want{oc: {severity: finding.SeverityCritical, state: "open", requests: 5,
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
			want: map[string]want{oc: {finding.SeverityCritical, "open", "window", 21, 20, 0.4, 20,
				map[string]any{"name": "stock", "state": "open", "source": "metrics"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newCircuitWorld(t)
			d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
			require.Equal(t, finding.KindOpenCircuit, d.Kind())
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
				require.Equal(t, finding.KindOpenCircuit, o.Kind)
				require.Equal(t, finding.Subject{Source: src.Name, Target: dst.Name, EdgeID: id}, o.Subject)
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
		// The graph is 6s old: its recent buckets cover that.
		"span_seconds":          6.0,
		"callee_answered":       uint64(2),
		"other_callers_failing": 0,
		"cause":                 "breaker_open",
		"cause_basis":           "callee_answers_probes",
	}, o.Evidence)
	require.Equal(t, finding.SeverityWarning, o.Severity)
	require.Equal(t, "orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (the trickle of calls it lets through is answered, so stock is up): "+
		"48 of 50 calls in the last 6s never reached stock, failing in 0.4 ms against 21 ms normally", o.Summary)

	w = newCircuitWorld(t)
	s = w.answered("web", "stock", 1, 20, false).unanswered("cart", "stock", 10, 0.4, true).snapshot(t)
	obs = detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 1)
	require.Equal(t, "cart's calls to stock fail fast without reaching it; cause: cart's circuit breaker open (failing in under 0.5 ms, too fast to have tried connecting, while stock answers other callers): "+
		"10 of 10 calls in the last 6s never reached stock, failing in 0.4 ms, with no normal latency known to compare (fast below 10 ms)", obs[0].Summary)
}

// TestOpenCircuitErrorTypes: when the calls' errors say why they failed
// (graph.Stats.Refused, Rejected), they tell the cause, whatever the
// latency: a gRPC channel fails fast without trying while its callee is
// down, a breaker behind a sidecar takes a round trip to reject.
func TestOpenCircuitErrorTypes(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	nodes := []graph.Node{
		{ID: "service:orders", Kind: graph.NodeService, Name: "orders"},
		{ID: "service:stock", Kind: graph.NodeService, Name: "stock"},
	}
	edge := func(p50 float64) graph.Edge {
		return graph.Edge{ID: edgeID("orders", "stock"), Source: "service:orders", Target: "service:stock", Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP,
			Requests: 60, Unanswered: 10, Errors: 10, RatePerS: 1,
			ClientLatency: &graph.Quantiles{P50: 20, P95: 30, P99: 40}, UnansweredLatency: &graph.Quantiles{P50: p50, P95: p50, P99: p50}}
	}
	for _, tc := range []struct {
		name              string
		recent            bool
		p50               float64
		refused, rejected uint64
		cause, basis      string
		reason            string
	}{
		{"window: refused though fast", false, 0.1, 8, 0, "callee_unreachable", "error_type", "8 of the 10 failures are refused or unreachable connections"},
		{"window: rejected though slow", false, 1.5, 1, 9, "breaker_open", "error_type", "9 of the 10 failures were rejected by the caller without trying"},
		{"window: too few say", false, 0.1, 4, 0, "breaker_open", "no_connection_attempt", "failing in under 0.5 ms"},
		{"recent: refused though fast", true, 0.1, 6, 0, "callee_unreachable", "error_type", "6 of the 10 failures"},
		{"recent: rejected though slow", true, 1.5, 0, 5, "breaker_open", "error_type", "5 of the 10 failures were rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := edge(tc.p50)
			if tc.recent {
				e.Recent = &graph.Recent{Requests: 10, Errors: 10, Unanswered: 10, Refused: tc.refused, Rejected: tc.rejected,
					UnansweredLatency: e.UnansweredLatency}
			} else {
				e.Requests = 10
				e.Stats.Refused, e.Stats.Rejected = tc.refused, tc.rejected
			}
			s := graph.NewSnapshot(at, time.Minute, slices.Clone(nodes), []graph.Edge{e})
			if tc.recent {
				s.RecentSeconds = 10
			}
			obs := detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(context.Background(), s)
			require.Len(t, obs, 1)
			o := obs[0]
			require.Equal(t, tc.cause, o.Evidence["cause"])
			require.Equal(t, tc.basis, o.Evidence["cause_basis"])
			require.Contains(t, o.Summary, tc.reason)
			if tc.refused+tc.rejected > 0 {
				require.Equal(t, tc.refused, o.Evidence["refused"])
				require.Equal(t, tc.rejected, o.Evidence["rejected"])
			}
		})
	}
}

// TestOpenCircuitCause: what tells the callee being unreachable from the
// caller's breaker being open, in the evidence and the summary.
func TestOpenCircuitCause(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   func(w *circuitWorld, d *detect.OpenCircuit)
		edge    string
		cause   string
		basis   string
		summary string
	}{
		{
			name: "callee answers nobody, another caller fails too",
			build: func(w *circuitWorld, d *detect.OpenCircuit) {
				w.answered("web", "stock", 10, 20, false).answered("orders", "stock", 10, 20, false)
				d.Detect(context.Background(), w.snapshot(t))
				w.later()
				w.unanswered("web", "stock", 10, 0.3, true).unanswered("orders", "stock", 10, 0.3, true)
			},
			edge: edgeID("orders", "stock"), cause: "callee_unreachable", basis: "callee_answers_nobody",
			summary: "orders' calls to stock fail fast without reaching it; cause: stock unreachable (stock answered no caller in the last 60s and 1 other caller fails to reach it too): " +
				"10 of 10 calls in the last 60s never reached stock, failing in 0.3 ms against 20 ms normally",
		},
		{
			name: "only caller, failing in a refused connection's time",
			build: func(w *circuitWorld, d *detect.OpenCircuit) {
				w.answered("orders", "stock", 10, 20, false)
				d.Detect(context.Background(), w.snapshot(t))
				w.later()
				w.unanswered("orders", "stock", 10, 1.1, true)
			},
			edge: edgeID("orders", "stock"), cause: "callee_unreachable", basis: "connection_attempts_fail",
			summary: "orders' calls to stock fail fast without reaching it; cause: stock unreachable (failing in 0.5 ms or more, the time a refused connection attempt takes): " +
				"10 of 10 calls in the last 60s never reached stock, failing in 1.1 ms against 20 ms normally",
		},
		{
			name: "only caller, failing without trying",
			build: func(w *circuitWorld, d *detect.OpenCircuit) {
				w.answered("orders", "stock", 10, 20, false)
				d.Detect(context.Background(), w.snapshot(t))
				w.later()
				w.unanswered("orders", "stock", 10, 0.1, true)
			},
			edge: edgeID("orders", "stock"), cause: "breaker_open", basis: "no_connection_attempt",
			summary: "orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (failing in under 0.5 ms, too fast to have tried connecting): " +
				"10 of 10 calls in the last 60s never reached stock, failing in 0.1 ms against 20 ms normally",
		},
		{
			name: "a breaker reports: it settles the cause",
			build: func(w *circuitWorld, d *detect.OpenCircuit) {
				w.answered("web", "stock", 10, 20, false).answered("orders", "stock", 10, 20, false)
				d.Detect(context.Background(), w.snapshot(t))
				w.later()
				w.unanswered("web", "stock", 10, 1.1, true).unanswered("orders", "stock", 10, 1.1, true)
				w.breaker(t, "orders", "stock", resilience.CircuitOpen, 0)
			},
			edge: edgeID("orders", "stock"), cause: "breaker_open", basis: "breaker_metric",
			summary: "orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (breaker \"stock\" reports open): " +
				"10 of 10 calls in the last 60s never reached stock, failing in 1.1 ms against 20 ms normally",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCircuitWorld(t)
			d := detect.NewOpenCircuit(detect.OpenCircuitOptions{})
			tc.build(w, d)
			got := byEdge(d.Detect(context.Background(), w.snapshot(t)))
			o, ok := got[tc.edge]
			require.True(t, ok, "%s does not fire: %v", tc.edge, got)
			require.Equal(t, tc.cause, o.Evidence["cause"])
			require.Equal(t, tc.basis, o.Evidence["cause_basis"])
			require.Equal(t, finding.SeverityCritical, o.Severity)
			require.Equal(t, tc.summary, o.Summary)
		})
	}
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
	require.Equal(t, finding.Subject{Source: "orders", Target: "a/b%c", EdgeID: "circuit:orders/a%2Fb%25c"}, obs[0].Subject)
	require.Equal(t, finding.SeverityWarning, obs[0].Severity)
	require.Equal(t, finding.Subject{Source: "orders", Target: "stock", EdgeID: "circuit:orders/stock"}, obs[1].Subject)
	require.Equal(t, finding.SeverityCritical, obs[1].Severity)
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
	f := e.Findings(finding.StateFiring)
	require.Len(t, f, 1)
	require.Equal(t, edgeID("orders", "stock"), f[0].Subject.EdgeID)
	require.Equal(t, finding.SeverityCritical, f[0].Severity)

	// Calls reach stock again.
	w.later()
	healed := w.answered("orders", "stock", 20, 20, false).snapshot(t)
	require.Empty(t, detect.NewOpenCircuit(detect.OpenCircuitOptions{}).Detect(ctx, healed))
	for range 3 {
		clock = clock.Add(5 * time.Second)
		e.Eval(ctx, healed)
	}
	require.Empty(t, e.Findings(finding.StateFiring))
	r := e.Findings(finding.StateResolved)
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
		MinCalls: 5, MinRecentCalls: 5, MinUnansweredRatio: 0.5, FastRatio: 0.25, FastAbsolute: 10 * time.Millisecond,
		HalfOpenMaxAnswered: 0.2, AttemptMin: 500 * time.Microsecond, MaxRemembered: 50_000,
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

// The simulation below runs production-shaped traffic through a real
// graph.Graph and a real Engine at the collector's default settings: a 1m
// window of 5s buckets, a 10s pair TTL, evaluations every 5s aligned to
// the interval, a hold of one interval and a keep-firing of two. Every
// service instance exports through its own batch processor (the SDK
// default: every 5s at its own phase, or at once when 512 spans queue up),
// calls arrive as Poisson processes, and 0.7% of the answered calls fail
// (5xx) in the background.

// simProc is one service instance with its batch processor's queue.
type simProc struct {
	next  time.Time
	queue []graph.Span
}

// simRoute is the traffic of one caller to one callee.
type simRoute struct {
	caller, callee string
	rate           float64 // calls/s
	next           time.Time
}

// circuitSim is a simulated system judged by a real engine.
type circuitSim struct {
	tb        testing.TB
	t0, now   time.Time
	rng       *rand.Rand
	g         *graph.Graph
	e         *detect.Engine
	replicas  map[string]int
	procs     map[string][]*simProc
	routes    []*simRoute
	next      uint64
	lastEval  time.Time
	lastTick  time.Time
	ctx       context.Context
	firstFire map[string]time.Time // edge id -> first evaluation it fired at
	fired     []finding.Finding    // findings seen firing, at the evaluation they first fired

	// Faults. fastFail maps "caller>callee" to the onset of an open
	// breaker: the caller fails its calls in 0.05-0.3ms without trying.
	// down maps a callee to the onset of its outage: every call is refused
	// in 0.8-1.5ms. restart maps "callee#replica" to when that replica is
	// down (refused in 0.8-1.5ms, 1/replicas of the calls).
	fastFail map[string][2]time.Time
	down     map[string][2]time.Time
	restart  map[string][][2]time.Time
	// timeouts is the share of a callee's calls that time out slowly (2s,
	// unanswered); 0.2% when not set.
	timeouts map[string]float64
}

func newCircuitSim(tb testing.TB, seed uint64, replicas map[string]int) *circuitSim {
	tb.Helper()
	// Start at an arbitrary, unaligned instant.
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(seed%5000) * time.Millisecond)
	s := &circuitSim{
		tb: tb, t0: t0, now: t0, rng: rand.New(rand.NewPCG(seed, seed*7+1)), replicas: replicas,
		procs: map[string][]*simProc{}, ctx: context.Background(), lastTick: t0,
		firstFire: map[string]time.Time{}, fastFail: map[string][2]time.Time{}, down: map[string][2]time.Time{}, restart: map[string][][2]time.Time{},
		timeouts: map[string]float64{},
	}
	clock := func() time.Time { return s.now }
	var err error
	s.g, err = graph.New(graph.Options{Now: clock, MaxPending: 4_000_000}) // window, bucket, pair TTL: defaults
	require.NoError(tb, err)
	s.e, err = detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{detect.NewOpenCircuit(detect.OpenCircuitOptions{})}, Now: clock})
	require.NoError(tb, err)
	for _, svc := range slices.Sorted(maps.Keys(replicas)) {
		for range replicas[svc] {
			s.procs[svc] = append(s.procs[svc], &simProc{next: t0.Add(time.Duration(s.rng.Int64N(int64(5 * time.Second))))})
		}
	}
	s.lastEval = t0.Truncate(5 * time.Second)
	return s
}

func (s *circuitSim) route(caller, callee string, rate float64) *circuitSim {
	r := &simRoute{caller: caller, callee: callee, rate: rate}
	r.next = s.now.Add(s.exp(rate))
	s.routes = append(s.routes, r)
	return s
}

func (s *circuitSim) exp(rate float64) time.Duration {
	return time.Duration(s.rng.ExpFloat64() / rate * float64(time.Second))
}

func (s *circuitSim) ids() (graph.TraceID, graph.SpanID) {
	s.next++
	var t graph.TraceID
	var id graph.SpanID
	binary.BigEndian.PutUint64(t[:8], s.next)
	binary.BigEndian.PutUint64(t[8:], s.next*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(id[:], s.next)
	return t, id
}

func within(at time.Time, spans ...[2]time.Time) bool {
	for _, sp := range spans {
		if !sp[0].IsZero() && !at.Before(sp[0]) && (sp[1].IsZero() || at.Before(sp[1])) {
			return true
		}
	}
	return false
}

func (s *circuitSim) ms(lo, hi float64) int64 {
	return int64((lo + s.rng.Float64()*(hi-lo)) * float64(time.Millisecond))
}

// call makes one call of r starting at at.
func (s *circuitSim) call(r *simRoute, at time.Time) {
	caller := s.procs[r.caller][s.rng.IntN(len(s.procs[r.caller]))]
	replica := s.rng.IntN(len(s.procs[r.callee]))
	callee := s.procs[r.callee][replica]
	tr, cid := s.ids()
	start := at.UnixNano()
	c := graph.Span{Trace: tr, ID: cid, Parent: graph.SpanID{0xfe}, Kind: graph.SpanClient, Service: r.caller, Start: start,
		Protocol: graph.ProtocolHTTP, Peer: address(r.callee), Operation: "GET /" + r.callee}
	switch {
	case within(at, s.fastFail[r.caller+">"+r.callee]):
		c.End, c.Error = start+s.ms(0.05, 0.3), true
		caller.queue = append(caller.queue, c)
		return
	case within(at, s.down[r.callee]) || within(at, s.restart[r.callee+"#"+strconv.Itoa(replica)]...):
		c.End, c.Error = start+s.ms(0.8, 1.5), true
		caller.queue = append(caller.queue, c)
		return
	}
	server := int64(math.Exp(math.Log(15)+0.5*s.rng.NormFloat64()) * float64(time.Millisecond))
	fail := s.rng.Float64() < 0.007
	_, sid := s.ids()
	sv := graph.Span{Trace: tr, ID: sid, Parent: cid, Kind: graph.SpanServer, Service: r.callee,
		Start: start + s.ms(0.2, 0.4), Protocol: graph.ProtocolHTTP, Error: fail}
	sv.End = sv.Start + server
	c.End, c.Error = sv.End+s.ms(0.2, 0.4), fail
	timeouts, ok := s.timeouts[r.callee]
	if !ok {
		timeouts = 0.002
	}
	if s.rng.Float64() < timeouts {
		// A slow timeout: the caller gives up after 2s; the callee's span
		// is lost with it (crashed worker), so the call goes unanswered.
		c.End, c.Error = start+int64(2*time.Second), true
		caller.queue = append(caller.queue, c)
		return
	}
	caller.queue = append(caller.queue, c)
	callee.queue = append(callee.queue, sv)
}

// run advances the simulation by d, evaluating every 5s.
func (s *circuitSim) run(d time.Duration) {
	end := s.now.Add(d)
	const step = 50 * time.Millisecond
	for s.now.Before(end) {
		s.now = s.now.Add(step)
		for _, r := range s.routes {
			for !r.next.After(s.now) {
				s.call(r, r.next)
				r.next = r.next.Add(s.exp(r.rate))
			}
		}
		for _, svc := range slices.Sorted(maps.Keys(s.procs)) { // in a fixed order: runs repeat
			for _, p := range s.procs[svc] {
				if len(p.queue) >= 512 || !s.now.Before(p.next) {
					if !s.now.Before(p.next) {
						p.next = p.next.Add(5 * time.Second)
					}
					if len(p.queue) > 0 {
						consumeAll(s.tb, s.g, p.queue)
						p.queue = p.queue[:0]
					}
				}
			}
		}
		if s.now.Sub(s.lastTick) >= time.Second {
			s.lastTick = s.now
			s.g.Expire()
		}
		if ev := s.now.Truncate(5 * time.Second); ev.After(s.lastEval) {
			s.lastEval = ev
			snap, err := s.g.Snapshot(0)
			require.NoError(s.tb, err)
			s.e.Eval(s.ctx, snap)
			for _, f := range s.e.Findings(finding.StateFiring) {
				if f.FiredAt != nil && f.FiredAt.Equal(s.now) {
					s.fired = append(s.fired, f)
				}
				if _, ok := s.firstFire[f.Subject.EdgeID]; !ok {
					s.firstFire[f.Subject.EdgeID] = s.now
				}
			}
		}
	}
}

// rollingRestart restarts callee's replicas one after the other from at:
// each is down for 15s (its calls refused), 30s apart.
func (s *circuitSim) rollingRestart(callee string, at time.Time) {
	for i := range s.replicas[callee] {
		from := at.Add(time.Duration(i) * 30 * time.Second)
		k := callee + "#" + strconv.Itoa(i)
		s.restart[k] = append(s.restart[k], [2]time.Time{from, from.Add(15 * time.Second)})
	}
}

// firing returns the ids of the edges firing now.
func (s *circuitSim) firing() []string {
	var ids []string
	for _, f := range s.e.Findings(finding.StateFiring) {
		ids = append(ids, f.Subject.EdgeID)
	}
	return ids
}

// circuitRates are the request rates of the simulated edges, with the seeds
// each is run with (fewer where a run is costly).
var circuitRates = []struct {
	rate  float64
	seeds int
}{{1, 30}, {10, 6}, {100, 2}, {1000, 1}}

// TestOpenCircuitDefaultSettings: at the collector's default settings an
// open circuit fires within the pair TTL plus three evaluation intervals
// of its onset, naming the edge and the cause; it resolves once calls reach
// the callee again. From 10 req/s that holds for every onset. At 1 req/s it
// holds for most, not all: a call is known unanswered only a pair TTL
// after the SDK exports it (up to 5s after it ends), and now and then no
// call of the first seconds after the onset is exported in time (a Poisson
// gap), so the finding fires an interval later (3% of 300 onsets
// measured). A callee that goes down takes more calls to tell from a
// restarting replica (MinCalls refused calls among its callers): at 1 req/s
// from one caller about half the onsets fire within the budget, all within
// three more intervals.
func TestOpenCircuitDefaultSettings(t *testing.T) {
	const budget = 10*time.Second + 3*5*time.Second // pair TTL + 3 intervals
	orders, web := edgeID("orders", "stock"), edgeID("web", "stock")
	for _, tc := range []struct {
		name    string
		callers []string // of stock
		fault   func(s *circuitSim, on, off time.Time)
		want    map[string]string // edge id -> cause
		// Below 10 req/s: the share of onsets that must fire within the
		// budget, and the slack beyond it all must fire within.
		lowShare float64
		lowSlack time.Duration
	}{
		{"orders' breaker opens, stock answers web", []string{"web", "orders"}, func(s *circuitSim, on, off time.Time) {
			s.fastFail["orders>stock"] = [2]time.Time{on, off}
		}, map[string]string{orders: "breaker_open"}, 0.9, 5 * time.Second},
		{"orders' breaker opens, stock's only caller", []string{"orders"}, func(s *circuitSim, on, off time.Time) {
			s.fastFail["orders>stock"] = [2]time.Time{on, off}
		}, map[string]string{orders: "breaker_open"}, 0.9, 5 * time.Second},
		{"stock goes down", []string{"web", "orders"}, func(s *circuitSim, on, off time.Time) {
			s.down["stock"] = [2]time.Time{on, off}
		}, map[string]string{orders: "callee_unreachable", web: "callee_unreachable"}, 0.85, 10 * time.Second},
		{"stock goes down, orders its only caller", []string{"orders"}, func(s *circuitSim, on, off time.Time) {
			s.down["stock"] = [2]time.Time{on, off}
		}, map[string]string{orders: "callee_unreachable"}, 0.5, 15 * time.Second},
	} {
		for _, r := range circuitRates {
			var worst, worstResolve time.Duration
			inBudget, fired := 0, 0
			seeds := r.seeds
			if testing.Short() || detect.RaceEnabled {
				if r.rate > 10 {
					continue
				}
				seeds = min(seeds, 3)
			}
			for seed := range seeds {
				t.Run(tc.name+"/"+strconv.FormatFloat(r.rate, 'f', -1, 64)+"rps/"+strconv.Itoa(seed), func(t *testing.T) {
					s := newCircuitSim(t, uint64(seed)+1, map[string]int{"web": 2, "orders": 3, "stock": 3})
					for _, caller := range tc.callers {
						s.route(caller, "stock", r.rate)
					}
					s.run(2*time.Minute + time.Duration(s.rng.Int64N(int64(5*time.Second))))
					require.Empty(t, s.firing(), "healthy warm-up")
					on := s.now
					off := on.Add(3 * time.Minute)
					tc.fault(s, on, off)
					s.run(off.Sub(on))
					for id, cause := range tc.want {
						at, ok := s.firstFire[id]
						require.True(t, ok, "%s never fired", id)
						took := at.Sub(on)
						t.Logf("%s fired after %v", id, took.Round(time.Millisecond))
						worst = max(worst, took)
						fired++
						if took <= budget {
							inBudget++
						}
						slack := tc.lowSlack
						if r.rate >= 10 {
							slack = 0
						}
						require.LessOrEqual(t, took, budget+slack, "%s fired late", id)
						var f *finding.Finding
						for i := range s.fired {
							if s.fired[i].Subject.EdgeID == id {
								f = &s.fired[i]
								break
							}
						}
						require.NotNil(t, f)
						require.Equal(t, cause, f.Evidence["cause"], "cause of %s when it fired: %v", id, f.Evidence)
						require.Contains(t, f.Summary, map[string]string{"breaker_open": "circuit breaker", "callee_unreachable": "unreachable"}[cause])
						require.Equal(t, finding.SeverityCritical, f.Severity)
					}
					require.ElementsMatch(t, keys(tc.want), s.firing(), "firing during the fault")
					require.Len(t, s.fired, len(tc.want), "fired once each, no flapping: %v", s.fired)
					// Calls reach stock again.
					healed := s.now
					for s.now.Sub(healed) < 2*time.Minute && len(s.firing()) > 0 {
						s.run(time.Second)
					}
					require.Empty(t, s.firing(), "still firing 2m after the fault stopped")
					t.Logf("resolved after %v", s.now.Sub(healed).Round(time.Second))
					worstResolve = max(worstResolve, s.now.Sub(healed))
					s.run(2 * time.Minute)
					require.Len(t, s.fired, len(tc.want), "nothing fires after it healed")
				})
			}
			t.Logf("%s at %v req/s: %d of %d fired within the budget of %v, all within %v of onset; resolved within %v",
				tc.name, r.rate, inBudget, fired, budget, worst.Round(time.Millisecond), worstResolve.Round(time.Second))
			if r.rate >= 10 {
				require.Equal(t, fired, inBudget, "%s at %v req/s: every onset fires within the budget", tc.name, r.rate)
			} else {
				require.GreaterOrEqual(t, float64(inBudget), tc.lowShare*float64(fired), "%s at %v req/s: most onsets fire within the budget", tc.name, r.rate)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestOpenCircuitHealthyQuiet: healthy systems raise nothing over hours of
// simulated time at default settings: background errors, a callee with a
// few slow timeouts, rolling restarts of callees (their replicas refusing
// calls in turn), low-rate edges, several callers or one.
func TestOpenCircuitHealthyQuiet(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		long  time.Duration
		seeds int
	}{{1, 6 * time.Hour, 3}, {10, 2 * time.Hour, 2}, {100, 30 * time.Minute, 1}, {1000, 6 * time.Minute, 1}} {
		for seed := range tc.seeds {
			t.Run(strconv.FormatFloat(tc.rate, 'f', -1, 64)+"rps/"+strconv.Itoa(seed), func(t *testing.T) {
				if (testing.Short() || detect.RaceEnabled) && (tc.rate > 10 || seed > 0) {
					t.Skip("long simulation")
				}
				s := newCircuitSim(t, uint64(tc.rate)*100+uint64(seed)+11, map[string]int{
					"web": 2, "orders": 3, "billing": 2, "audit": 2, "stock": 3, "payment": 2, "ledger": 2, "users": 2,
				})
				s.timeouts["payment"] = 0.03 // a callee with a few slow timeouts
				s.route("web", "stock", tc.rate).route("orders", "stock", tc.rate)
				s.route("orders", "payment", tc.rate/2).route("audit", "payment", 0.75)
				s.route("billing", "ledger", tc.rate/2) // ledger's only caller
				s.route("orders", "audit", 0.05).route("web", "users", 0.2).route("billing", "users", 0.5)
				var pending int
				for at := time.Duration(0); at < tc.long; at += 5 * time.Minute {
					// A rolling restart of every callee every ten minutes.
					if (at/(5*time.Minute))%2 == 1 {
						for _, callee := range []string{"stock", "ledger", "users", "payment"} {
							s.rollingRestart(callee, s.now.Add(time.Duration(s.rng.Int64N(int64(time.Minute)))))
						}
					}
					for range 60 {
						s.run(5 * time.Second)
						pending += len(s.e.Findings(finding.StatePending))
					}
				}
				var summaries []string
				for _, f := range s.fired {
					summaries = append(summaries, f.Subject.EdgeID+": "+f.Summary)
				}
				require.Empty(t, summaries, "fired on a healthy system")
				t.Logf("%v of healthy traffic at %v req/s: nothing fired; %d pending evaluations", tc.long, tc.rate, pending)
			})
		}
	}
}

// TestOpenCircuitRestartsQuiet: a callee whose replicas restart one after
// the other refuses some calls for a while (half of them, with two
// replicas); callers at about one call a second see runs of refused calls
// with none answered now and then. That is a partial outage, not an open
// circuit: over 240 restarts each, nothing fires.
func TestOpenCircuitRestartsQuiet(t *testing.T) {
	for _, rate := range []float64{0.5, 0.75, 1, 1.5} {
		t.Run(strconv.FormatFloat(rate, 'f', -1, 64)+"rps", func(t *testing.T) {
			s := newCircuitSim(t, uint64(rate*100)+7, map[string]int{"billing": 2, "web": 2, "ledger": 2, "users": 2})
			s.route("billing", "ledger", rate)                                    // its only caller
			s.route("billing", "users", rate*0.7).route("web", "users", rate*0.3) // two callers
			restarts := 240
			if testing.Short() || detect.RaceEnabled {
				restarts = 30
			}
			var pending int
			for range restarts {
				s.rollingRestart("ledger", s.now.Add(time.Duration(s.rng.Int64N(int64(10*time.Second)))))
				s.rollingRestart("users", s.now.Add(time.Duration(s.rng.Int64N(int64(10*time.Second)))))
				for range 24 { // two minutes
					s.run(5 * time.Second)
					pending += len(s.e.Findings(finding.StatePending))
				}
			}
			var summaries []string
			for _, f := range s.fired {
				summaries = append(summaries, f.Subject.EdgeID+": "+f.Summary)
			}
			require.Empty(t, summaries, "fired on restarts")
			t.Logf("%d rolling restarts at %v req/s: nothing fired; %d pending evaluations", restarts, rate, pending)
		})
	}
}
