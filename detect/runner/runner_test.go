package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// source hands out numbered snapshots (GeneratedAt = the n-th second), or
// fails while err is set.
type source struct {
	mu  sync.Mutex
	n   int
	err error
}

func (s *source) Snapshot(time.Duration) (*graph.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	s.n++
	return &graph.Snapshot{GeneratedAt: time.Unix(int64(s.n), 0)}, nil
}

// judge records the snapshots it judged and lists one finding per
// judgement, naming the snapshot it came from.
type judge struct {
	mu     sync.Mutex
	judged []*graph.Snapshot
}

func (j *judge) Eval(_ context.Context, s *graph.Snapshot) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.judged = append(j.judged, s)
}

func (j *judge) Findings(finding.State) []finding.Finding {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.judged) == 0 {
		return nil
	}
	return []finding.Finding{{ID: "f", LastSeen: j.judged[len(j.judged)-1].GeneratedAt}}
}

type received struct {
	snap      *graph.Snapshot
	findings  []finding.Finding
	incidents []finding.Incident
}

type receiver struct {
	mu  sync.Mutex
	got []received
}

func (r *receiver) Receive(s *graph.Snapshot, fs []finding.Finding, incs []finding.Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, received{s, fs, incs})
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// TestTickHandsOnWhatWasJudged: every receiver gets the very snapshot the
// judge saw, with the findings as they stand after that judgement; one
// snapshot is built per tick, whatever the number of receivers.
func TestTickHandsOnWhatWasJudged(t *testing.T) {
	src, j := &source{}, &judge{}
	a, b := &receiver{}, &receiver{}
	r, err := runner.New(runner.Options{Source: src, Judge: j, Findings: j, Receivers: []runner.Receiver{a, b}})
	require.NoError(t, err)
	for range 3 {
		require.True(t, r.Tick(context.Background()))
	}
	require.Equal(t, 3, src.n, "one snapshot per tick")
	for _, rc := range []*receiver{a, b} {
		got := rc.all()
		require.Len(t, got, 3)
		for i, g := range got {
			require.Same(t, j.judged[i], g.snap, "the snapshot judged, not another")
			require.Len(t, g.findings, 1)
			require.Equal(t, g.snap.GeneratedAt, g.findings[0].LastSeen, "findings after this snapshot's judgement")
		}
	}
	require.Same(t, a.all()[2].snap, b.all()[2].snap, "receivers share one snapshot")
}

// graphSource hands out a snapshot of one service, a, named in finding f
// while firing is set.
type graphSource struct{ firing bool }

func (g *graphSource) Snapshot(time.Duration) (*graph.Snapshot, error) {
	return graph.NewSnapshot(time.Now(), time.Minute, []graph.Node{{ID: "service:a", Kind: graph.NodeService, Name: "a"}}, nil), nil
}

func (g *graphSource) Findings(finding.State) []finding.Finding {
	if !g.firing {
		return nil
	}
	return []finding.Finding{{ID: "f", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Node: "a", NodeID: "service:a"}, StartedAt: time.Unix(1, 0)}}
}

// TestTickHandsOnIncidents: the incidents handed on are those the
// correlator (the real tracker) made of the tick's snapshot and findings.
func TestTickHandsOnIncidents(t *testing.T) {
	src := &graphSource{}
	tr, err := incident.New(incident.Options{})
	require.NoError(t, err)
	rc := &receiver{}
	reg := prometheus.NewRegistry()
	r, err := runner.New(runner.Options{Source: src, Findings: src, Incidents: tr, Receivers: []runner.Receiver{rc}, Registerer: reg})
	require.NoError(t, err)
	require.True(t, r.Tick(context.Background()))
	src.firing = true
	require.True(t, r.Tick(context.Background()))
	got := rc.all()
	require.Empty(t, got[0].incidents)
	require.Len(t, got[1].incidents, 1)
	require.Equal(t, []string{"f"}, got[1].incidents[0].Findings)
	require.Equal(t, "inc-f", got[1].incidents[0].ID)
	require.Equal(t, tr.Incidents(0), got[1].incidents)
}

// TestTickWithoutJudge: a process that does not judge (--detect off) hands
// on its graph with the findings others judged.
func TestTickWithoutJudge(t *testing.T) {
	src, rc := &source{}, &receiver{}
	stored := findingsFunc(func(finding.State) []finding.Finding { return []finding.Finding{{ID: "stored"}} })
	r, err := runner.New(runner.Options{Source: src, Findings: stored, Receivers: []runner.Receiver{rc}})
	require.NoError(t, err)
	require.True(t, r.Tick(context.Background()))
	require.Equal(t, "stored", rc.all()[0].findings[0].ID)
}

type findingsFunc func(finding.State) []finding.Finding

func (f findingsFunc) Findings(s finding.State) []finding.Finding { return f(s) }

// TestTickSnapshotFails: a snapshot that cannot be built skips the tick,
// counted; receivers keep what they had.
func TestTickSnapshotFails(t *testing.T) {
	src, j, rc := &source{err: errors.New("storage down")}, &judge{}, &receiver{}
	reg := prometheus.NewRegistry()
	r, err := runner.New(runner.Options{Source: src, Judge: j, Findings: j, Receivers: []runner.Receiver{rc}, Registerer: reg})
	require.NoError(t, err)
	require.False(t, r.Tick(context.Background()))
	require.Empty(t, rc.all())
	require.Empty(t, j.judged)
	require.Equal(t, 1.0, counterValue(t, reg, "cartograph_tick_failed_total"))
}

// counterValue returns the value of the counter name in g.
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRunFirstTickUnjudged: Run hands on the state at once, without
// judging (the first evaluation waits for its aligned tick, so that hold
// times count from it), then judges on aligned ticks.
func TestRunFirstTickUnjudged(t *testing.T) {
	src, j, rc := &source{}, &judge{}, &receiver{}
	r, err := runner.New(runner.Options{Source: src, Judge: j, Findings: j, Receivers: []runner.Receiver{rc}, Interval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return len(rc.all()) >= 3 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	got := rc.all()
	require.Empty(t, got[0].findings, "the first hand-over is not judged")
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Len(t, j.judged, len(got)-1)
}

// TestOptionsValidate: a runner needs a source and a findings list.
func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]runner.Options{
		"no source":         {Findings: &judge{}},
		"no findings":       {Source: &source{}},
		"negative interval": {Source: &source{}, Findings: &judge{}, Interval: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := runner.New(o)
			require.Error(t, err)
		})
	}
}
