// Package finding holds what a finding is: its kind, state, severity,
// subject, blast radius and history; and what an incident is: the
// findings of one problem, its ranked root causes and user impact. It is a
// leaf: detect produces findings and incidents, storage keeps findings,
// web shows both and alert rules route them, and none of those needs
// another's package for it.
//
// A Finding or an Incident is a value: whoever holds one owns it; share it
// read-only.
package finding

import (
	"fmt"
	"time"

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
	// KindSLOBurn: an entry point's service level objective burns its
	// error budget too fast (detect.SLOBurn, only with --slo-config).
	KindSLOBurn
)

var kindNames = enumtext.Names[Kind]{Type: "finding kind", List: []string{"", "bottleneck", "retry_storm", "open_circuit", "consumer_lag", "slo_burn"}}

// String returns the name of the value.
func (k Kind) String() string { return kindNames.String(k) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (k Kind) MarshalText() ([]byte, error) { return kindNames.Marshal(k) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := kindNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("finding: %w", err)
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
		return fmt.Errorf("finding: %w", err)
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
		return fmt.Errorf("finding: %w", err)
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

// Finding is a condition carried through its lifecycle.
type Finding struct {
	ID       string   `json:"id"`
	Kind     Kind     `json:"kind"`
	State    State    `json:"state"`
	Severity Severity `json:"severity"`
	Subject  Subject  `json:"subject"`
	// Owner is the team that must act, from the graph as of LastSeen: the
	// subject node's owner, or for an edge its target's, else its
	// source's (detect.Engine); the last one known when the graph names
	// none; empty when never known.
	Owner      string         `json:"owner,omitempty"`
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

// Key identifies the condition of f across evaluations: the same kind of
// problem on the same subject (its edge, or else its node) is the same
// finding.
func Key(kind Kind, s Subject) string {
	if s.EdgeID != "" {
		return kind.String() + "|" + s.EdgeID
	}
	return kind.String() + "|" + s.NodeID
}

// BlastRadius says what a finding takes down: the nodes upstream of its
// subject whose traffic passes through it, with the share of their requests
// that do, and among them the entry points (nodes the outside world calls).
type BlastRadius struct {
	Upstream    []Affected `json:"upstream"`
	EntryPoints []Affected `json:"entry_points"`
	// Truncated is set when more upstream nodes were affected than listed.
	Truncated bool `json:"truncated,omitempty"`
}

// Affected is one node in a blast radius.
type Affected struct {
	Node   string  `json:"node"` // node name
	NodeID string  `json:"node_id"`
	Share  float64 `json:"share"` // estimated share of its requests that pass through the subject, in (0,1]
	Hops   int     `json:"hops"`
}
