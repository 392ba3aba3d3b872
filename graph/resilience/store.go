package resilience

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Store. Zero fields take the documented defaults.
type Options struct {
	// StaleAfter is how old a breaker's newest reading may be before it is
	// reported stale rather than current (default 2m).
	StaleAfter time.Duration
	// Retention is how long retry readings are kept (default 15m).
	Retention time.Duration
	// MaxKeys bounds the breakers and the retry series kept, each instance's
	// its own (default 10,000 each); readings for new keys beyond are
	// rejected and counted.
	MaxKeys    int
	Now        func() time.Time
	Registerer prometheus.Registerer
}

// Store keeps the newest state of every circuit breaker and a bounded
// history of retry counters, per instance of the service that reports them,
// and answers per breaker with the instances combined. Safe for concurrent
// use.
type Store struct {
	o        Options
	rejected *prometheus.CounterVec

	mu       sync.Mutex
	circuits map[seriesKey]CircuitSample
	retries  map[seriesKey][]RetrySample // sorted by time
}

// New returns a Store for o.
func New(o Options) (*Store, error) {
	if o.StaleAfter == 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.Retention == 0 {
		o.Retention = 15 * time.Minute
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleAfter < 0 || o.Retention < 0 || o.MaxKeys < 0 {
		return nil, errors.New("resilience: negative option")
	}
	s := &Store{o: o, circuits: map[seriesKey]CircuitSample{}, retries: map[seriesKey][]RetrySample{},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_resilience_samples_rejected_total",
			Help: "Circuit-breaker and retry readings rejected, by reason (invalid, limit).",
		}, []string{"reason"})}
	if o.Registerer != nil {
		if err := o.Registerer.Register(s.rejected); err != nil {
			return nil, fmt.Errorf("resilience: register metrics: %w", err)
		}
	}
	return s, nil
}

// AddCircuits records breaker states; for each breaker of each instance
// the newest reading wins. It returns how many were rejected (no time, no
// names, unknown state, or over the key limit).
func (s *Store) AddCircuits(samples []CircuitSample) (rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range samples {
		k := seriesKey{c.BreakerKey, c.Instance}
		switch old, ok := s.circuits[k]; {
		case c.Time.IsZero() || c.Service == "" || c.Name == "" || !circuitNames.Valid(c.State):
			s.rejected.WithLabelValues("invalid").Inc()
			rejected++
		case !ok && len(s.circuits) >= s.o.MaxKeys:
			s.rejected.WithLabelValues("limit").Inc()
			rejected++
		case !ok || !c.Time.Before(old.Time):
			s.circuits[k] = c
		}
	}
	return rejected
}

// AddRetries records cumulative retry counters, one history per breaker
// per instance. It returns how many were rejected (no time, no names, a
// negative or NaN count, or over the key limit).
func (s *Store) AddRetries(samples []RetrySample) (rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := s.o.Now().Add(-s.o.Retention)
	for _, r := range samples {
		k := seriesKey{r.BreakerKey, r.Instance}
		h, ok := s.retries[k]
		switch {
		case r.Time.IsZero() || r.Service == "" || r.Name == "" || r.Retries < 0 || r.Retries != r.Retries:
			s.rejected.WithLabelValues("invalid").Inc()
			rejected++
			continue
		case !ok && len(s.retries) >= s.o.MaxKeys:
			s.rejected.WithLabelValues("limit").Inc()
			rejected++
			continue
		}
		i, found := slices.BinarySearchFunc(h, r.Time, func(a RetrySample, t time.Time) int { return a.Time.Compare(t) })
		if found {
			h[i] = r
		} else {
			h = slices.Insert(h, i, r)
		}
		for len(h) > 0 && h[0].Time.Before(cut) {
			h = h[1:]
		}
		if len(h) > 256 {
			h = h[len(h)-256:]
		}
		s.retries[k] = h
	}
	return rejected
}

// Circuit is a breaker's newest state, its instances combined.
type Circuit struct {
	BreakerKey
	// State is the most open state any instance counted reports (forced
	// open, open, half open, disabled, closed, in that order): one open
	// instance makes the breaker open, and stays so while it reports open.
	State     CircuitState
	UpdatedAt time.Time // the newest reading of any instance
	// Open is how many of the Instances counted report open or forced
	// open. The instances counted are those heard from within StaleAfter,
	// or all when none is.
	Open, Instances int
	Stale           bool // no instance heard from for longer than StaleAfter
}

