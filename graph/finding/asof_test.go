package finding

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAsOf(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ptr := func(t time.Time) *time.Time { return &t }
	peakEv := map[string]any{"unanswered": 386}
	lastEv := map[string]any{"unanswered": 3}
	// A circuit that went pending at 0, fired warning at 10, critical at
	// 20 (its peak at 25), back to warning at 30, resolved at 40.
	resolved := Finding{
		ID: "f1", Kind: KindOpenCircuit, State: StateResolved, Severity: SeverityWarning,
		Summary: "last", Evidence: lastEv,
		StartedAt: at(0), FiredAt: ptr(at(10)), ResolvedAt: ptr(at(40)), LastSeen: at(35),
		Peak: &Peak{At: at(25), Severity: SeverityCritical, Summary: "peak", Evidence: peakEv},
		Timeline: []Change{
			{At: at(0), State: StatePending, Severity: SeverityWarning},
			{At: at(10), State: StateFiring, Severity: SeverityWarning},
			{At: at(20), State: StateFiring, Severity: SeverityCritical},
			{At: at(30), State: StateFiring, Severity: SeverityWarning},
			{At: at(40), State: StateResolved, Severity: SeverityWarning},
		},
	}
	// Resolved at 20, fired again at 25 (revived: the same id), firing now.
	revived := Finding{
		ID: "f2", Kind: KindRetryStorm, State: StateFiring, Severity: SeverityWarning, Summary: "last",
		StartedAt: at(0), FiredAt: ptr(at(5)), LastSeen: at(60),
		Timeline: []Change{
			{At: at(0), State: StatePending, Severity: SeverityWarning},
			{At: at(5), State: StateFiring, Severity: SeverityWarning},
			{At: at(20), State: StateResolved, Severity: SeverityWarning},
			{At: at(25), State: StateFiring, Severity: SeverityWarning},
		},
	}
	// A timeline that lost its middle steps: the first (pending at 0),
	// then the newest from 100 on; it fired at 10.
	gapped := Finding{
		ID: "f3", Kind: KindBottleneck, State: StateFiring, Severity: SeverityCritical, Summary: "last",
		StartedAt: at(0), FiredAt: ptr(at(10)), LastSeen: at(200),
		Timeline: []Change{
			{At: at(0), State: StatePending, Severity: SeverityWarning},
			{At: at(100), State: StateFiring, Severity: SeverityCritical},
		},
	}
	// Stored before timelines were kept.
	bare := Finding{
		ID: "f4", Kind: KindConsumerLag, State: StateResolved, Severity: SeverityCritical, Summary: "last",
		StartedAt: at(0), FiredAt: ptr(at(10)), ResolvedAt: ptr(at(40)), LastSeen: at(35),
	}

	type want struct {
		ok              bool
		state           State
		severity        Severity
		fired, resolved *time.Time
		lastSeen        time.Time
		summary         string
		peak            bool
		steps           int
	}
	for _, tc := range []struct {
		name string
		f    Finding
		at   time.Time
		want want
	}{
		{"before it started", resolved, at(-1), want{ok: false}},
		{"at its start: pending", resolved, at(0), want{ok: true, state: StatePending, severity: SeverityWarning, lastSeen: at(0), summary: "last", steps: 1}},
		{"pending", resolved, at(5), want{ok: true, state: StatePending, severity: SeverityWarning, lastSeen: at(0), summary: "last", steps: 1}},
		{"firing, warning", resolved, at(15), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(10)), lastSeen: at(10), summary: "last", steps: 2}},
		{"critical before its peak: no peak yet", resolved, at(22), want{ok: true, state: StateFiring, severity: SeverityCritical, fired: ptr(at(10)), lastSeen: at(20), summary: "last", steps: 3}},
		{"critical after its peak: the peak's numbers", resolved, at(27), want{ok: true, state: StateFiring, severity: SeverityCritical, fired: ptr(at(10)), lastSeen: at(25), summary: "peak", peak: true, steps: 3}},
		{"warning again after the peak", resolved, at(33), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(10)), lastSeen: at(30), summary: "last", peak: true, steps: 4}},
		{"resolved exactly then", resolved, at(40), want{ok: true, state: StateResolved, severity: SeverityWarning, fired: ptr(at(10)), resolved: ptr(at(40)), lastSeen: at(35), summary: "last", peak: true, steps: 5}},
		{"resolved before", resolved, at(41), want{ok: false}},
		{"revived: firing before its pause", revived, at(10), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(5)), lastSeen: at(5), summary: "last", steps: 2}},
		{"revived: resolved in its pause", revived, at(22), want{ok: false}},
		{"revived: resolved exactly then", revived, at(20), want{ok: true, state: StateResolved, severity: SeverityWarning, fired: ptr(at(5)), resolved: ptr(at(20)), lastSeen: at(20), summary: "last", steps: 3}},
		{"revived: firing again", revived, at(30), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(5)), lastSeen: at(25), summary: "last", steps: 4}},
		{"revived: now", revived, at(70), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(5)), lastSeen: at(60), summary: "last", steps: 4}},
		{"gap: pending before it fired", gapped, at(5), want{ok: true, state: StatePending, severity: SeverityWarning, lastSeen: at(0), summary: "last", steps: 1}},
		{"gap: fired, steps lost", gapped, at(50), want{ok: true, state: StateFiring, severity: SeverityWarning, fired: ptr(at(10)), lastSeen: at(0), summary: "last", steps: 1}},
		{"gap: after", gapped, at(150), want{ok: true, state: StateFiring, severity: SeverityCritical, fired: ptr(at(10)), lastSeen: at(100), summary: "last", steps: 2}},
		{"no timeline: pending", bare, at(5), want{ok: true, state: StatePending, severity: SeverityCritical, lastSeen: at(0), summary: "last"}},
		{"no timeline: firing", bare, at(20), want{ok: true, state: StateFiring, severity: SeverityCritical, fired: ptr(at(10)), lastSeen: at(0), summary: "last"}},
		{"no timeline: resolved then", bare, at(40), want{ok: true, state: StateResolved, severity: SeverityCritical, fired: ptr(at(10)), resolved: ptr(at(40)), lastSeen: at(35), summary: "last"}},
		{"no timeline: resolved before", bare, at(41), want{ok: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.f.Timeline)
			got, ok := AsOf(tc.f, tc.at)
			require.Equal(t, tc.want.ok, ok)
			require.Len(t, tc.f.Timeline, before, "f is not modified")
			if !ok {
				return
			}
			require.Equal(t, tc.f.ID, got.ID)
			require.Equal(t, tc.f.StartedAt, got.StartedAt)
			require.Equal(t, tc.want.state, got.State, "state")
			require.Equal(t, tc.want.severity, got.Severity, "severity")
			require.Equal(t, tc.want.fired, got.FiredAt, "fired_at")
			require.Equal(t, tc.want.resolved, got.ResolvedAt, "resolved_at")
			require.Equal(t, tc.want.lastSeen, got.LastSeen, "last_seen")
			require.Equal(t, tc.want.summary, got.Summary, "summary")
			require.Equal(t, tc.want.peak, got.Peak != nil, "peak kept")
			require.Len(t, got.Timeline, tc.want.steps, "timeline cut at at")
			for _, c := range got.Timeline {
				require.False(t, c.At.After(tc.at), "a step after at")
			}
			if tc.want.summary == "peak" {
				require.Equal(t, peakEv, got.Evidence)
			}
		})
	}
}

// TestAsOfOwnTimeline checks that the result's timeline is its own: a
// caller appending to it does not write into f's.
func TestAsOfOwnTimeline(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	f := Finding{StartedAt: t0, LastSeen: t0, Timeline: make([]Change, 2, 8)}
	f.Timeline[0] = Change{At: t0, State: StatePending, Severity: SeverityWarning}
	f.Timeline[1] = Change{At: t0.Add(time.Minute), State: StateFiring, Severity: SeverityWarning}
	got, ok := AsOf(f, t0)
	require.True(t, ok)
	got.Timeline = append(got.Timeline, Change{At: t0, State: StateResolved})
	require.Equal(t, StateFiring, f.Timeline[1].State)
}
