// Package lag models consumer lag on asynchronous edges: readings of a
// consumer group's position on a destination (from OTLP broker metrics or
// from broker pollers), a bounded history of them per group and partition,
// and their summary: lag in messages, time lag, drain time, rates, and the
// facts a verdict in the manner of LinkedIn Burrow's evaluator is drawn
// from (runs of readings without consumers or with a stuck position, rises
// of the lag against its own noise).
//
// It draws no verdict: the State of a group and the words for it are
// detect's (detect.JudgeLag), one owner for the judgement. It knows no wire
// format: ingest turns metrics and poll results into Samples.
package lag

import (
	"fmt"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// Key identifies a consumer group's position on one partition of a
// destination. Partition is -1 for destinations without partitions (a
// RabbitMQ queue, a NATS JetStream consumer) or for readings already summed
// over partitions.
type Key struct {
	System      string // messaging system: "kafka", "rabbitmq", "nats", ...
	Destination string // topic, queue or stream name, as in traces' messaging.destination.name
	Group       string // consumer group / queue consumer / JetStream durable; "" when the broker names none (a queue)
	Partition   int32
}

// Unknown marks a numeric field of a Sample the source did not report.
const Unknown = -1.0

// Sample is one reading at Time. Numeric fields the source does not know are
// Unknown (negative); a zero is a real zero.
type Sample struct {
	Time time.Time
	Key
	// Lag is the backlog in messages: end offset - committed offset
	// (Kafka), ready + unacknowledged (RabbitMQ), num_pending +
	// num_ack_pending (NATS).
	Lag float64
	// Committed is the group's committed offset or consumer sequence; End
	// is the destination's head (latest offset / last sequence).
	Committed, End float64
	// Consumers is the number of group members or queue consumers.
	Consumers float64
	// Produced and Consumed are cumulative counters of messages published
	// to and acknowledged from the destination (RabbitMQ message_stats),
	// used for rates when offsets are unknown. They may reset.
	Produced, Consumed float64
	// Source names where the reading came from ("otlp", "kafka:poller-1").
	Source string
	// Subjects are the names traces give this destination when the broker
	// names it otherwise: a NATS JetStream stream is polled by stream name
	// while spans name the subjects it captures (patterns, "*" one token,
	// ">" the rest). The newest reading's subjects are kept.
	Subjects []string `json:",omitempty"`
}

// Validate reports whether s can be used: a time, a system and a
// destination, and no NaN.
func (s Sample) Validate() error {
	switch {
	case s.Time.IsZero():
		return fmt.Errorf("lag: sample without time")
	case s.System == "" || s.Destination == "":
		return fmt.Errorf("lag: sample without system or destination")
	}
	for _, v := range []float64{s.Lag, s.Committed, s.End, s.Consumers, s.Produced, s.Consumed} {
		if v != v {
			return fmt.Errorf("lag: NaN in sample for %s/%s", s.System, s.Destination)
		}
	}
	return nil
}

// State is the verdict on a group on a destination (drawn by detect).
type State uint8

// States, from best to worst; Stale means the readings stopped arriving
// (the broker or the poller is down), so the numbers are old, not zero.
const (
	StateOK State = iota + 1
	StateWarning
	StateStalled
	StateStopped
	StateStale
)

var stateNames = enumtext.Names[State]{Type: "lag state", List: []string{"", "ok", "warning", "stalled", "stopped", "stale"}}

// String returns the name of the value.
func (s State) String() string { return stateNames.String(s) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (s State) MarshalText() ([]byte, error) { return stateNames.Marshal(s) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (s *State) UnmarshalText(b []byte) error {
	v, err := stateNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("lag: %w", err)
	}
	*s = v
	return nil
}

// GroupKey identifies a group on a destination, all partitions together.
type GroupKey struct {
	System, Destination, Group string
}

// Status is a group's Summary with the verdict drawn from it: what graph
// joins onto the group's consumer edges. detect.LagJudge is what draws
// verdicts; graph/lag has none of its own.
type Status struct {
	Summary
	State  State
	Reason string // one sentence: why this state
}
