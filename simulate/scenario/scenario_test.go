package scenario_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// world is the collector's pipeline in one process, on a simulated clock:
// OTLP traces through semconv into a graph with critical paths, broker
// metrics into a lag store, and the four detectors in an engine.
type world struct {
	t       *testing.T
	now     time.Time
	g       *graph.Graph
	traces  *semconv.Pipeline
	metrics *brokermetrics.Consumer
	engine  *detect.Engine
	// incidents groups the findings of each evaluation, as the runner has
	// it.
	incidents *incident.Tracker
	gen       *scenario.Generator
	elapsed   time.Duration
}

const (
	evalEvery = 5 * time.Second
	window    = 30 * time.Second
)

func newWorld(t *testing.T, o scenario.Options) *world {
	t.Helper()
	w := &world{t: t, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return w.now }
	lags, err := lag.New(lag.Options{Retention: 15 * time.Minute, Now: clock})
	require.NoError(t, err)
	judged, err := detect.NewLagJudge(lags, detect.LagJudgeOptions{})
	require.NoError(t, err)
	breakers, err := resilience.New(resilience.Options{Now: clock})
	require.NoError(t, err)
	paths, err := critpath.New(critpath.Options{SampleOneIn: 1, TraceIdle: time.Second, Window: window, Now: clock})
	require.NoError(t, err)
	w.g, err = graph.New(graph.Options{Window: window, Lag: judged, Circuits: breakers, Paths: paths, Now: clock})
	require.NoError(t, err)
	w.traces, err = semconv.NewPipeline(semconv.Options{Sink: w.g})
	require.NoError(t, err)
	w.metrics, err = brokermetrics.New(brokermetrics.Options{Lag: lags, Resilience: breakers, Now: clock})
	require.NoError(t, err)
	w.engine, err = detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{
			detect.NewRetryStorm(detect.RetryStormOptions{}),
			detect.NewConsumerLag(detect.ConsumerLagOptions{}),
			detect.NewOpenCircuit(detect.OpenCircuitOptions{}),
			detect.NewBottleneck(detect.BottleneckOptions{}),
		},
		Interval: evalEvery,
		Now:      clock,
	})
	require.NoError(t, err)
	w.incidents, err = incident.New(incident.Options{Interval: evalEvery, Now: clock})
	require.NoError(t, err)
	w.gen, err = scenario.New(o)
	require.NoError(t, err)
	return w
}

// run feeds tracesPerSec traces and one broker reading per simulated
// second for d, evaluating the detectors every evalEvery.
func (w *world) run(d time.Duration, tracesPerSec int) {
	w.t.Helper()
	ctx := context.Background()
	for end := w.elapsed + d; w.elapsed < end; w.elapsed += time.Second {
		w.now = w.now.Add(time.Second)
		require.NoError(w.t, w.traces.ConsumeTraces(ctx, w.gen.Traces(w.now, tracesPerSec)))
		require.NoError(w.t, w.metrics.ConsumeMetrics(ctx, w.gen.Metrics(w.now)))
		w.g.Expire()
		if w.elapsed%evalEvery == 0 {
			s, err := w.g.Snapshot(0)
			require.NoError(w.t, err)
			w.engine.Eval(ctx, s)
			w.incidents.Correlate(s, w.engine.Findings(0))
		}
	}
}

func (w *world) findings(st finding.State) []finding.Finding { return w.engine.Findings(st) }

func TestHealthyRaisesNothing(t *testing.T) {
	for _, n := range []int{scenario.MinServices, 24, 200} {
		t.Run(itoa(n), func(t *testing.T) {
			w := newWorld(t, scenario.Options{Services: n, Seed: 7})
			w.run(2*time.Minute, 40)
			require.Empty(t, w.findings(0), "a healthy system raises no finding")
			s, err := w.g.Snapshot(0)
			require.NoError(t, err)
			require.NotEmpty(t, s.Edges)
		})
	}
}

