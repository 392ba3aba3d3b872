package incident

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// A small system stated exactly: nodes by short name, and edges with
// their rate, error ratio and mean latency. Tests change the figures tick
// by tick and hand the tracker the snapshots with the findings the
// detectors would raise.

var kinds = map[byte]graph.NodeKind{'s': graph.NodeService, 'd': graph.NodeDatabase, 't': graph.NodeTopic, 'c': graph.NodeClient}

// nodeOf turns "s:api", "d:orders", "t:events", "c:client" into a node.
func nodeOf(spec string) graph.Node {
	k := graph.NodeKey{Kind: kinds[spec[0]], Name: spec[2:]}
	switch k.Kind {
	case graph.NodeDatabase:
		k.Group = "postgresql"
	case graph.NodeTopic:
		k.Group = "kafka"
	}
	return graph.Node{ID: k.ID(), Kind: k.Kind, Name: k.Name, System: k.Group}
}

type flow struct {
	src, dst string // node specs
	rate     float64
	errRatio float64
	meanMs   float64
}

type system struct {
	flows []flow
	rng   *rand.Rand
	noise bool
}

func (s *system) edgeID(src, dst string) string {
	a, b := nodeOf(src), nodeOf(dst)
	kind, proto := edgeKind(a, b)
	_ = kind
	return graph.EdgeID(a.ID, b.ID, proto, "")
}

func edgeKind(a, b graph.Node) (graph.EdgeKind, graph.Protocol) {
	switch {
	case a.Kind == graph.NodeTopic || b.Kind == graph.NodeTopic:
		return graph.EdgeAsync, graph.ProtocolKafka
	case b.Kind == graph.NodeDatabase:
		return graph.EdgeSync, graph.ProtocolDB
	}
	return graph.EdgeSync, graph.ProtocolHTTP
}

// set changes the figures of the flow src -> dst.
func (s *system) set(src, dst string, f func(*flow)) {
	for i := range s.flows {
		if s.flows[i].src == src && s.flows[i].dst == dst {
			f(&s.flows[i])
			return
		}
	}
	panic("no flow " + src + " -> " + dst)
}

// snapshot states the system's graph at `at` over a 60 s window, its
// newest 15 s as Recent.
func (s *system) snapshot(at time.Time) *graph.Snapshot {
	nodes := map[string]graph.Node{}
	var edges []graph.Edge
	for _, fl := range s.flows {
		a, b := nodeOf(fl.src), nodeOf(fl.dst)
		nodes[a.ID], nodes[b.ID] = a, b
		kind, proto := edgeKind(a, b)
		rate, errR, m := fl.rate, fl.errRatio, fl.meanMs
		if s.noise {
			rate *= 1 + 0.1*s.rng.NormFloat64()
			m *= 1 + 0.05*s.rng.NormFloat64()
			errR = max(0, errR+0.002*s.rng.NormFloat64())
		}
		req := uint64(rate * 60)
		e := graph.Edge{ID: graph.EdgeID(a.ID, b.ID, proto, ""), Source: a.ID, Target: b.ID, Kind: kind, Protocol: proto,
			Requests: req, Errors: uint64(float64(req) * errR), RatePerS: rate}
		if req > 0 {
			e.ErrorRatio = float64(e.Errors) / float64(req)
			sk, _ := ddsketch.NewDefaultDDSketch(0.01)
			for _, f := range []float64{0.8, 1, 1.2} {
				_ = sk.AddWithCount(m*f, float64(req)/3)
			}
			if b.Kind == graph.NodeDatabase {
				e.Stats.Client = sk
			} else {
				e.Stats.Server = sk
			}
			e.Latency = &graph.Quantiles{P50: m, P95: 1.5 * m, P99: 2 * m}
			e.Recent = &graph.Recent{Requests: uint64(rate * 15), Errors: uint64(rate * 15 * errR)}
		}
		edges = append(edges, e)
	}
	ns := make([]graph.Node, 0, len(nodes))
	for _, n := range nodes {
		ns = append(ns, n)
	}
	snap := graph.NewSnapshot(at, time.Minute, ns, edges)
	snap.RecentSeconds = 15
	return snap
}

