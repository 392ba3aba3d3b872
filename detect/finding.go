// Package detect judges the graph: detectors read an immutable
// graph.Snapshot and report the conditions they see; the Engine runs them on
// each snapshot it is given and carries each condition through the lifecycle
// inactive -> pending -> firing -> resolved, with a hold time before firing
// and a keep-firing time before resolving, so findings do not flap.
//
// Detectors build no UI and write no storage; the runner (detect/runner)
// owns the tick and hands what the Engine returns to those who publish and
// persist it. Finding types live in graph/finding.
package detect

import (
	"context"
	"slices"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Observation is a condition a detector sees holding in one snapshot.
type Observation struct {
	Kind     finding.Kind
	Subject  finding.Subject
	Severity finding.Severity
	// Summary says why, in one sentence, with the numbers.
	Summary string
	// Evidence carries the numbers that made the condition hold. Values
	// must be JSON-encodable and are not modified after return.
	Evidence map[string]any
	// Sustain marks a condition that is past its exit threshold but not
	// its enter threshold (a retry ratio between 80% of the budget and the
	// budget, say): it keeps a firing finding firing, with this evidence,
	// but starts none and does not promote a pending one. Detectors report
	// it so that a number hovering at its threshold does not resolve and
	// re-fire the finding at every crossing.
	Sustain bool
	// PendingOnly marks a condition past an early threshold, below its
	// enter threshold (a storm's first seconds, its ratio already past the
	// budget but not yet past the bar a page needs): it starts a pending
	// finding, or keeps one pending, so that the hold runs from the first
	// sign, and keeps a firing finding firing; but it never promotes a
	// pending finding to firing. Only an observation past the enter
	// threshold does that, once the finding has been pending for the hold.
	PendingOnly bool
}

// key identifies the condition across ticks: the same problem on the same
// subject is the same finding.
func (o *Observation) key() string { return finding.Key(o.Kind, o.Subject) }

// Detector finds one kind of problem in a snapshot. Detect must not modify
// the snapshot and must return promptly when ctx is done. A detector is
// called from one goroutine at a time.
type Detector interface {
	Kind() finding.Kind
	Detect(ctx context.Context, s *graph.Snapshot) []Observation
}

// maxTimeline bounds a finding's timeline (a finding flapping for days
// keeps its first step and its newest).
const maxTimeline = 32

// record appends a step to f's timeline when it changes the state or the
// severity, keeping it within maxTimeline.
func record(f *finding.Finding, at time.Time) {
	if n := len(f.Timeline); n > 0 && f.Timeline[n-1].State == f.State && f.Timeline[n-1].Severity == f.Severity {
		return
	}
	if len(f.Timeline) >= maxTimeline {
		f.Timeline = slices.Delete(f.Timeline, 1, 2)
	}
	f.Timeline = append(f.Timeline, finding.Change{At: at, State: f.State, Severity: f.Severity})
}

// notePeak makes the current evaluation f's peak when it fires at least
// as severely as the peak so far.
func notePeak(f *finding.Finding, at time.Time) {
	if f.State != finding.StateFiring || f.Peak != nil && f.Severity < f.Peak.Severity {
		return
	}
	f.Peak = &finding.Peak{At: at, Severity: f.Severity, Summary: f.Summary, Evidence: f.Evidence}
}
