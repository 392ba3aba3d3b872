package realism

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Shape is the system a Case runs: a healthy shape, or a fault injected
// into a system that is healthy before its onset.
type Shape uint8

// Healthy shapes: none of them may raise a finding.
const (
	SyncChain       Shape = iota + 1 // gateway -> api -> orders (gRPC) -> database, the gateway retrying once
	FanOut                           // one entry calling 5 services in parallel
	BatchConsumer                    // producer -> Kafka topic (12 partitions) -> batch consumer group tied by span links
	CronBurst                        // a job every 10 min firing 500 calls in 20 s on top of steady traffic
	SlowSteady                       // a dependency that always takes ~800 ms
	RollingRestart                   // replicas replaced one by one (slower and a few errors while warming up), every hour
	GradualSlowdown                  // a service's own time growing by 20% over an hour (over half the run when shorter than 2h)

	// Faults.
	RetryStormFault  // a callee starts failing 50%; its caller re-sends every failed call 3 times
	BottleneckFault  // a service's own time per request goes from 3 ms to 300 ms
	OpenCircuitFault // calls from A to B fail fast (~1 ms) with no server span
	ConsumerLagFault // a group's consume rate drops to 50% of the produce rate
)

var shapeNames = map[Shape]string{
	SyncChain: "sync-chain", FanOut: "fan-out", BatchConsumer: "batch-consumer", CronBurst: "cron-burst",
	SlowSteady: "slow-steady", RollingRestart: "rolling-restart", GradualSlowdown: "gradual-slowdown",
	RetryStormFault: "retry-storm", BottleneckFault: "bottleneck", OpenCircuitFault: "open-circuit", ConsumerLagFault: "consumer-lag",
}

// String returns the shape's name.
func (s Shape) String() string {
	if n, ok := shapeNames[s]; ok {
		return n
	}
	return fmt.Sprintf("shape(%d)", s)
}

// HealthyShapes are every healthy shape, FaultShapes every fault.
var (
	HealthyShapes = []Shape{SyncChain, FanOut, BatchConsumer, CronBurst, SlowSteady, RollingRestart, GradualSlowdown}
	FaultShapes   = []Shape{RetryStormFault, BottleneckFault, OpenCircuitFault, ConsumerLagFault}
)

// Fault reports whether s is a fault.
func (s Shape) Fault() bool { return s >= RetryStormFault }

// Case is one run of the matrix.
type Case struct {
	Shape Shape
	// Rate is the Poisson arrival rate per entry, requests per second (at
	// the daily mean; the diurnal drift moves it by up to 30%).
	Rate float64
	// Onset is when the fault starts, after the start of the run.
	Onset time.Duration
	// Duration is how much simulated time the run covers.
	Duration time.Duration
	// Seed makes the run reproducible; 0 derives one from the name.
	Seed uint64
	// Modify, when set, changes the system before the run: tests plant
	// faults on a healthy shape with it.
	Modify func(*System)
}

// Start is the simulated time every run starts at: 09:00 UTC, on the rising
// slope of the daily cycle.
var Start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func (c Case) start() time.Time { return Start }

// Name identifies the case: "retry-storm/10rps/onset=30m0s".
func (c Case) Name() string {
	n := fmt.Sprintf("%s/%grps", c.Shape, c.Rate)
	if c.Shape.Fault() {
		n += "/onset=" + c.Onset.String()
	} else {
		n += "/" + c.Duration.String()
	}
	return n
}

func (c Case) seed() uint64 {
	if c.Seed != 0 {
		return c.Seed
	}
	h := fnv.New64a()
	h.Write([]byte(c.Name()))
	return h.Sum64()
}

// Expected is the finding a fault case must raise.
type Expected struct {
	Kind    finding.Kind
	Subject finding.Subject // names only: Node, or Source and Target
}

// String renders the expectation: "retry_storm checkout -> payments".
func (e *Expected) String() string { return e.Kind.String() + " " + subjectString(e.Subject) }

