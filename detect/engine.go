package detect

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// EngineOptions configure an Engine. Zero fields take the documented defaults.
type EngineOptions struct {
	// Detectors to run on every evaluation. Required.
	Detectors []Detector
	// Interval between evaluations (default 5s): the runner's tick
	// (detect/runner). It sets the defaults of Hold and KeepFiring.
	Interval time.Duration
	// Hold is how long a condition must hold, pending, before it fires
	// (default: one Interval, so a finding fires on the second evaluation
	// that sees it).
	Hold time.Duration
	// KeepFiring is how long a firing finding stays firing after its
	// condition stops holding, so a flapping condition does not page twice
	// (default: two Intervals). It also applies after the resolution: a
	// condition that holds again no later than KeepFiring after its finding
	// resolved revives that finding, firing, under its id.
	KeepFiring time.Duration
	// ResolvedRetention is how long resolved findings are listed
	// (default 1h); at most MaxFindings of them are kept.
	ResolvedRetention time.Duration
	// MaxFindings bounds the pending and firing findings, and separately the
	// resolved ones kept (default 10,000); conditions beyond are dropped and
	// counted.
	MaxFindings int
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

func (o EngineOptions) withDefaults() EngineOptions {
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.Hold == 0 {
		o.Hold = o.Interval
	}
	if o.KeepFiring == 0 {
		o.KeepFiring = 2 * o.Interval
	}
	if o.ResolvedRetention == 0 {
		o.ResolvedRetention = time.Hour
	}
	if o.MaxFindings == 0 {
		o.MaxFindings = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether the options are usable.
func (o EngineOptions) Validate() error {
	o = o.withDefaults()
	var errs []error
	if len(o.Detectors) == 0 {
		errs = append(errs, errors.New("no detectors"))
	}
	if o.Interval < 0 || o.Hold < 0 || o.KeepFiring < 0 || o.ResolvedRetention < 0 || o.MaxFindings < 0 {
		errs = append(errs, errors.New("interval, hold, keep-firing, retention and max findings must not be negative"))
	}
	return errors.Join(errs...)
}

// Engine runs detectors and carries what they see through the finding
// lifecycle. Eval is called from one goroutine at a time (detect/runner does so);
// Findings is safe for concurrent use with it.
type Engine struct {
	o EngineOptions

	evalDuration prometheus.Histogram
	dropped      prometheus.Counter
	panics       *prometheus.CounterVec

	mu       sync.RWMutex
	active   map[string]*finding.Finding // pending and firing, by condition key
	resolved []finding.Finding           // oldest first
}

// NewEngine returns an Engine for o.
func NewEngine(o EngineOptions) (*Engine, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	o = o.withDefaults()
	e := &Engine{
		o:      o,
		active: map[string]*finding.Finding{},
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartograph_detect_eval_seconds",
			Help:    "Time to run every detector on one snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_detect_findings_dropped_total",
			Help: "Conditions not tracked because the finding limit was reached.",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_detect_detector_panics_total",
			Help: "Detector evaluations that panicked (the detector's observations for that tick are lost).",
		}, []string{"kind"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.evalDuration, e.dropped, e.panics, findingsCollector{e}} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("detect: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Eval runs every detector on s and advances the lifecycle of every finding
// to the engine clock's now. An observation marked Sustain keeps a firing
// finding firing and is otherwise ignored, so a detector with separate enter
// and exit thresholds gets hysteresis: it fires above one, resolves (after
// KeepFiring) below the other. An observation marked PendingOnly starts or
// keeps a pending finding and keeps a firing one, but does not fire it: a
// finding fires only on an unmarked observation, at least Hold after it
// went pending.
func (e *Engine) Eval(ctx context.Context, s *graph.Snapshot) {
	t0 := time.Now()
	now := e.o.Now()
	var obs []Observation
	for _, d := range e.o.Detectors {
		obs = append(obs, e.detect(ctx, d, s)...)
	}
	if ctx.Err() != nil {
		// A cancelled detector returns early: its silence is not health,
		// so the lifecycle does not advance on it.
		return
	}

	radii := make([]*finding.BlastRadius, len(obs))
	owners := make([]string, len(obs))
	if len(obs) > 0 && s != nil {
		b := newBlaster(s)
		ow := newOwners(s)
		for i := range obs {
			radii[i] = b.radius(obs[i].Subject)
			owners[i] = ow.of(obs[i].Subject)
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	seen := make(map[string]bool, len(obs))
	for i := range obs {
		o := &obs[i]
		k := o.key()
		if seen[k] {
			continue
		}
		f := e.active[k]
		if o.Sustain && (f == nil || f.State != finding.StateFiring) {
			continue // past the exit threshold only: keeps firing, starts nothing
		}
		seen[k] = true
		if f == nil && o.PendingOnly && e.resolvedWithinLocked(k, now) >= 0 {
			continue // a resolved finding comes back firing, or not at all
		}
		if f == nil {
			if len(e.active) >= e.o.MaxFindings {
				e.dropped.Inc()
				continue
			}
			if f = e.reviveLocked(k, now); f == nil {
				f = &finding.Finding{ID: findingID(k, now), Kind: o.Kind, State: finding.StatePending, StartedAt: now}
			}
			e.active[k] = f
		}
		f.Severity, f.Subject, f.Summary, f.Evidence, f.LastSeen = o.Severity, o.Subject, o.Summary, o.Evidence, now
		f.BlastRadius = radii[i]
		if owners[i] != "" {
			f.Owner = owners[i] // else the last known: its subject may be idle, off the snapshot's nodes
		}
		if f.State == finding.StatePending && !o.PendingOnly && now.Sub(f.StartedAt) >= e.o.Hold {
			f.State = finding.StateFiring
			f.FiredAt = ptr(now)
		}
		record(f, now)
		notePeak(f, now)
	}
	for k, f := range e.active {
		if seen[k] {
			continue
		}
		switch {
		case f.State == finding.StatePending:
			delete(e.active, k) // it never fired: back to inactive, unlisted
		case now.Sub(f.LastSeen) >= e.o.KeepFiring:
			delete(e.active, k)
			r := *f
			r.State, r.ResolvedAt = finding.StateResolved, ptr(now)
			record(&r, now)
			e.resolved = append(e.resolved, r)
		}
	}
	cut := 0
	for cut < len(e.resolved) && (len(e.resolved)-cut > e.o.MaxFindings || now.Sub(*e.resolved[cut].ResolvedAt) > e.o.ResolvedRetention) {
		cut++
	}
	e.resolved = slices.Delete(e.resolved, 0, cut)
	e.evalDuration.Observe(time.Since(t0).Seconds())
}

// reviveLocked takes back out of the resolved list the finding of condition
// key k when it resolved no longer than KeepFiring before now, and returns
// it firing again under its own id and start; nil when there is none. A
// condition that comes back that soon is the same problem, not a new one:
// it pages as one finding (Prometheus's keep_firing_for, applied on both
// sides of the resolution). e.mu must be held.
func (e *Engine) reviveLocked(k string, now time.Time) *finding.Finding {
	i := e.resolvedWithinLocked(k, now)
	if i < 0 {
		return nil
	}
	f := e.resolved[i]
	e.resolved = slices.Delete(e.resolved, i, i+1)
	f.State, f.ResolvedAt = finding.StateFiring, nil
	f.Timeline = slices.Clone(f.Timeline) // readers may hold the resolved one's
	return &f
}

// resolvedWithinLocked returns the index in e.resolved of the finding of
// condition key k that resolved no longer than KeepFiring before now, -1
// when there is none. e.mu must be held.
func (e *Engine) resolvedWithinLocked(k string, now time.Time) int {
	for i := len(e.resolved) - 1; i >= 0; i-- {
		r := &e.resolved[i]
		if now.Sub(*r.ResolvedAt) > e.o.KeepFiring {
			return -1 // older ones resolved earlier still
		}
		if finding.Key(r.Kind, r.Subject) == k {
			return i
		}
	}
	return -1
}

// detect runs one detector, turning a panic into a logged, counted loss.
func (e *Engine) detect(ctx context.Context, d Detector, s *graph.Snapshot) (obs []Observation) {
	defer func() {
		if r := recover(); r != nil {
			e.panics.WithLabelValues(d.Kind().String()).Inc()
			e.o.Logger.Error("detector panicked", "kind", d.Kind().String(), "panic", fmt.Sprint(r))
			obs = nil
		}
	}()
	return d.Detect(ctx, s)
}

// Findings returns copies of the findings in state (0: all), firing first,
// then pending, then resolved; within a state by severity (critical
// first), then oldest first. Evidence maps are shared and read-only;
// timelines are the caller's.
func (e *Engine) Findings(state finding.State) []finding.Finding {
	e.mu.RLock()
	out := make([]finding.Finding, 0, len(e.active))
	for _, f := range e.active {
		if state == 0 || f.State == state {
			c := *f
			c.Timeline = slices.Clone(f.Timeline) // the engine goes on changing its own
			out = append(out, c)
		}
	}
	if state == 0 || state == finding.StateResolved {
		out = append(out, e.resolved...)
	}
	e.mu.RUnlock()
	rank := map[finding.State]int{finding.StateFiring: 0, finding.StatePending: 1, finding.StateResolved: 2}
	slices.SortFunc(out, func(a, b finding.Finding) int {
		if c := rank[a.State] - rank[b.State]; c != 0 {
			return c
		}
		if c := int(b.Severity) - int(a.Severity); c != 0 {
			return c
		}
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Restore loads findings kept in storage back after a restart: pending and
// firing ones become active again (and resolve on their own if their
// condition no longer holds), resolved ones are listed again. Findings
// already known are left alone. Call it before Run.
func (e *Engine) Restore(findings []finding.Finding) {
	now := e.o.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	known := map[string]bool{}
	for _, f := range e.active {
		known[f.ID] = true
	}
	for _, f := range e.resolved {
		known[f.ID] = true
	}
	for _, f := range findings {
		if known[f.ID] || f.Kind == 0 {
			continue
		}
		known[f.ID] = true
		o := Observation{Kind: f.Kind, Subject: f.Subject}
		switch f.State {
		case finding.StatePending, finding.StateFiring:
			if _, taken := e.active[o.key()]; taken || len(e.active) >= e.o.MaxFindings {
				continue
			}
			f := f
			e.active[o.key()] = &f
		case finding.StateResolved:
			if f.ResolvedAt != nil && now.Sub(*f.ResolvedAt) <= e.o.ResolvedRetention {
				e.resolved = append(e.resolved, f)
			}
		}
	}
	slices.SortFunc(e.resolved, func(a, b finding.Finding) int { return a.ResolvedAt.Compare(*b.ResolvedAt) })
	if n := len(e.resolved) - e.o.MaxFindings; n > 0 {
		e.resolved = slices.Delete(e.resolved, 0, n)
	}
}

// Load replaces every finding the engine holds with findings, as Restore
// takes them: for a collector that takes over judging from another
// (--detect merged), whose own state went stale while it did not judge.
// Call it between evaluations.
func (e *Engine) Load(findings []finding.Finding) {
	e.mu.Lock()
	e.active, e.resolved = map[string]*finding.Finding{}, nil
	e.mu.Unlock()
	e.Restore(findings)
}

func findingID(key string, started time.Time) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return fmt.Sprintf("%016x-%s", h.Sum64(), strconv.FormatInt(started.Unix(), 36))
}

func ptr[T any](v T) *T { return &v }

// findingsCollector exposes one gauge series per firing finding, built at
// scrape time so resolved findings leave no stale series. Cardinality is
// bounded by MaxFindings.
type findingsCollector struct{ e *Engine }

var findingDesc = prometheus.NewDesc("cartograph_finding_firing",
	"1 for each firing finding, labelled by kind, severity and subject (node, or source and target).",
	[]string{"kind", "severity", "node", "source", "target", "id"}, nil)

func (c findingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- findingDesc }

func (c findingsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.e.Findings(finding.StateFiring) {
		ch <- prometheus.MustNewConstMetric(findingDesc, prometheus.GaugeValue, 1,
			f.Kind.String(), f.Severity.String(), f.Subject.Node, f.Subject.Source, f.Subject.Target, f.ID)
	}
}

// owners names the owner of a finding's subject in one snapshot.
type owners struct {
	s     *graph.Snapshot
	edges map[string]int // edge id -> index in s.Edges, made on first use
}

func newOwners(s *graph.Snapshot) *owners { return &owners{s: s} }

// of returns the owner of the team that must act on a finding about sub:
// a node's owner; for an edge, the owner of its target (the callee that
// fails or is slow, the consumer that lags), else of its source when the
// target has none (a database, a topic, an external service).
func (o *owners) of(sub finding.Subject) string {
	if sub.EdgeID == "" {
		n, _ := o.s.Node(sub.NodeID)
		return n.Owner
	}
	if o.edges == nil {
		o.edges = make(map[string]int, len(o.s.Edges))
		for i, e := range o.s.Edges {
			o.edges[e.ID] = i
		}
	}
	i, ok := o.edges[sub.EdgeID]
	if !ok {
		return ""
	}
	e := &o.s.Edges[i]
	if t, _ := o.s.Node(e.Target); t.Owner != "" {
		return t.Owner
	}
	src, _ := o.s.Node(e.Source)
	return src.Owner
}
