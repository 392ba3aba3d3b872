package finding

import (
	"fmt"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// IncidentState is where an incident is in its life.
type IncidentState uint8

// Incident states.
const (
	IncidentOpen IncidentState = iota + 1
	IncidentResolved
)

var incidentStateNames = enumtext.Names[IncidentState]{Type: "incident state", List: []string{"", "open", "resolved"}}

// String returns the name of the value.
func (s IncidentState) String() string { return incidentStateNames.String(s) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (s IncidentState) MarshalText() ([]byte, error) { return incidentStateNames.Marshal(s) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (s *IncidentState) UnmarshalText(b []byte) error {
	v, err := incidentStateNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("finding: %w", err)
	}
	*s = v
	return nil
}

// Incident is a group of findings that one problem explains: findings
// connected on the graph (one on the path of another from an entry point,
// or pointing at the same anomalous node) and firing at the same time. It
// names the probable root causes, ranked, and what the users of the entry
// points feel (SPEC.md "GET /api/v1/incidents"). detect/incident makes
// incidents; the API, the UI and the Alertmanager pusher show them.
//
// An Incident is a value: whoever holds one owns it; share it read-only.
type Incident struct {
	// ID is stable for the incident's life: the id of its first finding.
	// When two incidents merge, the older one's id is kept.
	ID    string        `json:"id"`
	State IncidentState `json:"state"`
	// StartedAt is when its first finding started (went pending).
	StartedAt time.Time `json:"started_at"`
	// ResolvedAt is when its last finding resolved; nil while open.
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// UpdatedAt is the evaluation the incident was last judged at.
	UpdatedAt time.Time `json:"updated_at"`
	// Findings are the ids of the findings it holds, oldest first: every
	// finding that fired while connected to it.
	Findings []string `json:"findings"`
	// RootCauses are the probable causes, most probable first.
	RootCauses []Cause `json:"root_causes"`
	// Owner is the owner of the first root cause (the team that must act),
	// as of UpdatedAt; empty when unknown.
	Owner string `json:"owner,omitempty"`
	// Impact are the entry points whose error ratio or p95 latency moved
	// while their traffic passes through the first root cause.
	Impact []Impact `json:"impact"`
	// Changes are the ids of the changes recorded on the incident's nodes
	// shortly before it started or while it is open (none until a change
	// source is configured).
	Changes []string `json:"changes"`
	// Merged lists the ids of incidents merged into this one.
	Merged []string `json:"merged,omitempty"`
}

// Cause is a probable root cause of an incident: a node (Subject.Node) or
// an edge (Subject.Source and Target), with its score in [0, 1] and the
// reasons for it, most telling first.
type Cause struct {
	Subject
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons"`
	// Anomaly is how far the cause's own behaviour moved from its learnt
	// baseline, in [0, 1]; Explains the share of the incident's findings
	// its place on the graph explains; Onset in [0, 1], 1 when its
	// anomaly began no later than the incident's first finding. Score is
	// made of them (docs/incidents.md).
	Anomaly  float64 `json:"anomaly"`
	Explains float64 `json:"explains"`
	Onset    float64 `json:"onset"`
	// AnomalousSince is when its anomaly began, if it was seen.
	AnomalousSince *time.Time `json:"anomalous_since,omitempty"`
}

// Impact is what the users of one entry point feel: its error ratio and
// p95 latency before the incident (the learnt baseline) and now (the
// current window; for a resolved incident, its last open evaluation), and
// the share of its requests that pass through the root cause.
type Impact struct {
	// Entry is the entry point's node name; EntryID its id.
	Entry      string  `json:"entry"`
	EntryID    string  `json:"entry_id"`
	ErrorRatio Before  `json:"error_ratio"`
	P95Ms      Before  `json:"p95_ms"`
	Share      float64 `json:"share"`
	// RatePerS is the entry's request rate now.
	RatePerS float64 `json:"rate_per_s"`
	// SLOs are the entry's service level objectives burning their error
	// budget (slo_burn findings the incident holds), worst first; omitted
	// when none does.
	SLOs []SLOImpact `json:"slos,omitempty"`
}

// SLOImpact is one service level objective of an entry point burning its
// error budget: the pair of windows that fires, its burn rates (the
// budget spent over the window as a multiple of what the SLO period
// allows) and the share of the period's budget left at that rate.
type SLOImpact struct {
	FindingID string   `json:"finding_id"`
	Objective string   `json:"objective"`
	SLI       string   `json:"sli"` // availability or latency
	Target    float64  `json:"target"`
	Severity  Severity `json:"severity"`
	// Windows is the firing pair, long/short: "1h/5m".
	Windows         string  `json:"windows"`
	BurnRate        float64 `json:"burn_rate"`
	BurnRateShort   float64 `json:"burn_rate_short"`
	BudgetRemaining float64 `json:"budget_remaining"`
}

// Before is a figure before an incident (its learnt baseline) and now.
type Before struct {
	Before float64 `json:"before"`
	Now    float64 `json:"now"`
}

// TopCause returns the incident's first root cause, if it has one.
func (inc *Incident) TopCause() (Cause, bool) {
	if len(inc.RootCauses) == 0 {
		return Cause{}, false
	}
	return inc.RootCauses[0], true
}

// Name is the cause's subject for people: its node's name, or "source ->
// target" for an edge.
func (c Cause) Name() string {
	if c.Node != "" {
		return c.Node
	}
	return c.Source + " -> " + c.Target
}
