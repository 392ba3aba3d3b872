package realism

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/stretchr/testify/require"
)

func TestScore(t *testing.T) {
	settings := Settings{EvalInterval: 5 * time.Second, PairTTL: 10 * time.Second, BrokerPoll: 15 * time.Second}
	visible := Start.Add(30 * time.Minute)
	storm := finding.Subject{Source: "checkout", Target: "payments"}
	fired := func(k finding.Kind, s finding.Subject, at ...time.Duration) Fired {
		f := Fired{Kind: k, Subject: s}
		for _, d := range at {
			f.Firings = append(f.Firings, visible.Add(d))
		}
		return f
	}
	fault := Case{Shape: RetryStormFault, Rate: 10, Onset: 30 * time.Minute}
	tests := []struct {
		name        string
		c           Case
		visible     time.Time
		fired       []Fired
		tp          bool
		fps         int
		pendingOnly int
		latency     time.Duration
	}{
		{name: "detected within budget", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, storm, 10*time.Second)}, tp: true, latency: 10 * time.Second},
		{name: "late", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, storm, 16*time.Second)}, latency: 16 * time.Second},
		{name: "a planted false positive is one, however often it fires", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, storm, 5*time.Second), fired(finding.KindBottleneck, finding.Subject{Node: "payments"}, 10*time.Second, 50*time.Second, 90*time.Second)},
			tp:    true, fps: 1, latency: 5 * time.Second},
		{name: "right kind, wrong subject", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, finding.Subject{Source: "gateway", Target: "checkout"}, 5*time.Second)}, fps: 1},
		{name: "the expected condition firing before it was visible is a false positive; its firing after it is the detection", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, storm, -10*time.Minute, 15*time.Second)}, tp: true, fps: 1, latency: 15 * time.Second},
		{name: "pending only pages nobody", c: fault, visible: visible,
			fired: []Fired{fired(finding.KindRetryStorm, storm, 5*time.Second), {Kind: finding.KindOpenCircuit, Subject: storm, Pending: visible}}, tp: true, pendingOnly: 1, latency: 5 * time.Second},
		{name: "healthy", c: Case{Shape: SyncChain, Rate: 10}, fired: []Fired{fired(finding.KindConsumerLag, finding.Subject{Source: "t", Target: "c"}, time.Minute)}, fps: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Result{Case: tt.c, Settings: settings, Visible: tt.visible}
			r.score(tt.fired, tt.c.Expect())
			require.Equal(t, tt.tp, r.TruePositive)
			require.Equal(t, tt.c.Shape.Fault() && !tt.tp, r.FalseNegative)
			require.Len(t, r.FalsePositives, tt.fps)
			require.Len(t, r.PendingOnly, tt.pendingOnly)
			require.Equal(t, tt.latency, r.Latency)
		})
	}

	t.Run("summary", func(t *testing.T) {
		var results []Result
		for _, tt := range tests {
			r := Result{Case: tt.c, Settings: settings, Visible: tt.visible}
			r.score(tt.fired, tt.c.Expect())
			results = append(results, r)
		}
		s := Summarize(results)
		byKind := map[finding.Kind]KindScore{}
		for _, k := range s.Kinds {
			byKind[k.Kind] = k
		}
		rs := byKind[finding.KindRetryStorm]
		require.Equal(t, KindScore{Kind: finding.KindRetryStorm, Faults: 6, TP: 4, FN: 2, Late: 1, FP: 2}, rs)
		require.InDelta(t, 4.0/6, rs.Precision(), 1e-9)
		require.InDelta(t, 4.0/6, rs.Recall(), 1e-9)
		require.Equal(t, 1, byKind[finding.KindBottleneck].FP)
		require.Zero(t, byKind[finding.KindBottleneck].Precision())
		require.Equal(t, 1.0, byKind[finding.KindOpenCircuit].Precision(), "nothing fired")
		require.Len(t, s.Latencies, 1)
		l := s.Latencies[0]
		require.Equal(t, 5, l.Found, "late detections count in the distribution")
		require.Equal(t, 10*time.Second, l.P50)
		require.Equal(t, 16*time.Second, l.Max)
		md := s.Markdown()
		require.Contains(t, md, "| `retry_storm` | 6 | 4 | 1 | 1 | 2 | 0.67 | 0.67 |")
		require.Contains(t, md, "| sync-chain | 10 |")
	})
}

// TestScorePlanted plants an open circuit on a healthy sync chain through
// the real pipeline: however many evaluations it fires at, it is one false
// positive.
func TestScorePlanted(t *testing.T) {
	onset := Start.Add(2 * time.Minute)
	c := Case{Shape: SyncChain, Rate: 10, Duration: 5 * time.Minute, Modify: func(sys *System) {
		sys.Dynamics.FailFast = func(from string, call *Call, at time.Time) bool {
			return from == "api" && call.To == "orders" && !at.Before(onset)
		}
	}}
	r, err := Run(context.Background(), c)
	require.NoError(t, err)
	var planted []Fired
	for _, f := range r.FalsePositives {
		if f.Kind == finding.KindOpenCircuit {
			planted = append(planted, f)
		}
	}
	require.Len(t, planted, 1, r.Verdict())
	require.Equal(t, "api -> orders", subjectString(planted[0].Subject))
	require.Greater(t, r.Stats.Evaluations, 30)
	require.True(t, strings.Contains(r.Verdict(), "open_circuit api -> orders"), r.Verdict())
	require.Equal(t, 1, Summarize([]Result{r}).Kinds[2].FP)
}

// TestReducedMatrixCoversEverything: however small the test's matrix
// gets, it keeps every fault at the low rates and both onsets, and every
// healthy shape.
func TestReducedMatrixCoversEverything(t *testing.T) {
	m := matrix()
	seen := map[string]bool{}
	for _, c := range m.Cases() {
		seen[c.Shape.String()+"@"+time.Duration(c.Rate*float64(time.Second)).String()] = true
		if c.Shape.Fault() {
			require.Equal(t, c.Onset+m.Tail, c.Duration)
		}
	}
	for _, sh := range append(append([]Shape{}, FaultShapes...), HealthyShapes...) {
		for _, rate := range []time.Duration{time.Second, 10 * time.Second} {
			require.True(t, seen[sh.String()+"@"+rate.String()], "%s at %v req/s missing", sh, rate.Seconds())
		}
	}
	require.Len(t, m.Onsets, 2)
	require.LessOrEqual(t, m.Onsets[0], 30*time.Second, "an onset shortly after start-up")
	require.GreaterOrEqual(t, m.Onsets[1], 5*time.Minute, "an onset long after start-up")
}
