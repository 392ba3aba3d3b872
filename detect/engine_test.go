package detect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// scripted is a Detector whose observations the test sets before each Eval.
type scripted struct {
	kind  finding.Kind
	obs   []Observation
	panic bool
}

func (d *scripted) Kind() finding.Kind { return d.kind }
func (d *scripted) Detect(context.Context, *graph.Snapshot) []Observation {
	if d.panic {
		panic("boom")
	}
	return d.obs
}

func storm(edge string, sev finding.Severity) Observation {
	return Observation{Kind: finding.KindRetryStorm, Subject: finding.Subject{Source: "a", Target: "b", EdgeID: edge}, Severity: sev,
		Summary: "a retries b", Evidence: map[string]any{"retry_ratio": 0.4}}
}

type engineClock struct{ t time.Time }

func (c *engineClock) now() time.Time { return c.t }

func newTestEngine(t *testing.T, d ...Detector) (*Engine, *engineClock, *prometheus.Registry) {
	t.Helper()
	clk := &engineClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	e, err := NewEngine(EngineOptions{Detectors: d, Interval: 5 * time.Second, Now: clk.now, Registerer: reg})
	require.NoError(t, err)
	return e, clk, reg
}

func TestLifecycle(t *testing.T) {
	d := &scripted{kind: finding.KindRetryStorm}
	e, clk, reg := newTestEngine(t, d)
	ctx, snap := context.Background(), &graph.Snapshot{}
	tick := func() { clk.t = clk.t.Add(5 * time.Second); e.Eval(ctx, snap) }

	d.obs = []Observation{storm("a->b", finding.SeverityWarning)}
	e.Eval(ctx, snap)
	f := e.Findings(0)
	require.Len(t, f, 1)
	require.Equal(t, finding.StatePending, f[0].State, "held for less than the hold time")
	require.Empty(t, e.Findings(finding.StateFiring))
	id := f[0].ID

	tick()
	f = e.Findings(finding.StateFiring)
	require.Len(t, f, 1)
	require.Equal(t, id, f[0].ID, "the same problem keeps its id")
	require.NotNil(t, f[0].FiredAt)
	require.Equal(t, 1.0, testutil.ToFloat64(findingsCollector{e}))

	d.obs = []Observation{storm("a->b", finding.SeverityCritical)}
	tick()
	require.Equal(t, finding.SeverityCritical, e.Findings(finding.StateFiring)[0].Severity, "evidence and severity follow the condition")

	d.obs = nil
	tick() // 5s without the condition: still within keep-firing (10s)
	require.Len(t, e.Findings(finding.StateFiring), 1)
	tick()
	require.Empty(t, e.Findings(finding.StateFiring))
	r := e.Findings(finding.StateResolved)
	require.Len(t, r, 1)
	require.Equal(t, id, r[0].ID)
	require.NotNil(t, r[0].ResolvedAt)
	n, err := testutil.GatherAndCount(reg, "cartograph_finding_firing")
	require.NoError(t, err)
	require.Zero(t, n, "no stale series once resolved")

	tick() // 5s, and
	tick() // 10s after resolving: a recurrence from now on is a new problem
	d.obs = []Observation{storm("a->b", finding.SeverityWarning)}
	tick()
	tick()
	f = e.Findings(finding.StateFiring)
	require.Len(t, f, 1)
	require.NotEqual(t, id, f[0].ID, "a recurrence after keep-firing is a new finding")
	require.Len(t, e.Findings(0), 2)
}

