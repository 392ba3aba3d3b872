package scenario

import (
	"fmt"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// Fault is a misbehaviour a Generator can switch on. Each is named after the
// finding kind it provokes (SPEC.md "What each finding means").
type Fault uint8

// Faults.
const (
	_ Fault = iota
	// FaultRetryStorm: the gateway re-sends every call to one service twice
	// after it fails (http.request.resend_count 1 and 2), so two of every
	// three attempts on that edge are retries.
	FaultRetryStorm
	// FaultOpenCircuit: one service's calls to another fail fast (well under
	// a millisecond, status ERROR) without reaching it: no server span.
	FaultOpenCircuit
	// FaultConsumerLag: one consumer group falls behind its Kafka topic: the
	// broker readings (Metrics) show its lag growing by 50 messages/s, and
	// its consumer spans start ever later after their producers.
	FaultConsumerLag
	// FaultBottleneck: one service's own work grows by 200-300 ms per
	// request, so it dominates the critical path of the entry operation that
	// reaches it.
	FaultBottleneck
	// FaultCascade: one service's database fails 95% of its queries; the
	// service fails with it, its caller tries it three times and the
	// gateway tries that caller twice: two retry storms, one incident whose
	// root cause is the database, which raises no finding of its own. It
	// needs at least 11 services.
	FaultCascade
	numFaults
)

var faultNames = enumtext.Names[Fault]{Type: "fault", List: []string{"", "retry_storm", "open_circuit", "consumer_lag", "bottleneck", "cascade"}}

// AllFaults lists every fault, in a fixed order.
func AllFaults() []Fault {
	return []Fault{FaultRetryStorm, FaultOpenCircuit, FaultConsumerLag, FaultBottleneck, FaultCascade}
}

// String returns the fault's name ("retry_storm", ...).
func (f Fault) String() string { return faultNames.String(f) }

// MarshalText returns the fault's name, or an error for an unknown value.
func (f Fault) MarshalText() ([]byte, error) { return faultNames.Marshal(f) }

// UnmarshalText parses a fault name, rejecting unknown names.
func (f *Fault) UnmarshalText(b []byte) error {
	for i, n := range faultNames.List {
		if i > 0 && n == string(b) {
			*f = Fault(i)
			return nil
		}
	}
	return fmt.Errorf("unknown fault %q: want one of %s", b, strings.Join(faultNames.List[1:], ", "))
}

// ParseFaults parses a comma-separated list of fault names ("" is none).
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		var f Fault
		if err := f.UnmarshalText([]byte(name)); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Expectation is the finding a fault should raise: its kind (a finding.Kind
// name), and its subject by node name: Source and Target for an edge, Node
// for a node. A fault that raises several (FaultCascade) lists the others
// in Also, and names the node its incident must rank first in Cause.
type Expectation struct {
	Kind           string
	Source, Target string
	Node           string
	Also           []Expectation
	// Cause is the node name of the incident's first root cause, and
	// CauseKind its kind ("database"); empty for a fault whose finding's
	// own subject is the cause.
	Cause, CauseKind string
}
