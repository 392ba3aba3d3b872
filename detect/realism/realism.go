// Package realism is the realism matrix of issue #15: it drives the
// collector's real pipeline (OTLP ptrace.Traces -> ingest/semconv -> graph
// with the critical-path sampler, lag store and resilience store -> the
// detect engine with all four detectors) at the collector's default
// settings, fed by a simulated production system under a simulated clock,
// so that hours of traffic run in seconds.
//
// The traffic is shaped as production's is: Poisson arrivals with a daily
// drift, several replicas per service each with its own
// service.instance.id and its own OpenTelemetry SDK batch span processor
// (spans exported when they end, every 5s or per 512, so traces arrive
// split across requests with their roots last), a share of export requests
// re-sent, 0.5-1% background errors, Kafka consumer groups on 12 partitions
// whose lag never returns to 0 (auto-commit every 5s), broker polls every
// 15s.
//
// Run runs one Case; RunMatrix runs many and Summarize scores them:
// precision and recall per finding kind and the detection latency
// distribution per kind and rate.
//
// Running it:
//
//	go test ./detect/realism                 # the reduced matrix (rates 1 and 10; smaller under -race or -short)
//	go test -timeout 0 ./detect/realism -args -realism.full -realism.out=matrix.md
//	                                         # the full matrix (rates 1 to 1,000, 3 simulated hours per healthy shape)
//	go test -run TestMatrix ./detect/realism -args -realism.markdown   # print the tables for BENCHMARKS.md
//
// -realism.healthy and -realism.healthy-fast shorten the full matrix's
// healthy cases (all of them, and those at 1,000 req/s). The environment
// variable CARTOGRAPH_REALISM_FULL=1 is the same as -realism.full.
package realism

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Stats count what a run simulated and delivered.
type Stats struct {
	Traces      int // requests entering (and consumer batches, cron jobs)
	SpansMade   int
	Spans       int // spans delivered, re-sent ones included
	SpansLost   int // spans that ended on a replica already shut down
	Exports     int // export requests the SDKs sent
	FullExports int // of which sent because 512 spans were queued
	Requests    int // export requests delivered, re-sent ones included
	Resent      int
	Refused     int // spans the collector refused (duplicates of re-sent batches)
	Dropped     int // spans the SDK queues dropped (full)
	Messages    int
	LagSamples  int
	Evaluations int
	Restarts    int
}

// Fired is a condition (kind and subject) a run's engine reported: when
// it was first pending and each time it went firing.
type Fired struct {
	Kind     finding.Kind
	Subject  finding.Subject
	Severity finding.Severity
	Summary  string    // the latest summary
	IDs      []string  // the ids it had (a condition that resolves and comes back later is a new finding)
	Pending  time.Time // first evaluation it was pending (or firing) at
	LastSeen time.Time // last evaluation it was pending or firing at
	// Firings are the evaluations at which it went firing (a condition
	// that resolves and comes back fires again); empty if it never fired.
	Firings []time.Time
}

// FiredAt is the first firing, zero if none.
func (f Fired) FiredAt() time.Time {
	if len(f.Firings) == 0 {
		return time.Time{}
	}
	return f.Firings[0]
}

// String renders f for reports: "retry_storm checkout -> payments at +31m20s".
func (f Fired) String() string {
	return fmt.Sprintf("%s %s", f.Kind, subjectString(f.Subject))
}

func subjectString(s finding.Subject) string {
	if s.Node != "" {
		return s.Node
	}
	return s.Source + " -> " + s.Target
}

// observer follows the engine's findings after every evaluation.
type observer struct {
	s     *sim
	fired map[string]*Fired
	order []string
}

func newObserver(s *sim) *observer { return &observer{s: s, fired: map[string]*Fired{}} }

func (o *observer) after(t time.Time) {
	for _, f := range o.s.engine.Findings(0) {
		if f.State == finding.StateResolved {
			continue // seen firing at an earlier evaluation
		}
		k := f.Kind.String() + "|" + f.Subject.Node + "|" + f.Subject.Source + "|" + f.Subject.Target
		r := o.fired[k]
		if r == nil {
			r = &Fired{Kind: f.Kind, Subject: f.Subject, Pending: t}
			o.fired[k] = r
			o.order = append(o.order, k)
		}
		r.Severity, r.Summary, r.LastSeen = f.Severity, f.Summary, t
		if !slices.Contains(r.IDs, f.ID) {
			r.IDs = append(r.IDs, f.ID)
		}
		if f.State == finding.StateFiring && f.FiredAt != nil && (len(r.Firings) == 0 || !r.Firings[len(r.Firings)-1].Equal(*f.FiredAt)) {
			r.Firings = append(r.Firings, *f.FiredAt)
		}
	}
}

func (o *observer) list() []Fired {
	out := make([]Fired, 0, len(o.order))
	for _, k := range o.order {
		out = append(out, *o.fired[k])
	}
	return out
}

// Result is what one Case gave.
type Result struct {
	Case Case
	// Settings are the collector settings the run used (its defaults).
	Settings Settings
	// Visible is when the fault could first be seen by the collector: the
	// arrival of the first export request carrying a span the fault shaped:
	// a server span it failed or slowed, a client span that failed because
	// of it (fast, for an open circuit); a call to the faulty service that
	// succeeded shows nothing and does not count. For consumer lag, the
	// first broker poll at or after the onset. Zero for healthy cases, and
	// when the fault never became visible.
	Visible time.Time
	// Detected is the firing of the expected finding (right kind and
	// subject), if it fired; Latency its delay after Visible.
	Detected *Fired
	Latency  time.Duration
	// TruePositive: the expected finding fired within the budget after
	// Visible. FalseNegative: it did not (Detected may still be set: late).
	TruePositive, FalseNegative bool
	// FalsePositives are the findings that fired and are not the expected
	// one (every finding on a healthy system).
	FalsePositives []Fired
	// PendingOnly are conditions that were pending at some evaluation but
	// never fired (they page nobody; listed to show noise).
	PendingOnly []Fired
	// Incidents are the incidents the tracker kept at the end of the run,
	// open and resolved (none on a healthy system).
	Incidents []finding.Incident
	Stats     Stats
	Wall      time.Duration
}

