// Package resilience keeps what client-side resilience libraries and proxies
// report as metrics: circuit-breaker states (resilience4j, Envoy) and retry
// counters (Envoy upstream_rq_retry, resilience4j retry calls), latest state
// per breaker and a bounded counter history, for the detectors to join to
// edges. It knows no wire format: ingest turns metrics into samples.
package resilience

import (
	"fmt"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// CircuitState is a circuit breaker's state.
type CircuitState uint8

// Circuit states (resilience4j names; Envoy's rq_open gauge maps to open or
// closed).
const (
	CircuitClosed CircuitState = iota + 1
	CircuitOpen
	CircuitHalfOpen
	CircuitForcedOpen
	CircuitDisabled
)

var circuitNames = enumtext.Names[CircuitState]{Type: "circuit state", List: []string{"", "closed", "open", "half_open", "forced_open", "disabled"}}

// String returns the state's name.
func (c CircuitState) String() string { return circuitNames.String(c) }

// MarshalText implements encoding.TextMarshaler.
func (c CircuitState) MarshalText() ([]byte, error) { return circuitNames.Marshal(c) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are
// rejected. "metrics_only" (resilience4j) reads as closed.
func (c *CircuitState) UnmarshalText(b []byte) error {
	if string(b) == "metrics_only" {
		*c = CircuitClosed
		return nil
	}
	v, err := circuitNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("resilience: %w", err)
	}
	*c = v
	return nil
}

// IsOpen reports whether calls are being refused (open or forced open).
func (c CircuitState) IsOpen() bool { return c == CircuitOpen || c == CircuitForcedOpen }

// BreakerKey names a circuit breaker: the service that owns it (the caller,
// from the metric's resource service.name) and the breaker's own name, which
// usually names the callee (a resilience4j instance name, an Envoy cluster).
type BreakerKey struct {
	Service string
	Name    string
}

// CircuitSample is a breaker's state at Time, as one instance of its
// service reports it. Instance names the instance (service.instance.id, or
// what stands in for it); "" when unknown, which makes all the unnamed
// instances of a service one.
type CircuitSample struct {
	Time time.Time
	BreakerKey
	Instance string
	State    CircuitState
	Source   string
}

// RetrySample is a cumulative retry counter at Time, as one instance of its
// service reports it: Retries attempts that were retries, out of Calls
// attempts (retries included; Calls is -1 when unknown). Instance is as in
// CircuitSample; each instance's counters are its own, so they are never
// compared with another instance's.
type RetrySample struct {
	Time time.Time
	BreakerKey
	Instance string
	Retries  float64
	Calls    float64
	Source   string
}

// seriesKey is one instance's breaker or retry series.
type seriesKey struct {
	BreakerKey
	instance string
}