// firing is a firing finding on an edge ("s:a", "s:b") or a node ("d:db").
func firing(kind finding.Kind, started time.Time, ends ...string) finding.Finding {
	f := finding.Finding{Kind: kind, State: finding.StateFiring, Severity: finding.SeverityWarning, StartedAt: started}
	if len(ends) == 1 {
		n := nodeOf(ends[0])
		f.Subject = finding.Subject{Node: n.Name, NodeID: n.ID}
	} else {
		a, b := nodeOf(ends[0]), nodeOf(ends[1])
		_, proto := edgeKind(a, b)
		f.Subject = finding.Subject{Source: a.Name, Target: b.Name, EdgeID: graph.EdgeID(a.ID, b.ID, proto, "")}
	}
	f.ID = fmt.Sprintf("%s|%s|%s", kind, f.Subject.NodeID+f.Subject.EdgeID, started.Format("150405"))
	return f
}

// run is a tracker on a simulated clock, ticking every 5 s.
type run struct {
	t   *testing.T
	tr  *Tracker
	now time.Time
}

func newRun(t *testing.T, o Options) *run {
	r := &run{t: t, now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o.Now = func() time.Time { return r.now }
	tr, err := New(o)
	require.NoError(t, err)
	r.tr = tr
	return r
}

// tick advances 5 s and hands the tracker the system and findings.
func (r *run) tick(sys *system, fs ...finding.Finding) []finding.Incident {
	r.now = r.now.Add(5 * time.Second)
	return r.tr.Correlate(sys.snapshot(r.now), fs)
}

func (r *run) learn(sys *system, n int) {
	for range n {
		require.Empty(r.t, r.tick(sys))
	}
}

// chain: client -> gateway -> api -> orders -> orders db; and a second,
// unrelated, system: client -> shop -> payments -> payments db.
func chain() *system {
	return &system{rng: rand.New(rand.NewPCG(1, 2)), flows: []flow{
		{"c:client", "s:gateway", 20, 0.003, 20},
		{"s:gateway", "s:api", 20, 0.003, 18},
		{"s:api", "s:orders", 20, 0.003, 15},
		{"s:orders", "d:orders", 20, 0.001, 2},
		{"c:client", "s:shop", 10, 0.003, 30},
		{"s:shop", "s:payments", 10, 0.003, 25},
		{"s:payments", "d:payments", 10, 0.001, 3},
	}}
}

// messaging: orders-api -> order-events -> billing and shipping; refunds
// -> refund-events -> billing; billing -> billing db.
func messaging() *system {
	return &system{rng: rand.New(rand.NewPCG(3, 4)), flows: []flow{
		{"c:client", "s:orders-api", 10, 0.002, 8},
		{"s:orders-api", "t:order-events", 10, 0, 2},
		{"t:order-events", "s:billing", 10, 0.001, 5},
		{"t:order-events", "s:shipping", 10, 0.001, 5},
		{"c:client", "s:refunds", 2, 0.002, 8},
		{"s:refunds", "t:refund-events", 2, 0, 2},
		{"t:refund-events", "s:billing", 2, 0.001, 5},
		{"s:billing", "d:billing", 12, 0.001, 3},
	}}
}

func top(t *testing.T, inc finding.Incident) finding.Cause {
	t.Helper()
	c, ok := inc.TopCause()
	require.True(t, ok, "incident %s names no cause", inc.ID)
	return c
}

func TestCascades(t *testing.T) {
	for _, tc := range []struct {
		name string
		sys  func() *system
		// fault changes the system; findings are what the detectors
		// raise at the given tick after its onset.
		fault    func(*system)
		findings func(onset time.Time) []finding.Finding
		cause    string
		members  int
		noOwn    bool // the cause raised no finding of its own
	}{
		{
			name: "slow database under a service", sys: chain,
			fault: func(s *system) {
				s.set("s:orders", "d:orders", func(f *flow) { f.meanMs = 200 })
				s.set("s:api", "s:orders", func(f *flow) { f.meanMs = 213; f.errRatio = 0.2 })
				s.set("s:gateway", "s:api", func(f *flow) { f.meanMs = 400; f.errRatio = 0.05 })
				s.set("c:client", "s:gateway", func(f *flow) { f.meanMs = 402; f.errRatio = 0.05 })
			},
			findings: func(on time.Time) []finding.Finding {
				return []finding.Finding{
					firing(finding.KindBottleneck, on.Add(5*time.Second), "d:orders"),
					firing(finding.KindRetryStorm, on.Add(10*time.Second), "s:api", "s:orders"),
				}
			},
			cause: "orders", members: 2,
		},
		{
			name: "failing database only its callers' findings point to", sys: chain,
			fault: func(s *system) {
				s.set("s:orders", "d:orders", func(f *flow) { f.errRatio = 0.4; f.rate = 38 }) // retried calls query again
				s.set("s:api", "s:orders", func(f *flow) { f.errRatio = 0.4; f.rate = 38 })
				s.set("s:gateway", "s:api", func(f *flow) { f.errRatio = 0.1; f.rate = 28 })
				s.set("c:client", "s:gateway", func(f *flow) { f.errRatio = 0.05 })
			},
			findings: func(on time.Time) []finding.Finding {
				return []finding.Finding{
					firing(finding.KindRetryStorm, on.Add(5*time.Second), "s:api", "s:orders"),
					firing(finding.KindRetryStorm, on.Add(10*time.Second), "s:gateway", "s:api"),
				}
			},
			cause: "orders", members: 2, noOwn: true,
		},
		{
			name: "failing dependency its callers retry", sys: chain,
			fault: func(s *system) {
				s.set("s:shop", "s:payments", func(f *flow) { f.errRatio = 0.5; f.rate = 19 })
				s.set("c:client", "s:shop", func(f *flow) { f.errRatio = 0.06 })
			},
			findings: func(on time.Time) []finding.Finding {
				return []finding.Finding{
					firing(finding.KindRetryStorm, on.Add(5*time.Second), "s:shop", "s:payments"),
					firing(finding.KindOpenCircuit, on.Add(15*time.Second), "s:shop", "s:payments"),
				}
			},
			cause: "payments", members: 2,
		},
		{
			name: "stalled consumer", sys: messaging,
			fault: func(s *system) {
				s.set("t:order-events", "s:billing", func(f *flow) { f.rate = 0 })
				s.set("t:refund-events", "s:billing", func(f *flow) { f.rate = 0 })
				s.set("s:billing", "d:billing", func(f *flow) { f.rate = 0 })
			},
			findings: func(on time.Time) []finding.Finding {
				return []finding.Finding{
					firing(finding.KindConsumerLag, on.Add(15*time.Second), "t:order-events", "s:billing"),
					firing(finding.KindConsumerLag, on.Add(20*time.Second), "t:refund-events", "s:billing"),
				}
			},
			cause: "billing", members: 2,
		},
		{
			name: "flood from a producer", sys: messaging,
			fault: func(s *system) {
				s.set("c:client", "s:orders-api", func(f *flow) { f.rate = 80 })
				s.set("s:orders-api", "t:order-events", func(f *flow) { f.rate = 80 })
				s.set("t:order-events", "s:billing", func(f *flow) { f.rate = 15 })
				s.set("t:order-events", "s:shipping", func(f *flow) { f.rate = 20 })
			},
			findings: func(on time.Time) []finding.Finding {
				return []finding.Finding{
					firing(finding.KindConsumerLag, on.Add(15*time.Second), "t:order-events", "s:billing"),
					firing(finding.KindConsumerLag, on.Add(15*time.Second), "t:order-events", "s:shipping"),
				}
			},
			cause: "orders-api", members: 2, noOwn: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := tc.sys()
			sys.noise = true
			r := newRun(t, Options{})
			r.learn(sys, 30)
			onset := r.now
			tc.fault(sys)
			var incs []finding.Incident
			fs := tc.findings(onset)
			for range 5 {
				var now []finding.Finding
				for _, f := range fs {
					if !f.StartedAt.After(r.now.Add(5 * time.Second)) {
						now = append(now, f)
					}
				}
				incs = r.tick(sys, now...)
			}
			require.Len(t, incs, 1, "one incident: %+v", incs)
			inc := incs[0]
			require.Equal(t, finding.IncidentOpen, inc.State)
			require.Len(t, inc.Findings, tc.members)
			require.Equal(t, "inc-"+fs[0].ID, inc.ID, "named after its first finding")
			c := top(t, inc)
			require.Equal(t, tc.cause, c.Node, "causes: %+v", inc.RootCauses)
			require.Equal(t, 1.0, c.Explains)
			require.Greater(t, c.Anomaly, 0.5)
			require.Equal(t, tc.noOwn, strings.Contains(strings.Join(c.Reasons, "\n"), "raised no finding of its own"), "%q", c.Reasons)
			if len(inc.RootCauses) > 1 {
				require.Greater(t, c.Score-inc.RootCauses[1].Score, 0.2, "a clear first: %+v", inc.RootCauses)
			}
			t.Logf("%s: %.3f %q; then %d more", c.Node, c.Score, c.Reasons, len(inc.RootCauses)-1)
		})
	}
}