// TestHysteresis drives one edge's condition through the sequences a ratio
// hovering at its threshold produces: above the enter threshold (storm),
// between exit and enter (sustain), below the exit threshold (absent).
func TestHysteresis(t *testing.T) {
	const (
		enter   = 'E' // above the enter threshold
		early   = 'p' // past the pending-only threshold, below the enter one
		sustain = 's' // between exit and enter thresholds
		absent  = '.' // below the exit threshold
	)
	for _, tc := range []struct {
		name string
		seq  string // one evaluation per character, 5s apart
		// ids is how many distinct finding ids the sequence shows, states
		// the state after each evaluation (P pending, F firing, R resolved,
		// - none).
		ids    int
		states string
	}{
		{"steady", "EEEEEE", 1, "PFFFFF"},
		{"hovering just under the budget stays firing", "EEsEssEssssE", 1, "PFFFFFFFFFFF"},
		{"sustain alone starts nothing", "ssssss", 0, "------"},
		{"sustain does not promote a pending finding", "Essss", 1, "P----"},
		{"resolves below the exit threshold", "EEs...", 1, "PFFFRR"},
		{"fires again within keep-firing: same id", "EE...E.E", 1, "PFFRRFFF"},
		{"fires again after keep-firing: new id", "EE.....EE", 2, "PFFRRRRPF"},
		{"pending-only starts a pending finding, never fires it", "pppp", 1, "PPPP"},
		{"pending-only then enter fires after the hold", "pE", 1, "PF"},
		{"enter then pending-only stays pending", "EppE", 1, "PPPF"},
		{"pending-only keeps a firing finding firing", "EEpppp", 1, "PFFFFF"},
		{"sustain does not keep a pending-only finding", "ps", 1, "P-"},
		{"pending-only that stops leaves nothing", "p.E", 2, "P-P"},
		{"pending-only does not revive a resolved finding, enter does", "EE..pE", 1, "PFFRRF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &scripted{kind: finding.KindRetryStorm}
			e, clk, _ := newTestEngine(t, d)
			ctx := context.Background()
			ids := map[string]bool{}
			for i, c := range tc.seq {
				switch c {
				case enter:
					d.obs = []Observation{storm("a->b", finding.SeverityWarning)}
				case sustain:
					o := storm("a->b", finding.SeverityWarning)
					o.Sustain = true
					d.obs = []Observation{o}
				case early:
					o := storm("a->b", finding.SeverityWarning)
					o.PendingOnly = true
					d.obs = []Observation{o}
				default:
					d.obs = nil
				}
				e.Eval(ctx, &graph.Snapshot{})
				clk.t = clk.t.Add(5 * time.Second)
				got := byte('-')
				fs := e.Findings(0)
				if len(fs) > 0 {
					got = "?PFR"[fs[0].State]
				}
				for _, f := range fs {
					ids[f.ID] = true
				}
				require.Equalf(t, tc.states[i], got, "state after evaluation %d (%q), findings %+v", i, tc.seq[:i+1], fs)
			}
			require.Len(t, ids, tc.ids)
		})
	}
}

func TestPendingThatStopsNeverSurfaces(t *testing.T) {
	d := &scripted{kind: finding.KindRetryStorm, obs: []Observation{storm("a->b", finding.SeverityWarning)}}
	e, clk, _ := newTestEngine(t, d)
	e.Eval(context.Background(), &graph.Snapshot{})
	d.obs = nil
	clk.t = clk.t.Add(5 * time.Second)
	e.Eval(context.Background(), &graph.Snapshot{})
	require.Empty(t, e.Findings(0), "a blip shorter than the hold time leaves nothing behind")
}

func TestPanickingDetectorIsContained(t *testing.T) {
	bad := &scripted{kind: finding.KindBottleneck, panic: true}
	good := &scripted{kind: finding.KindRetryStorm, obs: []Observation{storm("a->b", finding.SeverityWarning)}}
	e, _, _ := newTestEngine(t, bad, good)
	e.Eval(context.Background(), &graph.Snapshot{})
	require.Len(t, e.Findings(0), 1)
	require.Equal(t, 1.0, testutil.ToFloat64(e.panics.WithLabelValues("bottleneck")))
}

func TestFindingsBoundedAndOrdered(t *testing.T) {
	d := &scripted{kind: finding.KindRetryStorm}
	clk := &engineClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e, err := NewEngine(EngineOptions{Detectors: []Detector{d}, MaxFindings: 3, Now: clk.now})
	require.NoError(t, err)
	for i, sev := range []finding.Severity{finding.SeverityWarning, finding.SeverityCritical, finding.SeverityWarning, finding.SeverityCritical} {
		d.obs = append(d.obs, storm(strings.Repeat("x", i+1), sev))
	}
	e.Eval(context.Background(), &graph.Snapshot{})
	require.Len(t, e.Findings(0), 3)
	require.Equal(t, 1.0, testutil.ToFloat64(e.dropped))
	clk.t = clk.t.Add(5 * time.Second)
	e.Eval(context.Background(), &graph.Snapshot{})
	f := e.Findings(0)
	require.Equal(t, finding.SeverityCritical, f[0].Severity, "critical first")
	require.Equal(t, finding.StateFiring, f[0].State)
}

func TestTextRejectsUnknown(t *testing.T) {
	var k finding.Kind
	require.NoError(t, k.UnmarshalText([]byte("consumer_lag")))
	require.Equal(t, finding.KindConsumerLag, k)
	require.Error(t, k.UnmarshalText([]byte("gremlins")))
	var s finding.State
	require.Error(t, s.UnmarshalText([]byte("sleepy")))
	var v finding.Severity
	require.Error(t, v.UnmarshalText([]byte("meh")))
}

