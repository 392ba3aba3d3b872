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
	// MaxKeys bounds the breakers and the retry series kept (default
	// 10,000 each); readings for new keys beyond are rejected and counted.
	MaxKeys    int
	Now        func() time.Time
	Registerer prometheus.Registerer
}

// Store keeps the newest state of every circuit breaker and a bounded
// history of retry counters. Safe for concurrent use.
type Store struct {
	o        Options
	rejected *prometheus.CounterVec

	mu       sync.Mutex
	circuits map[BreakerKey]CircuitSample
	retries  map[BreakerKey][]RetrySample // sorted by time
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
	s := &Store{o: o, circuits: map[BreakerKey]CircuitSample{}, retries: map[BreakerKey][]RetrySample{},
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

// AddCircuits records breaker states; for each breaker the newest reading
// wins. It returns how many were rejected (no time, no names, unknown state,
// or over the key limit).
func (s *Store) AddCircuits(samples []CircuitSample) (rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range samples {
		switch old, ok := s.circuits[c.BreakerKey]; {
		case c.Time.IsZero() || c.Service == "" || c.Name == "" || !circuitNames.Valid(c.State):
			s.rejected.WithLabelValues("invalid").Inc()
			rejected++
		case !ok && len(s.circuits) >= s.o.MaxKeys:
			s.rejected.WithLabelValues("limit").Inc()
			rejected++
		case !ok || !c.Time.Before(old.Time):
			s.circuits[c.BreakerKey] = c
		}
	}
	return rejected
}

// AddRetries records cumulative retry counters.
func (s *Store) AddRetries(samples []RetrySample) (rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := s.o.Now().Add(-s.o.Retention)
	for _, r := range samples {
		h, ok := s.retries[r.BreakerKey]
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
		s.retries[r.BreakerKey] = h
	}
	return rejected
}

// Circuit is a breaker's newest state.
type Circuit struct {
	BreakerKey
	State     CircuitState
	UpdatedAt time.Time
	Stale     bool // no reading for longer than StaleAfter
}

// Circuits returns every breaker's newest state, sorted by key, dropping
// breakers unheard of for longer than the retention.
func (s *Store) Circuits() []Circuit {
	now := s.o.Now()
	s.mu.Lock()
	out := make([]Circuit, 0, len(s.circuits))
	for k, c := range s.circuits {
		age := now.Sub(c.Time)
		if age > s.o.Retention {
			delete(s.circuits, k)
			continue
		}
		out = append(out, Circuit{BreakerKey: k, State: c.State, UpdatedAt: c.Time, Stale: age > s.o.StaleAfter})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Circuit) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// RetryRate is the retries per second of one series over a window.
type RetryRate struct {
	BreakerKey
	Retries, Calls float64 // increases over the window (Calls -1 when unknown)
	Seconds        float64
}

// RetryRates returns, per series, the counter increases over the last
// window (resets counted as restarts from zero); series with fewer than two
// readings in the window are left out.
func (s *Store) RetryRates(window time.Duration) []RetryRate {
	from := s.o.Now().Add(-window)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RetryRate
	for k, h := range s.retries {
		i, _ := slices.BinarySearchFunc(h, from, func(a RetrySample, t time.Time) int { return a.Time.Compare(t) })
		w := h[i:]
		if len(w) < 2 {
			continue
		}
		r := RetryRate{BreakerKey: k, Seconds: w[len(w)-1].Time.Sub(w[0].Time).Seconds()}
		calls := 0.0
		knownCalls := true
		for j := 1; j < len(w); j++ {
			r.Retries += increase(w[j-1].Retries, w[j].Retries)
			if w[j-1].Calls < 0 || w[j].Calls < 0 {
				knownCalls = false
			} else {
				calls += increase(w[j-1].Calls, w[j].Calls)
			}
		}
		r.Calls = -1
		if knownCalls {
			r.Calls = calls
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RetryRate) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// increase is a counter's increase from a to b; a decrease is a reset.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}
