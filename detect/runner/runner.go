// Package runner owns the evaluation tick: on every tick it takes one
// graph snapshot, has the detectors judge it, groups the findings into
// incidents, and hands the snapshot with the findings and incidents as they
// stand after that judgement to everyone who shows or keeps them (the API,
// its change stream, the built-in UI). Whatever they show of one tick comes
// from one snapshot: a finding's badge, its incident and the map they sit
// on cannot disagree.
//
// The runner knows its peers only through the small interfaces below; it
// imports no detector, no storage and no screen.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Source gives the graph of a tick: this collector's live graph, or the
// graph merged from shared storage. window 0 asks for the default window.
type Source interface {
	Snapshot(window time.Duration) (*graph.Snapshot, error)
}

// Judge advances the findings' lifecycle on a snapshot (detect.Engine).
// Eval must not keep or modify s.
type Judge interface {
	Eval(ctx context.Context, s *graph.Snapshot)
}

// Findings lists findings in a state (0: every state). The caller owns the
// slice; evidence maps are shared and read-only.
type Findings interface {
	Findings(state finding.State) []finding.Finding
}

// Correlator groups the findings of a tick into incidents and ranks their
// root causes (detect/incident.Tracker). Correlate is called from the
// runner's goroutine, once per tick, after the judge; it must not keep or
// modify s or findings, and returns every incident it keeps.
type Correlator interface {
	Correlate(s *graph.Snapshot, findings []finding.Finding) []finding.Incident
}

// Receiver takes each tick. Receive is called from the runner's goroutine,
// one tick at a time, newest last; it must not modify s, findings or
// incidents (they are shared with the other receivers) and must return
// promptly: a slow receiver delays the next tick for everyone.
type Receiver interface {
	Receive(s *graph.Snapshot, findings []finding.Finding, incidents []finding.Incident)
}

// Options configure a Runner.
type Options struct {
	// Source gives each tick's snapshot. Required.
	Source Source
	// Judge, when not nil, judges each snapshot before it is handed on
	// (nil: this process does not judge; Findings then serves what others
	// judged, e.g. from shared storage).
	Judge Judge
	// Findings lists the findings handed on with each snapshot. Required.
	Findings Findings
	// Incidents, when not nil, makes the incidents handed on with each
	// tick from its snapshot and findings (nil: none are).
	Incidents Correlator
	// Receivers get every tick, in order.
	Receivers []Receiver
	// Interval between ticks, aligned to multiples of it (default 5s).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Validate reports whether o is usable.
func (o Options) Validate() error {
	var errs []error
	if o.Source == nil {
		errs = append(errs, errors.New("runner: Options.Source is required"))
	}
	if o.Findings == nil {
		errs = append(errs, errors.New("runner: Options.Findings is required"))
	}
	if o.Interval < 0 {
		errs = append(errs, errors.New("runner: Options.Interval must not be negative"))
	}
	return errors.Join(errs...)
}

// Runner runs ticks. Run is called once; Tick may be called from any
// goroutine while it runs (tests, a manual refresh), never concurrently
// with itself: ticks are serialised.
type Runner struct {
	o Options

	mu       sync.Mutex // serialises ticks
	ticks    prometheus.Counter
	failed   prometheus.Counter
	duration *prometheus.HistogramVec
}

// New returns a Runner for o.
func New(o Options) (*Runner, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		o: o,
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_tick_total",
			Help: "Evaluation ticks run: one snapshot built, judged and handed to the API, the stream and the UI.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_tick_failed_total",
			Help: "Ticks skipped because the snapshot could not be built (logged).",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cartograph_tick_seconds",
			Help:    "Time a tick spends building the snapshot, judging it and handing it on, by stage.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"stage"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.ticks, r.failed, r.duration} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("runner: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Run hands on the current state at once, without judging it (so that the
// API and UI have a snapshot before the first evaluation), then ticks on
// multiples of the interval until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	r.tick(ctx, false)
	for {
		now := r.o.Now()
		next := now.Truncate(r.o.Interval).Add(r.o.Interval)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		r.tick(ctx, true)
	}
}

// Tick builds, judges and hands on one snapshot now. It reports false when
// the snapshot could not be built (logged, counted).
func (r *Runner) Tick(ctx context.Context) bool { return r.tick(ctx, true) }

func (r *Runner) tick(ctx context.Context, judge bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t0 := time.Now()
	s, err := r.o.Source.Snapshot(0)
	if err != nil {
		r.failed.Inc()
		r.o.Logger.Error("tick: snapshot", "err", err)
		return false
	}
	t1 := time.Now()
	r.duration.WithLabelValues("snapshot").Observe(t1.Sub(t0).Seconds())
	if judge && r.o.Judge != nil {
		r.o.Judge.Eval(ctx, s)
	}
	findings := r.o.Findings.Findings(0)
	t2 := time.Now()
	r.duration.WithLabelValues("judge").Observe(t2.Sub(t1).Seconds())
	var incidents []finding.Incident
	if r.o.Incidents != nil {
		incidents = r.o.Incidents.Correlate(s, findings)
		t3 := time.Now()
		r.duration.WithLabelValues("correlate").Observe(t3.Sub(t2).Seconds())
		t2 = t3
	}
	for _, rc := range r.o.Receivers {
		rc.Receive(s, findings, incidents)
	}
	r.duration.WithLabelValues("hand_on").Observe(time.Since(t2).Seconds())
	r.ticks.Inc()
	return true
}