func TestRestore(t *testing.T) {
	d := &scripted{kind: finding.KindRetryStorm, obs: []Observation{storm("a->b", finding.SeverityWarning)}}
	e, clk, _ := newTestEngine(t, d)
	ctx := context.Background()
	e.Eval(ctx, &graph.Snapshot{})
	clk.t = clk.t.Add(5 * time.Second)
	e.Eval(ctx, &graph.Snapshot{})
	saved := e.Findings(0)
	require.Len(t, saved, 1)
	require.Equal(t, finding.StateFiring, saved[0].State)

	// A restart: a new engine gets the stored findings back.
	e2, clk2, _ := newTestEngine(t, d)
	clk2.t = clk.t.Add(5 * time.Second)
	e2.Restore(saved)
	e2.Restore(saved) // twice is harmless
	require.Equal(t, saved, e2.Findings(0))
	e2.Eval(ctx, &graph.Snapshot{})
	f := e2.Findings(finding.StateFiring)
	require.Len(t, f, 1)
	require.Equal(t, saved[0].ID, f[0].ID, "the same problem keeps its id across the restart")
	require.Equal(t, saved[0].StartedAt, f[0].StartedAt)
}

// TestLoadReplacesStaleState: an engine that took over judging from
// another loads what that one stored and drops its own stale state: a
// finding it still had firing but the other resolved is resolved, and the
// other's firing finding goes on firing under its id, not fired anew.
func TestLoadReplacesStaleState(t *testing.T) {
	d := &scripted{kind: finding.KindRetryStorm, obs: []Observation{storm("a->b", finding.SeverityWarning)}}
	judge, clk, _ := newTestEngine(t, d)
	ctx := context.Background()
	judge.Eval(ctx, &graph.Snapshot{})
	clk.t = clk.t.Add(5 * time.Second)
	judge.Eval(ctx, &graph.Snapshot{})
	stale := judge.Findings(0) // what the next judge had when it last judged

	d.obs = []Observation{storm("c->d", finding.SeverityWarning)}
	for range 6 { // a->b resolves, c->d fires, on the first judge
		clk.t = clk.t.Add(5 * time.Second)
		judge.Eval(ctx, &graph.Snapshot{})
	}
	stored := judge.Findings(0)

	next, clk2, _ := newTestEngine(t, d)
	clk2.t = clk.t.Add(5 * time.Second)
	next.Restore(stale)
	next.Load(stored)
	require.Equal(t, stored, next.Findings(0))
	next.Eval(ctx, &graph.Snapshot{})
	firing := next.Findings(finding.StateFiring)
	require.Len(t, firing, 1)
	require.Equal(t, "c->d", firing[0].Subject.EdgeID)
	want := judge.Findings(finding.StateFiring)[0]
	require.Equal(t, want.ID, firing[0].ID, "it goes on firing under its id")
	require.Equal(t, want.FiredAt, firing[0].FiredAt, "not fired again")
	require.Len(t, next.Findings(finding.StateResolved), 1, "a->b stays resolved")
}

// TestFindingKeepsItsPeakAndTimeline is issue #17 3: a finding that went
// from warning to critical and back to warning before resolving still
// tells, once resolved, how bad it got (its peak: the last critical
// evaluation, with that evaluation's summary and evidence), and the steps
// of its life in order.
func TestFindingKeepsItsPeakAndTimeline(t *testing.T) {
	d := &scripted{kind: finding.KindOpenCircuit}
	e, clk, _ := newTestEngine(t, d)
	steps := []struct {
		sev  finding.Severity
		text string
	}{{finding.SeverityWarning, "half-open: 40 of 100"}, {finding.SeverityWarning, "half-open: 60 of 100"}, {finding.SeverityCritical, "open: 386 of 386"},
		{finding.SeverityCritical, "open: 390 of 390"}, {finding.SeverityWarning, "half-open: 389 of 480"}}
	for i := range len(steps) + 30 {
		d.obs = nil
		if i < len(steps) {
			st := steps[i]
			d.obs = []Observation{{Kind: finding.KindOpenCircuit, Severity: st.sev, Subject: finding.Subject{Source: "a", Target: "b", EdgeID: "a->b"},
				Summary: st.text, Evidence: map[string]any{"text": st.text}}}
		}
		e.Eval(context.Background(), &graph.Snapshot{})
		clk.t = clk.t.Add(5 * time.Second)
	}
	fs := e.Findings(finding.StateResolved)
	require.Len(t, fs, 1)
	f := fs[0]
	require.Equal(t, finding.SeverityWarning, f.Severity, "its last evaluation")
	require.NotNil(t, f.Peak)
	require.Equal(t, finding.SeverityCritical, f.Peak.Severity)
	require.Equal(t, "open: 390 of 390", f.Peak.Summary, "the last evaluation at its worst")
	require.Equal(t, "open: 390 of 390", f.Peak.Evidence["text"])
	var got []string
	for _, c := range f.Timeline {
		got = append(got, c.State.String()+"/"+c.Severity.String())
	}
	require.Equal(t, []string{"pending/warning", "firing/warning", "firing/critical", "firing/warning", "resolved/warning"}, got)
	require.True(t, f.Timeline[len(f.Timeline)-1].At.Equal(*f.ResolvedAt))
}