// TestImpact: the entry points whose errors or latency moved, with their
// share of traffic through the cause; an entry whose figures did not move
// is not listed.
func TestImpact(t *testing.T) {
	sys := chain()
	r := newRun(t, Options{})
	r.learn(sys, 30)
	onset := r.now
	sys.set("s:orders", "d:orders", func(f *flow) { f.errRatio = 0.4 })
	sys.set("s:api", "s:orders", func(f *flow) { f.errRatio = 0.4 })
	sys.set("s:gateway", "s:api", func(f *flow) { f.errRatio = 0.1; f.meanMs = 60 })
	sys.set("c:client", "s:gateway", func(f *flow) { f.errRatio = 0.1; f.meanMs = 62 })
	f := firing(finding.KindRetryStorm, onset.Add(5*time.Second), "s:gateway", "s:api")
	incs := r.tick(sys, f)
	incs = r.tick(sys, f)
	require.Len(t, incs, 1)
	require.Equal(t, "orders", top(t, incs[0]).Node)
	require.Len(t, incs[0].Impact, 1, "the shop's entry did not move: %+v", incs[0].Impact)
	im := incs[0].Impact[0]
	require.Equal(t, "gateway", im.Entry)
	require.InDelta(t, 0.003, im.ErrorRatio.Before, 0.0005)
	require.InDelta(t, 0.1, im.ErrorRatio.Now, 0.001)
	require.InDelta(t, 30, im.P95Ms.Before, 0.5)
	require.InDelta(t, 93, im.P95Ms.Now, 0.5)
	require.Equal(t, 1.0, im.Share, "every request into gateway reaches orders")

	// The baselines are frozen while it is open: "before" stays.
	for range 20 {
		incs = r.tick(sys, f)
	}
	require.InDelta(t, 0.003, incs[0].Impact[0].ErrorRatio.Before, 0.0005)
}

