// Package detect judges the graph: detectors read an immutable
// graph.Snapshot and report the conditions they see; the Engine runs them on
// aligned ticks and carries each condition through the lifecycle
// inactive -> pending -> firing -> resolved, with a hold time before firing
// and a keep-firing time before resolving, so findings do not flap.
//
// Detectors build no UI and write no storage; whoever runs the Engine
// publishes and persists what it returns.
package detect

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// Kind is the kind of a finding (SPEC.md "What each finding means").
type Kind uint8

// Finding kinds.
const (
	KindBottleneck Kind = iota + 1
	KindRetryStorm
	KindOpenCircuit
	KindConsumerLag
)

var kindNames = enumtext.Names[Kind]{Type: "finding kind", List: []string{"", "bottleneck", "retry_storm", "open_circuit", "consumer_lag"}}

// String returns the name of the value.
func (k Kind) String() string { return kindNames.String(k) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (k Kind) MarshalText() ([]byte, error) { return kindNames.Marshal(k) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := kindNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	*k = v
	return nil
}

// Severity is how urgent a finding is.
type Severity uint8

// Severities.
const (
	SeverityWarning Severity = iota + 1
	SeverityCritical
)

var severityNames = enumtext.Names[Severity]{Type: "severity", List: []string{"", "warning", "critical"}}

// String returns the name of the value.
func (s Severity) String() string { return severityNames.String(s) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (s Severity) MarshalText() ([]byte, error) { return severityNames.Marshal(s) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := severityNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	*s = v
	return nil
}

// State is where a finding is in its lifecycle.
type State uint8

// States. Inactive findings are not kept.
const (
	StatePending State = iota + 1
	StateFiring
	StateResolved
)

var stateNames = enumtext.Names[State]{Type: "state", List: []string{"", "pending", "firing", "resolved"}}

// String returns the name of the value.
func (s State) String() string { return stateNames.String(s) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (s State) MarshalText() ([]byte, error) { return stateNames.Marshal(s) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (s *State) UnmarshalText(b []byte) error {
	v, err := stateNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	*s = v
	return nil
}

// Subject is what a finding is about: a node, or an edge source -> target.
// Names are node names (SPEC.md); the ids link to the graph.
type Subject struct {
	Node   string `json:"node,omitempty"`
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`

	NodeID string `json:"node_id,omitempty"`
	EdgeID string `json:"edge_id,omitempty"`
}

// Observation is a condition a detector sees holding in one snapshot.
type Observation struct {
	Kind     Kind
	Subject  Subject
	Severity Severity
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
func (o *Observation) key() string {
	if o.Subject.EdgeID != "" {
		return o.Kind.String() + "|" + o.Subject.EdgeID
	}
	return o.Kind.String() + "|" + o.Subject.NodeID
}

// key identifies the condition of f across ticks, as Observation.key does.
func (f *Finding) key() string {
	o := Observation{Kind: f.Kind, Subject: f.Subject}
	return o.key()
}

// Detector finds one kind of problem in a snapshot. Detect must not modify
// the snapshot and must return promptly when ctx is done. A detector is
// called from one goroutine at a time.
type Detector interface {
	Kind() Kind
	Detect(ctx context.Context, s *graph.Snapshot) []Observation
}

// Finding is a condition carried through its lifecycle.
type Finding struct {
	ID         string         `json:"id"`
	Kind       Kind           `json:"kind"`
	State      State          `json:"state"`
	Severity   Severity       `json:"severity"`
	Subject    Subject        `json:"subject"`
	Summary    string         `json:"summary"`
	Evidence   map[string]any `json:"evidence"`
	StartedAt  time.Time      `json:"started_at"`
	FiredAt    *time.Time     `json:"fired_at,omitempty"`
	ResolvedAt *time.Time     `json:"resolved_at,omitempty"`
	// LastSeen is the last evaluation at which the condition held.
	LastSeen time.Time `json:"last_seen"`
	// BlastRadius is what the problem takes down, as of LastSeen.
	BlastRadius *BlastRadius `json:"blast_radius,omitempty"`
	// Peak is the finding at its worst: the last evaluation at its
	// highest severity, so that a resolved finding still tells how bad it
	// got, not how it looked on its way out. Nil until it fires.
	Peak *Peak `json:"peak,omitempty"`
	// Timeline is the finding's life, oldest first: when it went pending,
	// fired, changed severity, resolved, fired again. At most
	// maxTimeline steps: the first, and the newest.
	Timeline []Change `json:"timeline,omitempty"`
}

// Peak is a finding's worst evaluation.
type Peak struct {
	At       time.Time      `json:"at"`
	Severity Severity       `json:"severity"`
	Summary  string         `json:"summary"`
	Evidence map[string]any `json:"evidence"`
}

// Change is one step of a finding's life: the state and severity it took
// at a time.
type Change struct {
	At       time.Time `json:"at"`
	State    State     `json:"state"`
	Severity Severity  `json:"severity"`
}

// maxTimeline bounds a finding's timeline (a finding flapping for days
// keeps its first step and its newest).
const maxTimeline = 32

// record appends a step to f's timeline when it changes the state or the
// severity, keeping it within maxTimeline.
func (f *Finding) record(at time.Time) {
	if n := len(f.Timeline); n > 0 && f.Timeline[n-1].State == f.State && f.Timeline[n-1].Severity == f.Severity {
		return
	}
	if len(f.Timeline) >= maxTimeline {
		f.Timeline = slices.Delete(f.Timeline, 1, 2)
	}
	f.Timeline = append(f.Timeline, Change{At: at, State: f.State, Severity: f.Severity})
}

// notePeak makes the current evaluation f's peak when it fires at least
// as severely as the peak so far.
func (f *Finding) notePeak(at time.Time) {
	if f.State != StateFiring || f.Peak != nil && f.Severity < f.Peak.Severity {
		return
	}
	f.Peak = &Peak{At: at, Severity: f.Severity, Summary: f.Summary, Evidence: f.Evidence}
}
