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
}
