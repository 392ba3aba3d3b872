// Package demo drives a scenario.Generator in real time for the
// collector's demo mode: it feeds the generated system's traces and broker
// metrics to a pair of consumers at a steady rate, and switches the faults
// on and off one at a time in a fixed cycle, so that each finding fires and
// then resolves. It knows nothing of how the consumers reach the pipeline
// (OTLP on loopback, or in-process).
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// Defaults of Options.
const (
	DefaultRate         = 200.0 // traces per second
	DefaultTick         = 200 * time.Millisecond
	DefaultMetricsEvery = time.Second
	DefaultPhase        = 14 * time.Second
)

// DefaultFaults is the default order of the cycle. The findings that take
// longest to resolve once their fault stops (retry storm and bottleneck:
// the faulty traffic must slide out of the window) come first, the
// quickest (consumer lag: the next broker reading shows the group caught
// up) after, so that the first pass over the four finding kinds ends
// soonest; then the cascade (a failing database under two retry storms,
// one incident whose root cause raised no finding), so that the first
// cycle shows an incident of several findings.
func DefaultFaults() []scenario.Fault {
	return []scenario.Fault{scenario.FaultRetryStorm, scenario.FaultBottleneck, scenario.FaultOpenCircuit, scenario.FaultConsumerLag, scenario.FaultCascade}
}