// Expect returns the finding c must raise, nil for a healthy case.
func (c Case) Expect() *Expected {
	switch c.Shape {
	case RetryStormFault:
		return &Expected{Kind: finding.KindRetryStorm, Subject: finding.Subject{Source: "checkout", Target: "payments"}}
	case BottleneckFault:
		return &Expected{Kind: finding.KindBottleneck, Subject: finding.Subject{Node: "pricing"}}
	case OpenCircuitFault:
		return &Expected{Kind: finding.KindOpenCircuit, Subject: finding.Subject{Source: "orders", Target: "inventory"}}
	case ConsumerLagFault:
		return &Expected{Kind: finding.KindConsumerLag, Subject: finding.Subject{Source: "order-events", Target: "billing-worker"}}
	}
	return nil
}

// ExpectCause returns the node an incident holding c's expected finding
// must name as its first root cause ("" for a healthy case): the service
// that fails, the one whose own time rose, the callee its callers cannot
// reach, the consumer that slowed down.
func (c Case) ExpectCause() string {
	switch c.Shape {
	case RetryStormFault:
		return "payments"
	case BottleneckFault:
		return "pricing"
	case OpenCircuitFault:
		return "inventory"
	case ConsumerLagFault:
		return "billing-worker"
	}
	return ""
}

// Budget is how long after the fault is visible its finding must fire
// (issue #15): 3 evaluation intervals for a retry storm and a bottleneck,
// the pair TTL plus 3 intervals for an open circuit (a call is known
// unanswered only when its TTL runs out), 3 broker polls for consumer lag.
func (c Case) Budget(s Settings) time.Duration {
	switch c.Shape {
	case RetryStormFault, BottleneckFault:
		return 3 * s.EvalInterval
	case OpenCircuitFault:
		return s.PairTTL + 3*s.EvalInterval
	case ConsumerLagFault:
		return 3 * s.BrokerPoll
	}
	return 0
}