// TestGrouping: which findings make one incident.
func TestGrouping(t *testing.T) {
	wide := func() *system {
		return &system{rng: rand.New(rand.NewPCG(5, 6)), flows: []flow{
			{"c:client", "s:gateway", 30, 0.002, 20},
			{"s:gateway", "s:checkout", 10, 0.002, 15},
			{"s:gateway", "s:search", 10, 0.002, 15},
			{"s:gateway", "s:profile", 10, 0.002, 15},
			{"s:checkout", "d:shared", 10, 0.001, 3},
			{"s:search", "d:shared", 10, 0.001, 3},
			{"s:profile", "d:profiles", 10, 0.001, 3},
		}}
	}
	for _, tc := range []struct {
		name      string
		fault     func(*system)
		findings  [][]string // ends of retry storms
		incidents int
	}{
		{"siblings with their own faults are two incidents", func(s *system) {
			s.set("s:gateway", "s:checkout", func(f *flow) { f.errRatio = 0.5 })
			s.set("s:gateway", "s:profile", func(f *flow) { f.errRatio = 0.5 })
		}, [][]string{{"s:gateway", "s:checkout"}, {"s:gateway", "s:profile"}}, 2},
		{"siblings explained by one anomalous database are one", func(s *system) {
			s.set("s:checkout", "d:shared", func(f *flow) { f.errRatio = 0.5 })
			s.set("s:search", "d:shared", func(f *flow) { f.errRatio = 0.5 })
			s.set("s:gateway", "s:checkout", func(f *flow) { f.errRatio = 0.5 })
			s.set("s:gateway", "s:search", func(f *flow) { f.errRatio = 0.5 })
		}, [][]string{{"s:gateway", "s:checkout"}, {"s:gateway", "s:search"}}, 1},
		{"one on the path of the other is one", func(s *system) {
			s.set("s:checkout", "d:shared", func(f *flow) { f.errRatio = 0.5 })
			s.set("s:gateway", "s:checkout", func(f *flow) { f.errRatio = 0.5 })
		}, [][]string{{"c:client", "s:gateway"}, {"s:gateway", "s:checkout"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := wide()
			r := newRun(t, Options{})
			r.learn(sys, 20)
			tc.fault(sys)
			var fs []finding.Finding
			for _, e := range tc.findings {
				fs = append(fs, firing(finding.KindRetryStorm, r.now, e...))
			}
			incs := r.tick(sys, fs...)
			incs = r.tick(sys, fs...)
			require.Len(t, incs, tc.incidents, "%+v", incs)
		})
	}
}

// TestLifecycle: an incident opens with its first firing finding, takes
// in connected findings, merges with another one they connect it to
// (keeping the older id), resolves when its last finding does, and
// reopens when one of them fires again.
func TestLifecycle(t *testing.T) {
	sys := chain()
	reg := prometheus.NewRegistry()
	r := newRun(t, Options{Registerer: reg})
	r.learn(sys, 10)
	sys.set("s:orders", "d:orders", func(f *flow) { f.errRatio = 0.4 })
	sys.set("s:api", "s:orders", func(f *flow) { f.errRatio = 0.4 })
	sys.set("s:gateway", "s:api", func(f *flow) { f.errRatio = 0.1 })
	a := firing(finding.KindBottleneck, r.now, "s:gateway") // a node finding upstream: on the path
	b := firing(finding.KindRetryStorm, r.now.Add(5*time.Second), "s:api", "s:orders")
	pend := firing(finding.KindRetryStorm, r.now, "s:shop", "s:payments")
	pend.State = finding.StatePending

	incs := r.tick(sys, b, pend)
	require.Len(t, incs, 1, "a pending finding opens nothing")
	idB := incs[0].ID
	require.Equal(t, 1.0, testutil.ToFloat64(r.tr.metric.open))

	incs = r.tick(sys, a, b)
	require.Len(t, incs, 1, "a is on b's path: one incident")
	require.Equal(t, idB, incs[0].ID, "the incident keeps its id when a finding that started earlier joins")
	require.Equal(t, []string{a.ID, b.ID}, incs[0].Findings, "oldest first")
	require.Equal(t, a.StartedAt, incs[0].StartedAt)

	// b resolves; a keeps it open.
	rb := b
	rb.State, rb.ResolvedAt = finding.StateResolved, ptr(r.now)
	incs = r.tick(sys, a, rb)
	require.Equal(t, finding.IncidentOpen, incs[0].State)
	// a resolves too.
	ra := a
	ra.State, ra.ResolvedAt = finding.StateResolved, ptr(r.now.Add(time.Second))
	incs = r.tick(sys, ra, rb)
	require.Equal(t, finding.IncidentResolved, incs[0].State)
	require.Equal(t, ra.ResolvedAt, incs[0].ResolvedAt)
	require.Zero(t, testutil.ToFloat64(r.tr.metric.open))
	// a fires again (the engine revives it under its id): reopened.
	incs = r.tick(sys, a, rb)
	require.Len(t, incs, 1)
	require.Equal(t, finding.IncidentOpen, incs[0].State)
	require.Nil(t, incs[0].ResolvedAt)
	got, ok := r.tr.IncidentOf(a.ID)
	require.True(t, ok)
	require.Equal(t, idB, got.ID)

	// Merging: an unrelated incident opens, then a finding connected to
	// both joins them under the older id.
	c := firing(finding.KindRetryStorm, r.now, "s:shop", "s:payments")
	incs = r.tick(sys, a, c)
	require.Len(t, incs, 2)
	sys.flows = append(sys.flows, flow{"s:payments", "s:gateway", 1, 0, 5}) // a new dependency ties them
	d := firing(finding.KindRetryStorm, r.now, "s:payments", "s:gateway")
	incs = r.tick(sys, a, c, d)
	require.Len(t, incs, 1, "%+v", incs)
	require.Equal(t, idB, incs[0].ID, "the older incident's id is kept")
	require.Equal(t, []string{"inc-" + c.ID}, incs[0].Merged)
	require.ElementsMatch(t, []string{a.ID, b.ID, c.ID, d.ID}, incs[0].Findings)
}

func ptr[T any](v T) *T { return &v }

// TestHealthyNoise: under normal noise no node is anomalous, so nothing
// groups findings by a cause or ranks one by its behaviour.
func TestHealthyNoise(t *testing.T) {
	for _, sys := range []*system{chain(), messaging()} {
		sys.noise = true
		r := newRun(t, Options{})
		for i := range 200 {
			r.now = r.now.Add(5 * time.Second)
			s := sys.snapshot(r.now)
			require.Empty(t, r.tr.Correlate(s, nil))
			if i < 10 {
				continue
			}
			tp := newTopo(s)
			nf, ef := features(tp)
			for n := range tp.nodes {
				a := r.tr.judge(tp, nf, ef, int32(n))
				require.Less(t, a.score, onsetAnomaly, "tick %d: %s is anomalous under noise: %+v", i, tp.nodes[n].ID, a.aspects)
			}
		}
	}
}

// TestBounds: baselines and incidents stay within their bounds.
func TestBounds(t *testing.T) {
	sys := chain()
	reg := prometheus.NewRegistry()
	r := newRun(t, Options{MaxBaselines: 5, MaxIncidents: 1, Registerer: reg})
	r.learn(sys, 3)
	require.Len(t, r.tr.base.m, 5)
	a := firing(finding.KindRetryStorm, r.now, "s:api", "s:orders")
	b := firing(finding.KindRetryStorm, r.now, "s:shop", "s:payments")
	incs := r.tick(sys, a, b)
	require.Len(t, incs, 1, "one incident at most")
	n, err := testutil.GatherAndCount(reg, "cartograph_incidents_dropped_total", "cartograph_incident_baselines_dropped_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 1.0, testutil.ToFloat64(r.tr.metric.dropped))
	require.Positive(t, testutil.ToFloat64(r.tr.metric.baseDropped))
}

// TestChanges: a change on the cause shortly before the incident is cited
// and raises its rank.
func TestChanges(t *testing.T) {
	sys := chain()
	var log changeLog
	r := newRun(t, Options{Changes: &log})
	r.learn(sys, 20)
	log = append(log, Change{ID: "chg-1", At: r.now.Add(-40 * time.Second), NodeID: nodeOf("s:payments").ID, Summary: "version 1.42 of payments"},
		Change{ID: "chg-2", At: r.now.Add(-time.Hour), NodeID: nodeOf("s:payments").ID, Summary: "too old"})
	sys.set("s:shop", "s:payments", func(f *flow) { f.errRatio = 0.5 })
	f := firing(finding.KindRetryStorm, r.now, "s:shop", "s:payments")
	incs := r.tick(sys, f)
	require.Equal(t, []string{"chg-1"}, incs[0].Changes)
	c := top(t, incs[0])
	require.Equal(t, "payments", c.Node)
	require.Contains(t, strings.Join(c.Reasons, "\n"), "version 1.42 of payments")
}

// TestChangeRanksFirst: of two candidate causes that nothing else tells
// apart, the one whose new version started 40 s before the onset ranks
// first; without the change the finding's own callee does.
func TestChangeRanksFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change bool
		want   string
	}{
		{name: "no change", want: "api"},
		{name: "version of orders 40 s before", change: true, want: "orders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := chain()
			var log changeLog
			r := newRun(t, Options{Changes: &log})
			r.learn(sys, 20)
			onset := r.now.Add(5 * time.Second)
			if tc.change {
				log = append(log, Change{ID: "chg-v", At: onset.Add(-40 * time.Second), NodeID: nodeOf("s:orders").ID, Summary: "version 1.42 of orders (was 1.41)"})
			}
			incs := r.tick(sys, firing(finding.KindRetryStorm, onset, "s:gateway", "s:api"))
			require.Len(t, incs, 1)
			c := top(t, incs[0])
			require.Equal(t, tc.want, c.Node, "%+v", incs[0].RootCauses)
			if tc.change {
				require.Contains(t, c.Reasons, "changed 40 s before the incident began: version 1.42 of orders (was 1.41)")
				require.Equal(t, []string{"chg-v"}, incs[0].Changes)
			}
		})
	}
}

