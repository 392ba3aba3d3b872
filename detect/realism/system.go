package realism

import "time"

// Proto is how a call is made.
type Proto uint8

// Protocols of calls.
const (
	HTTP  Proto = iota + 1 // HTTP/1.1 call, served by an HTTP server span
	GRPC                   // gRPC call, served by a gRPC server span
	DB                     // database client call (no server span)
	Kafka                  // Kafka publish (a PRODUCER span; the message lands on a partition)
)

// Call is one outgoing call a service makes per request it serves.
type Call struct {
	To    string // service (HTTP, gRPC), database name (DB) or topic (Kafka)
	Proto Proto
	// Op is the route (HTTP), method (gRPC, "pkg.Service/Method") or
	// statement verb and table (DB, "SELECT orders").
	Op string
	// Latency is the median duration of a DB call or a Kafka publish.
	Latency time.Duration
	// Retries is how many times a failed call is re-sent (each attempt a
	// new client span under the same parent, after Backoff).
	Retries int
	Backoff time.Duration
	// ResendCount sets http.request.resend_count on re-sent attempts, as
	// the Java agent does (Go's otelhttp does not).
	ResendCount bool
	// Timeout, when set, is how long the caller waits: an attempt that
	// takes longer fails at it (the callee's server span goes on to its
	// end, unaware).
	Timeout time.Duration
}

// Service is a deployment of Replicas replicas, each with its own
// service.instance.id and batch span processor.
type Service struct {
	Name     string
	Replicas int
	Serve    Proto  // HTTP or gRPC
	Route    string // route or method its server spans name
	// Self is the median of the service's own work per request (lognormal,
	// sigma 0.25), split before and after its calls.
	Self time.Duration
	// ErrRate is the share of requests failing on their own (5xx).
	ErrRate  float64
	Calls    []Call
	Parallel bool // calls are made concurrently
	Language string
	// Restarts are offsets from the start of the run at which a rolling
	// restart begins: replicas are replaced one by one, RestartStep apart.
	Restarts []time.Duration
}

// Topic is a Kafka topic.
type Topic struct {
	Name       string
	Partitions int
	// Background is a rate of messages (per second) other, untraced
	// producers publish to it.
	Background float64
}

// Group is a Kafka consumer group: Replicas members of service Service,
// each owning some partitions, polling in a loop and processing each
// non-empty poll as one batch span linked to the messages' producer spans.
type Group struct {
	Name, Service, Topic string
	// PerMessage is the median processing time of one message.
	PerMessage time.Duration
	// Calls are made once per batch.
	Calls []Call
}

// Cron is a job that every Every fires Calls calls spread over Over, from
// one root span of service Service.
type Cron struct {
	Service string
	Every   time.Duration
	Calls   int
	Over    time.Duration
	Call    Call
}

// Dynamics change a system while it runs: faults and healthy changes
// (restarts, drifts). Every function is optional; each reports whether what
// it returns is the injected fault's doing, which marks the spans shaped by
// it (see Span.Fault).
type Dynamics struct {
	// SelfFactor multiplies a service's own time at t.
	SelfFactor func(service string, t time.Time) (float64, bool)
	// ErrRate replaces a service's error rate at t when ok; when fault,
	// the spans it fails are the fault's (those that succeed are not).
	ErrRate func(service string, t time.Time) (rate float64, ok, fault bool)
	// FailFast makes a call from a service fail in ~1ms without reaching
	// the callee (an open circuit breaker).
	FailFast func(from string, c *Call, t time.Time) bool
	// ConsumeFactor limits a group's consumption to this share of what is
	// produced on its partitions (1 or more: unlimited).
	ConsumeFactor func(group string, t time.Time) (float64, bool)
	// DB changes the calls to database db at t: their latency multiplied
	// by latency, and errRate of them failing (when ok; the spans it
	// shapes are the fault's).
	DB func(db string, t time.Time) (latency, errRate float64, ok bool)
	// RateFactor multiplies the arrival rate of requests at entry at t (a
	// flood of requests); it must never exceed RatePeak.
	RateFactor func(entry string, t time.Time) float64
	RatePeak   float64
}

// System is a set of services, topics, consumer groups and cron jobs, with
// entry services that receive Poisson traffic at the case's rate.
type System struct {
	Namespace string
	Services  []Service
	Entries   []string
	Topics    []Topic
	Groups    []Group
	Crons     []Cron
	Dynamics  Dynamics
}

// Model constants of the simulated system.
const (
	// RestartStep is the time between two replicas' replacement in a
	// rolling restart; WarmUp how long a new replica is slower (x3) and
	// WarmUpErrors how long it fails WarmUpErrRate of its requests.
	RestartStep   = time.Minute
	Drain         = 30 * time.Second
	WarmUp        = 30 * time.Second
	WarmUpErrors  = 10 * time.Second
	WarmUpErrRate = 0.03
	// ResendShare is the share of export requests that arrive twice: the
	// exporter timed out waiting for the answer and re-sent the batch after
	// its first backoff (ResendAfter).
	ResendShare = 0.005
	ResendAfter = 5 * time.Second
	// ConsumerPollIdle is how long a consumer's empty poll waits
	// (fetch.max.wait.ms); AutoCommit the consumer's auto.commit.interval.
	ConsumerPollIdle = 500 * time.Millisecond
	AutoCommit       = 5 * time.Second
	MaxPollRecords   = 500
	// LinkLimit is the SDK's default limit of links per span; a batch span
	// of more messages keeps the first LinkLimit.
	LinkLimit = 128
	// Partitions is the partition count of every topic unless set.
	Partitions = 12
)