// TestFaultFiresItsFinding: each fault raises its findings and nothing
// else, they make one incident naming the fault's cause first, and they
// resolve once it is off.
func TestFaultFiresItsFinding(t *testing.T) {
	for _, f := range scenario.AllFaults() {
		t.Run(f.String(), func(t *testing.T) {
			w := newWorld(t, scenario.Options{Services: 24, Seed: 3})
			w.run(time.Minute, 40) // the usual latencies and the answering services are learnt
			require.Empty(t, w.findings(0))
			w.gen.SetFault(f, true)
			want := w.gen.Expect(f)
			all := append([]scenario.Expectation{want}, want.Also...)
			var fired []finding.Finding
			for i := 0; i < 30 && len(fired) < len(all); i++ {
				w.run(evalEvery, 40)
				fired = w.findings(finding.StateFiring)
			}
			require.Len(t, fired, len(all), "the fault's own findings fire, and only they: %+v", fired)
			for _, e := range all {
				found := false
				for _, got := range fired {
					found = found || e.Kind == got.Kind.String() && e.Node == got.Subject.Node && e.Source == got.Subject.Source && e.Target == got.Subject.Target
				}
				require.True(t, found, "%s %s%s -> %s never fired: %+v", e.Kind, e.Node, e.Source, e.Target, fired)
			}
			t.Logf("%s fired after %s: %s", f, w.elapsed-time.Minute, fired[0].Summary)
			incs := w.incidents.Incidents(0)
			require.Len(t, incs, 1, "one incident: %+v", incs)
			require.Len(t, incs[0].Findings, len(all))
			cause := want.Cause
			if cause == "" {
				cause = want.Node + want.Target // the finding's own subject: the node, or the callee
			}
			top, ok := incs[0].TopCause()
			require.True(t, ok)
			require.Equal(t, cause, top.Node, "root causes: %+v", incs[0].RootCauses)
			if want.CauseKind != "" {
				require.True(t, strings.HasPrefix(top.NodeID, want.CauseKind+":"), "the %s, not a namesake: %s", want.CauseKind, top.NodeID)
			}

			// Switched off, the finding resolves.
			w.gen.SetFault(f, false)
			require.Eventually(t, func() bool {
				w.run(evalEvery, 40)
				return len(w.findings(finding.StateFiring)) == 0
			}, time.Minute, time.Millisecond, "%s never resolved", f)
		})
	}
}

func TestDeterministic(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	gen := func(seed uint64) []byte {
		g, err := scenario.New(scenario.Options{Services: 50, Seed: seed, Faults: scenario.AllFaults()})
		require.NoError(t, err)
		var m ptrace.ProtoMarshaler
		var out []byte
		for i := range 3 {
			b, err := m.MarshalTraces(g.Traces(now.Add(time.Duration(i)*time.Second), 20))
			require.NoError(t, err)
			out = append(out, b...)
		}
		return out
	}
	require.Equal(t, gen(1), gen(1))
	require.NotEqual(t, gen(1), gen(2))
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestTopologyInTheGraph checks that the scenario exercises what the graph
// models: every node kind, sync and async edges, consumer groups, batch
// consumers paired by span link (their edges carry a delay), lag from broker
// metrics, and that no span is refused.
func TestTopologyInTheGraph(t *testing.T) {
	w := newWorld(t, scenario.Options{Services: 60, Seed: 11})
	w.run(20*time.Second, 60)
	s, err := w.g.Snapshot(0)
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, n := range s.Nodes {
		kinds[n.Kind.String()]++
	}
	for _, k := range []string{"service", "topic", "queue", "database", "external", "client"} {
		require.Positive(t, kinds[k], "no %s node: %v", k, kinds)
	}
	require.Equal(t, 60, kinds["service"], "every service is reached")
	var batch, lagged, grpc int
	for _, e := range s.Edges {
		if e.ConsumerGroup != "" && len(e.ConsumerGroup) > 6 && e.ConsumerGroup[len(e.ConsumerGroup)-6:] == "-batch" {
			batch++
			require.NotNil(t, e.Delay, "batch consumer %s paired by span link", e.ID)
		}
		if e.Lag != nil {
			lagged++
		}
		if e.Protocol.String() == "grpc" {
			grpc++
		}
		require.Zero(t, e.Unanswered, "every call is answered: %s", e.ID)
	}
	require.Positive(t, batch)
	require.Positive(t, lagged)
	require.Positive(t, grpc)
}