// openness orders states for Circuit.State: the most refusing wins.
var openness = [...]int{
	CircuitClosed:     1,
	CircuitDisabled:   2,
	CircuitHalfOpen:   3,
	CircuitOpen:       4,
	CircuitForcedOpen: 5,
}

// Circuits returns every breaker's newest state, instances combined, sorted
// by key, dropping instances unheard of for longer than the retention.
func (s *Store) Circuits() []Circuit {
	now := s.o.Now()
	type acc struct{ all, fresh Circuit }
	by := map[BreakerKey]*acc{}
	s.mu.Lock()
	for k, c := range s.circuits {
		age := now.Sub(c.Time)
		if age > s.o.Retention {
			delete(s.circuits, k)
			continue
		}
		a := by[k.BreakerKey]
		if a == nil {
			a = &acc{all: Circuit{BreakerKey: k.BreakerKey, Stale: true}, fresh: Circuit{BreakerKey: k.BreakerKey}}
			by[k.BreakerKey] = a
		}
		a.all.count(c)
		if age <= s.o.StaleAfter {
			a.fresh.count(c)
		}
	}
	s.mu.Unlock()
	out := make([]Circuit, 0, len(by))
	for _, a := range by {
		if a.fresh.Instances > 0 {
			out = append(out, a.fresh)
		} else {
			out = append(out, a.all)
		}
	}
	slices.SortFunc(out, func(a, b Circuit) int { return compareKeys(a.BreakerKey, b.BreakerKey) })
	return out
}

// count adds one instance's reading to c.
func (c *Circuit) count(r CircuitSample) {
	c.Instances++
	if r.State.IsOpen() {
		c.Open++
	}
	if openness[r.State] > openness[c.State] {
		c.State = r.State
	}
	if r.Time.After(c.UpdatedAt) {
		c.UpdatedAt = r.Time
	}
}

func compareKeys(a, b BreakerKey) int {
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// RetryRate is one retry series over a window, its instances' counters
// added up.
type RetryRate struct {
	BreakerKey
	// Retries and Calls are the increases over the window, summed over the
	// instances (Calls -1 when an instance does not report it).
	Retries, Calls float64
	// Seconds is the longest time any instance's readings span.
	Seconds float64
	// Instances is how many instances contributed.
	Instances int
}

// RetryRates returns, per series, the counter increases over the last
// window: each instance's increase from its own readings (a decrease is a
// reset of that instance, counted as a restart from zero), summed over the
// instances. Instances with fewer than two readings in the window are left
// out, and series with none left.
func (s *Store) RetryRates(window time.Duration) []RetryRate {
	from := s.o.Now().Add(-window)
	s.mu.Lock()
	defer s.mu.Unlock()
	by := map[BreakerKey]*RetryRate{}
	for k, h := range s.retries {
		i, _ := slices.BinarySearchFunc(h, from, func(a RetrySample, t time.Time) int { return a.Time.Compare(t) })
		w := h[i:]
		if len(w) < 2 {
			continue
		}
		var retries, calls float64
		knownCalls := true
		for j := 1; j < len(w); j++ {
			retries += increase(w[j-1].Retries, w[j].Retries)
			if w[j-1].Calls < 0 || w[j].Calls < 0 {
				knownCalls = false
			} else {
				calls += increase(w[j-1].Calls, w[j].Calls)
			}
		}
		r := by[k.BreakerKey]
		if r == nil {
			r = &RetryRate{BreakerKey: k.BreakerKey}
			by[k.BreakerKey] = r
		}
		r.Instances++
		r.Retries += retries
		r.Seconds = max(r.Seconds, w[len(w)-1].Time.Sub(w[0].Time).Seconds())
		switch {
		case !knownCalls || r.Calls < 0:
			r.Calls = -1
		default:
			r.Calls += calls
		}
	}
	out := make([]RetryRate, 0, len(by))
	for _, r := range by {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RetryRate) int { return compareKeys(a.BreakerKey, b.BreakerKey) })
	return out
}

// increase is a counter's increase from a to b; a decrease is a reset.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}