// Run simulates c and scores it. It fails only when the pipeline cannot be
// built or ctx is done.
func Run(ctx context.Context, c Case) (Result, error) {
	t0 := time.Now()
	c.Seed = c.seed()
	sys, exp := c.system()
	s, err := newSim(c, sys)
	if err != nil {
		return Result{}, err
	}
	if err := s.run(ctx); err != nil {
		return Result{}, err
	}
	r := Result{Case: c, Settings: s.opts, Visible: s.faultVisible, Incidents: s.incidents.Incidents(0), Stats: s.stats, Wall: time.Since(t0)}
	r.score(s.obs.list(), exp)
	return r, nil
}

// score sorts what fired: the expected condition's first firing at or
// after Visible is the detection; the expected condition firing before the
// fault was visible is a false positive (it fired on healthy data), as is
// every other condition that fired.
func (r *Result) score(fired []Fired, exp *Expected) {
	budget := r.Case.Budget(r.Settings)
	for _, f := range fired {
		if len(f.Firings) == 0 {
			r.PendingOnly = append(r.PendingOnly, f)
			continue
		}
		if exp == nil || f.Kind != exp.Kind || !sameSubject(f.Subject, exp.Subject) {
			r.FalsePositives = append(r.FalsePositives, f)
			continue
		}
		if r.Visible.IsZero() || f.Firings[0].Before(r.Visible) {
			r.FalsePositives = append(r.FalsePositives, f)
		}
		if r.Visible.IsZero() {
			continue
		}
		for _, at := range f.Firings {
			if !at.Before(r.Visible) {
				d := f
				r.Detected, r.Latency = &d, at.Sub(r.Visible)
				break
			}
		}
	}
	if exp != nil {
		r.TruePositive = r.Detected != nil && r.Latency <= budget
		r.FalseNegative = !r.TruePositive
	}
}

// expectedNoise reports whether the expected condition fired before the
// fault was visible.
func (r Result) expectedNoise(exp *Expected) bool {
	for _, f := range r.FalsePositives {
		if f.Kind == exp.Kind && sameSubject(f.Subject, exp.Subject) {
			return true
		}
	}
	return false
}

func sameSubject(a, b finding.Subject) bool {
	if b.Node != "" {
		return a.Node == b.Node
	}
	return a.Source == b.Source && a.Target == b.Target && a.Node == ""
}

// IncidentProblems says what is wrong with the incidents of r: on a
// healthy system, any incident; on a faulty one, an incident holding the
// expected finding that does not name the fault's node as its first root
// cause, or no incident holding it. Nothing when the finding was not
// detected (the finding's own verdict says so).
func (r Result) IncidentProblems() []string {
	var out []string
	want := r.Case.ExpectCause()
	if want == "" {
		for _, inc := range r.Incidents {
			out = append(out, fmt.Sprintf("incident %s opened on a healthy system (%d findings, first cause %s)", inc.ID, len(inc.Findings), causeName(inc)))
		}
		return out
	}
	if r.Detected == nil {
		return nil
	}
	for _, inc := range r.Incidents {
		for _, id := range inc.Findings {
			if slices.Contains(r.Detected.IDs, id) {
				if c := causeName(inc); c != want {
					out = append(out, fmt.Sprintf("incident %s holding %s names %s first, not %s: %+v", inc.ID, r.Detected, c, want, inc.RootCauses))
				}
				return out
			}
		}
	}
	return append(out, fmt.Sprintf("no incident holds %s", r.Detected))
}

func causeName(inc finding.Incident) string {
	if c, ok := inc.TopCause(); ok {
		return c.Name()
	}
	return "(none)"
}

// Verdict summarises r in one line for reports and test failures.
func (r Result) Verdict() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", r.Case.Name())
	if exp := r.Case.Expect(); exp != nil {
		switch {
		case r.TruePositive:
			fmt.Fprintf(&b, " detected %s in %v", exp, r.Latency.Round(time.Millisecond))
		case r.Detected != nil:
			fmt.Fprintf(&b, " LATE %s after %v (budget %v)", exp, r.Latency.Round(time.Millisecond), r.Case.Budget(r.Settings))
		case r.Visible.IsZero():
			fmt.Fprintf(&b, " MISSED %s (never visible)", exp)
		case r.expectedNoise(exp):
			fmt.Fprintf(&b, " MISSED %s (visible at +%v; it was already firing on healthy data and never fired anew)", exp, r.Visible.Sub(r.Case.start()).Round(time.Second))
		default:
			fmt.Fprintf(&b, " MISSED %s (visible at +%v)", exp, r.Visible.Sub(r.Case.start()).Round(time.Second))
		}
	} else {
		fmt.Fprintf(&b, " healthy")
	}
	if len(r.FalsePositives) > 0 {
		fps := make([]string, 0, len(r.FalsePositives))
		for _, f := range r.FalsePositives {
			fps = append(fps, fmt.Sprintf("%s fired %dx from +%v, last seen +%v", f, len(f.Firings),
				f.FiredAt().Sub(r.Case.start()).Round(time.Second), f.LastSeen.Sub(r.Case.start()).Round(time.Second)))
		}
		slices.Sort(fps)
		fmt.Fprintf(&b, "; %d FALSE POSITIVE(S): %s", len(fps), strings.Join(fps, ", "))
	}
	return b.String()
}