// Backoff bounds after a consumer pushes back (ingest.ErrOverloaded or
// ingest.ErrUnavailable): the Driver sends nothing for minBackoff, doubling
// on every further refusal up to maxBackoff.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Options configure a Driver. Zero fields take the documented defaults.
type Options struct {
	// Generator makes the telemetry; the Driver switches its faults.
	// Required.
	Generator *scenario.Generator
	// Traces and Metrics receive what the Generator makes. Required. A
	// consumer that returns an error wrapping ingest.ErrOverloaded or
	// ingest.ErrUnavailable makes the Driver pause (backpressure); what it
	// refused is dropped, not re-sent.
	Traces  ingest.TracesConsumer
	Metrics ingest.MetricsConsumer
	// Rate is the traces per second sent (default DefaultRate), in
	// requests of Rate x Tick traces (at least one).
	Rate float64
	// Tick is how often a batch of traces is sent (default DefaultTick).
	Tick time.Duration
	// MetricsEvery is how often the broker readings are sent (default
	// DefaultMetricsEvery).
	MetricsEvery time.Duration
	// Phase is the length of every step of the cycle (default
	// DefaultPhase): see Schedule.
	Phase time.Duration
	// Faults are cycled through in this order (default DefaultFaults()).
	Faults []scenario.Fault
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a line at info for every phase change (default:
	// discard).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Tick == 0 {
		o.Tick = DefaultTick
	}
	if o.MetricsEvery == 0 {
		o.MetricsEvery = DefaultMetricsEvery
	}
	if o.Phase == 0 {
		o.Phase = DefaultPhase
	}
	if len(o.Faults) == 0 {
		o.Faults = DefaultFaults()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Generator == nil || o.Traces == nil || o.Metrics == nil {
		errs = append(errs, errors.New("generator, traces and metrics consumers are required"))
	}
	if o.Rate < 0 || o.Tick < 0 || o.MetricsEvery < 0 || o.Phase < 0 {
		errs = append(errs, errors.New("rate, tick, metrics interval and phase must not be negative"))
	}
	if err := (scenario.Options{Faults: o.Faults}).Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Schedule is the fault cycle: first one healthy phase (the detectors learn
// the usual latencies and which services answer), then, for each fault in
// turn, one phase with it on and one phase with everything off (its finding
// resolves), repeating forever. Only one fault is ever on.
type Schedule struct {
	Phase  time.Duration
	Faults []scenario.Fault
}

// At returns the fault on at elapsed time since the start (0: none), and
// when that phase began.
func (s Schedule) At(elapsed time.Duration) (scenario.Fault, time.Duration) {
	if elapsed < s.Phase || len(s.Faults) == 0 || s.Phase <= 0 {
		return 0, 0
	}
	n := int64(elapsed/s.Phase) - 1 // phases since the warm-up
	begin := time.Duration(n+1) * s.Phase
	if n%2 == 1 {
		return 0, begin
	}
	return s.Faults[(n/2)%int64(len(s.Faults))], begin
}

// Cycle is how long one pass over every fault takes, after the warm-up.
func (s Schedule) Cycle() time.Duration { return 2 * time.Duration(len(s.Faults)) * s.Phase }

// Driver sends a scenario's telemetry to consumers and cycles its faults.
// Run is called once; the Driver owns the Generator's faults while it runs.
type Driver struct {
	o     Options
	sched Schedule
}

// New returns a Driver for o.
func New(o Options) (*Driver, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	o = o.withDefaults()
	return &Driver{o: o, sched: Schedule{Phase: o.Phase, Faults: o.Faults}}, nil
}

// Schedule returns the fault cycle the Driver follows.
func (d *Driver) Schedule() Schedule { return d.sched }

// Run sends until ctx is done, then switches every fault off and returns
// nil. A consumer's error other than backpressure is logged at warn (at
// most once per phase) and the Driver carries on.
func (d *Driver) Run(ctx context.Context) error {
	o := d.o
	g := o.Generator
	for _, f := range scenario.AllFaults() {
		g.SetFault(f, false)
	}
	defer func() {
		for _, f := range scenario.AllFaults() {
			g.SetFault(f, false)
		}
	}()
	// Every request holds the same number of traces, so that what one
	// holds does not vary with the pace: the scenario's batch consumers
	// take the messages of one request in batches, and bigger requests
	// would make longer batch spans, a slowdown the bottleneck detector
	// rightly reports.
	per := max(1, int(math.Round(o.Rate*o.Tick.Seconds())))
	start := o.Now()
	t := time.NewTicker(o.Tick)
	defer t.Stop()
	var (
		fault     scenario.Fault
		phaseAt   = time.Duration(-1)
		last      = start
		owed      float64 // traces due but not sent yet (fractions carry over)
		nextMet   time.Time
		pauseTill time.Time
		backoff   = minBackoff
		warned    bool
	)
	o.Logger.Info("demo: healthy warm-up", "for", o.Phase, "then", o.Faults[0].String()+" on")
	for {
		now := o.Now()
		if f, at := d.sched.At(now.Sub(start)); at != phaseAt {
			d.switchTo(fault, f)
			fault, phaseAt, warned = f, at, false
		}
		owed += o.Rate * now.Sub(last).Seconds()
		owed = min(owed, max(o.Rate, float64(per))) // never burst more than a second's worth after a stall
		last = now
		if now.Before(pauseTill) {
			owed = 0 // refused time is not made up for
		} else {
			var err error
			for owed >= float64(per) && err == nil {
				owed -= float64(per)
				err = o.Traces.ConsumeTraces(ctx, g.Traces(now, per))
			}
			if err == nil && !now.Before(nextMet) {
				nextMet = now.Add(o.MetricsEvery)
				err = o.Metrics.ConsumeMetrics(ctx, g.Metrics(now))
			}
			switch {
			case err == nil:
				backoff = minBackoff
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, ingest.ErrOverloaded) || errors.Is(err, ingest.ErrUnavailable):
				o.Logger.Debug("demo: pushed back, pausing", "for", backoff, "err", err)
				pauseTill = now.Add(backoff)
				backoff = min(2*backoff, maxBackoff)
			case !warned:
				o.Logger.Warn("demo: sending failed", "err", err)
				warned = true
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// switchTo switches fault from off and fault to on (0 is no fault), and
// logs each change with the finding to expect.
func (d *Driver) switchTo(from, to scenario.Fault) {
	g, log := d.o.Generator, d.o.Logger
	if from != 0 && from != to {
		g.SetFault(from, false)
		log.Info("demo: "+from.String()+" off", "for", d.o.Phase, "expect", "its finding resolves")
	}
	if to != 0 && to != from {
		g.SetFault(to, true)
		e := g.Expect(to)
		subject := e.Node
		if subject == "" {
			subject = e.Source + " -> " + e.Target
		}
		log.Info("demo: "+to.String()+" on", "for", d.o.Phase, "expect", e.Kind+" on "+subject)
	}
}