// system builds the simulated system of c and the finding it must raise.
func (c Case) system() (System, *Expected) {
	c.Seed = c.seed()
	onset := c.start().Add(c.Onset)
	after := func(t time.Time) bool { return !t.Before(onset) }
	sys := System{Namespace: "shop"}
	gateway := func(to string, proto Proto, op string) Service {
		return Service{Name: "gateway", Replicas: 2, Serve: HTTP, Route: "/api" + op, Self: time.Millisecond, ErrRate: 0.002,
			Calls: []Call{{To: to, Proto: proto, Op: op}}}
	}
	switch c.Shape {
	case SyncChain:
		g := gateway("api", HTTP, "/v1/orders/{id}")
		g.Calls[0].Retries, g.Calls[0].Backoff, g.Calls[0].ResendCount = 1, 50*time.Millisecond, true
		g.Language = "java"
		sys.Services = []Service{g,
			{Name: "api", Replicas: 3, Serve: HTTP, Route: "/v1/orders/{id}", Self: 2 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "orders", Proto: GRPC, Op: "shop.v1.Orders/Get"}}},
			{Name: "orders", Replicas: 3, Serve: GRPC, Route: "shop.v1.Orders/Get", Self: 3 * time.Millisecond, ErrRate: 0.002,
				Calls: []Call{{To: "orders", Proto: DB, Op: "SELECT orders", Latency: 2 * time.Millisecond}}},
		}
	case FanOut:
		sys.Services = []Service{
			{Name: "bff", Replicas: 3, Serve: HTTP, Route: "/api/home", Self: 2 * time.Millisecond, ErrRate: 0.0015, Parallel: true,
				Calls: []Call{{To: "profile", Proto: HTTP, Op: "/v1/profile/{id}"}, {To: "recommendations", Proto: GRPC, Op: "shop.v1.Recs/List"},
					{To: "cart", Proto: HTTP, Op: "/v1/cart/{id}"}, {To: "prices", Proto: HTTP, Op: "/v1/prices"}, {To: "stock", Proto: GRPC, Op: "shop.v1.Stock/Levels"}}},
			{Name: "profile", Replicas: 2, Serve: HTTP, Route: "/v1/profile/{id}", Self: 3 * time.Millisecond, ErrRate: 0.0015,
				Calls: []Call{{To: "users", Proto: DB, Op: "SELECT users", Latency: 2 * time.Millisecond}}},
			{Name: "recommendations", Replicas: 3, Serve: GRPC, Route: "shop.v1.Recs/List", Self: 12 * time.Millisecond, ErrRate: 0.0015, Language: "python"},
			{Name: "cart", Replicas: 2, Serve: HTTP, Route: "/v1/cart/{id}", Self: 2 * time.Millisecond, ErrRate: 0.0015,
				Calls: []Call{{To: "carts", Proto: DB, Op: "SELECT carts", Latency: time.Millisecond}}},
			{Name: "prices", Replicas: 2, Serve: HTTP, Route: "/v1/prices", Self: 4 * time.Millisecond, ErrRate: 0.0015},
			{Name: "stock", Replicas: 2, Serve: GRPC, Route: "shop.v1.Stock/Levels", Self: 3 * time.Millisecond, ErrRate: 0.0015,
				Calls: []Call{{To: "stock", Proto: DB, Op: "SELECT levels", Latency: 2 * time.Millisecond}}},
		}
	case BatchConsumer, ConsumerLagFault:
		sys.Services = []Service{
			{Name: "orders-api", Replicas: 3, Serve: HTTP, Route: "/api/orders", Self: 3 * time.Millisecond, ErrRate: 0.006,
				Calls: []Call{{To: "orders", Proto: DB, Op: "INSERT orders", Latency: 3 * time.Millisecond}, {To: "order-events", Proto: Kafka, Latency: 2 * time.Millisecond}}},
			{Name: "billing-worker", Replicas: 3, Serve: HTTP, Language: "java"},
		}
		sys.Topics = []Topic{{Name: "order-events", Background: 5}}
		sys.Groups = []Group{{Name: "billing", Service: "billing-worker", Topic: "order-events", PerMessage: time.Millisecond,
			Calls: []Call{{To: "billing", Proto: DB, Op: "INSERT invoices", Latency: 4 * time.Millisecond}}}}
		if c.Shape == ConsumerLagFault {
			sys.Dynamics.ConsumeFactor = func(group string, t time.Time) (float64, bool) {
				if group == "billing" && after(t) {
					return 0.5, true
				}
				return 1, false
			}
		}
	case CronBurst:
		sys.Services = []Service{gateway("ledger", HTTP, "/v1/ledger/{id}"),
			{Name: "ledger", Replicas: 3, Serve: HTTP, Route: "/v1/ledger/{id}", Self: 4 * time.Millisecond, ErrRate: 0.005,
				Calls: []Call{{To: "ledger", Proto: DB, Op: "SELECT entries", Latency: 3 * time.Millisecond}}},
			{Name: "reconciler", Replicas: 1, Serve: HTTP, Language: "python"},
		}
		sys.Crons = []Cron{{Service: "reconciler", Every: 10 * time.Minute, Calls: 500, Over: 20 * time.Second,
			Call: Call{To: "ledger", Proto: HTTP, Op: "/v1/ledger/{id}"}}}
	case SlowSteady:
		sys.Services = []Service{gateway("reports", HTTP, "/v1/reports/{id}"),
			{Name: "reports", Replicas: 2, Serve: HTTP, Route: "/v1/reports/{id}", Self: 2 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "legacy-erp", Proto: HTTP, Op: "/erp/report"}}},
			{Name: "legacy-erp", Replicas: 2, Serve: HTTP, Route: "/erp/report", Self: 800 * time.Millisecond, ErrRate: 0.004, Language: "java"},
		}
	case RollingRestart:
		// Every hour from 10 min in; a run shorter than 40 min restarts
		// once, a quarter in.
		first := 10 * time.Minute
		if c.Duration < 40*time.Minute {
			first = c.Duration / 4
		}
		var restarts []time.Duration
		for off := first; off < c.Duration; off += time.Hour {
			restarts = append(restarts, off)
		}
		sys.Services = []Service{gateway("catalog", HTTP, "/v1/products/{id}"),
			{Name: "catalog", Replicas: 4, Serve: HTTP, Route: "/v1/products/{id}", Self: 5 * time.Millisecond, ErrRate: 0.004, Restarts: restarts,
				Calls: []Call{{To: "catalog", Proto: DB, Op: "SELECT products", Latency: 2 * time.Millisecond}}},
		}
	case GradualSlowdown:
		sys.Services = []Service{gateway("search", HTTP, "/v1/search"),
			{Name: "search", Replicas: 3, Serve: HTTP, Route: "/v1/search", Self: 20 * time.Millisecond, ErrRate: 0.005,
				Calls: []Call{{To: "index", Proto: DB, Op: "SELECT documents", Latency: 5 * time.Millisecond}}},
		}
		// 20% over an hour from 10 min in; a run shorter than 2h
		// compresses the ramp into its middle half.
		from, ramp := c.start().Add(10*time.Minute), time.Hour
		if c.Duration < 2*time.Hour {
			from, ramp = c.start().Add(c.Duration/4), c.Duration/2
		}
		sys.Dynamics.SelfFactor = func(svc string, t time.Time) (float64, bool) {
			if svc != "search" || t.Before(from) {
				return 1, false
			}
			return 1 + 0.2*min(float64(t.Sub(from))/float64(ramp), 1), false
		}
	case RetryStormFault:
		sys.Services = []Service{gateway("checkout", HTTP, "/v1/checkout"),
			{Name: "checkout", Replicas: 3, Serve: HTTP, Route: "/v1/checkout", Self: 3 * time.Millisecond, ErrRate: 0.002,
				Calls: []Call{{To: "payments", Proto: HTTP, Op: "/v1/charge", Retries: 3, Backoff: 10 * time.Millisecond}}},
			{Name: "payments", Replicas: 3, Serve: HTTP, Route: "/v1/charge", Self: 4 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "payments", Proto: DB, Op: "INSERT charges", Latency: 3 * time.Millisecond}}},
		}
		sys.Dynamics.ErrRate = func(svc string, t time.Time) (float64, bool, bool) {
			if svc == "payments" && after(t) {
				return 0.5, true, true
			}
			return 0, false, false
		}
	case BottleneckFault:
		sys.Services = []Service{gateway("api", HTTP, "/v1/quote"),
			{Name: "api", Replicas: 3, Serve: HTTP, Route: "/v1/quote", Self: 2 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "pricing", Proto: HTTP, Op: "/v1/price"}}},
			{Name: "pricing", Replicas: 3, Serve: HTTP, Route: "/v1/price", Self: 3 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "pricing", Proto: DB, Op: "SELECT prices", Latency: 2 * time.Millisecond}}},
		}
		sys.Dynamics.SelfFactor = func(svc string, t time.Time) (float64, bool) {
			if svc == "pricing" && after(t) {
				return 100, true
			}
			return 1, false
		}
	case OpenCircuitFault:
		sys.Services = []Service{gateway("orders", HTTP, "/v1/orders"),
			{Name: "orders", Replicas: 3, Serve: HTTP, Route: "/v1/orders", Self: 3 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "inventory", Proto: GRPC, Op: "shop.v1.Inventory/Reserve"}}},
			{Name: "inventory", Replicas: 3, Serve: GRPC, Route: "shop.v1.Inventory/Reserve", Self: 5 * time.Millisecond, ErrRate: 0.003,
				Calls: []Call{{To: "inventory", Proto: DB, Op: "UPDATE stock", Latency: 3 * time.Millisecond}}},
		}
		sys.Dynamics.FailFast = func(from string, call *Call, t time.Time) bool {
			return from == "orders" && call.To == "inventory" && after(t)
		}
	}
	switch c.Shape {
	case SyncChain, FanOut:
		sys.Entries = []string{sys.Services[0].Name}
	case BatchConsumer, ConsumerLagFault:
		sys.Entries = []string{"orders-api"}
	default:
		sys.Entries = []string{"gateway"}
	}
	if c.Modify != nil {
		c.Modify(&sys)
	}
	return sys, c.Expect()
}