// changeLog is a ChangeSource over a list kept in the test.
type changeLog []Change

func (l *changeLog) ChangesBetween(from, to time.Time) []Change {
	var out []Change
	for _, c := range *l {
		if !c.At.Before(from) && !c.At.After(to) {
			out = append(out, c)
		}
	}
	return out
}

// TestReopen: a new finding a resolved incident's root cause explains,
// within a minute of its resolution, reopens it (the same fault, back); a
// fault elsewhere on the same path opens another.
func TestReopen(t *testing.T) {
	sys := chain()
	r := newRun(t, Options{})
	r.learn(sys, 20)
	sys.set("s:orders", "d:orders", func(f *flow) { f.errRatio = 0.6 })
	sys.set("s:api", "s:orders", func(f *flow) { f.errRatio = 0.6 })
	a := firing(finding.KindRetryStorm, r.now, "s:api", "s:orders")
	incs := r.tick(sys, a)
	require.Equal(t, "orders", top(t, incs[0]).Node)
	require.Equal(t, "database:postgresql/orders", top(t, incs[0]).NodeID)
	first := incs[0].ID
	ra := a
	ra.State, ra.ResolvedAt = finding.StateResolved, ptr(r.now)
	incs = r.tick(sys, ra)
	require.Equal(t, finding.IncidentResolved, incs[0].State)

	// 20 s later the gateway's calls to api storm: orders' database is
	// among what explains it.
	r.tick(sys, ra)
	r.tick(sys, ra)
	b := firing(finding.KindRetryStorm, r.now, "s:gateway", "s:api")
	incs = r.tick(sys, ra, b)
	require.Len(t, incs, 1, "%+v", incs)
	require.Equal(t, first, incs[0].ID)
	require.Equal(t, finding.IncidentOpen, incs[0].State)
	rb := b
	rb.State, rb.ResolvedAt = finding.StateResolved, ptr(r.now)
	incs = r.tick(sys, ra, rb)
	require.Equal(t, finding.IncidentResolved, incs[0].State)

	// A bottleneck on the gateway itself: on the same path, but orders'
	// database cannot explain a node's own time: a new incident.
	c := firing(finding.KindBottleneck, r.now, "s:gateway")
	incs = r.tick(sys, ra, rb, c)
	require.Len(t, incs, 2, "%+v", incs)
	require.Equal(t, "inc-"+c.ID, incs[0].ID)
}
