package brokers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// LagSink receives the samples of a successful poll. Declared here, by its
// user.
type LagSink interface {
	Add(samples []lag.Sample) (rejected int)
}

// Source is one poller with its schedule.
type Source struct {
	// Name identifies the source in metrics, logs and the API (e.g.
	// "rabbitmq-main"); unique per runner.
	Name     string
	Poller   Poller
	Interval time.Duration // default 15s
	Timeout  time.Duration // default Interval/2, at most Interval
}

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Sources    []Source
	Sink       LagSink
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Status is what GET /api/v1/brokers says of one source.
type Status struct {
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Endpoint    string     `json:"endpoint"`
	Interval    float64    `json:"interval_seconds"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Polls       uint64     `json:"polls"`
	Failures    uint64     `json:"failures"`
	Samples     int        `json:"samples"` // in the last successful poll
}

// Runner polls every source on its own interval in its own goroutine, so a
// slow broker delays only itself. Safe for concurrent use.
type Runner struct {
	o        RunnerOptions
	polls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lastOK   *prometheus.GaugeVec

	mu     sync.Mutex
	status map[string]*Status
}

// NewRunner validates o and returns a Runner.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.Sink == nil {
		return nil, errors.New("brokers: RunnerOptions.Sink is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Runner{
		o:      o,
		status: map[string]*Status{},
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_broker_polls_total",
			Help: "Broker polls by source and outcome (success, error).",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cartograph_broker_poll_duration_seconds",
			Help:    "Broker poll duration by source.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"source"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cartograph_broker_last_success_timestamp_seconds",
			Help: "Unix time of the last successful poll by source (0: never).",
		}, []string{"source"}),
	}
	for i := range o.Sources {
		s := &o.Sources[i]
		if s.Name == "" || s.Poller == nil {
			return nil, fmt.Errorf("brokers: source %d needs a name and a poller", i)
		}
		if _, dup := r.status[s.Name]; dup {
			return nil, fmt.Errorf("brokers: duplicate source name %q", s.Name)
		}
		if s.Interval <= 0 {
			s.Interval = 15 * time.Second
		}
		if s.Timeout <= 0 || s.Timeout > s.Interval {
			s.Timeout = s.Interval / 2
		}
		r.status[s.Name] = &Status{Name: s.Name, Kind: s.Poller.Kind(), Endpoint: s.Poller.Endpoint(), Interval: s.Interval.Seconds()}
		r.polls.WithLabelValues(s.Name, "success")
		r.polls.WithLabelValues(s.Name, "error")
		r.lastOK.WithLabelValues(s.Name)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.polls, r.duration, r.lastOK} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("brokers: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Run polls every source at once and then on its interval until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range r.o.Sources {
		wg.Go(func() {
			t := time.NewTicker(s.Interval)
			defer t.Stop()
			for {
				r.PollOnce(ctx, s)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// PollOnce polls s once within its timeout and records the outcome.
func (r *Runner) PollOnce(ctx context.Context, s Source) {
	pctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	t0 := time.Now()
	samples, err := s.Poller.Poll(pctx)
	r.duration.WithLabelValues(s.Name).Observe(time.Since(t0).Seconds())
	if ctx.Err() != nil {
		return // shutting down: not the broker's failure
	}
	now := r.o.Now()
	if len(samples) > 0 {
		if rej := r.o.Sink.Add(samples); rej > 0 {
			r.o.Logger.Warn("broker samples rejected", "source", s.Name, "rejected", rej)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status[s.Name]
	st.Polls++
	if err != nil {
		st.Failures++
		st.LastError, st.LastErrorAt = err.Error(), &now
		r.polls.WithLabelValues(s.Name, "error").Inc()
		r.o.Logger.Warn("broker poll failed", "source", s.Name, "kind", st.Kind, "endpoint", st.Endpoint, "err", err)
		if len(samples) == 0 {
			return
		}
	} else {
		st.LastError, st.LastErrorAt = "", nil
		r.polls.WithLabelValues(s.Name, "success").Inc()
	}
	st.LastSuccess, st.Samples = &now, len(samples)
	r.lastOK.WithLabelValues(s.Name).Set(float64(now.UnixNano()) / 1e9)
}

// Status returns every source's status, sorted by name.
func (r *Runner) Status() []Status {
	r.mu.Lock()
	out := make([]Status, 0, len(r.status))
	for _, s := range r.status {
		out = append(out, *s)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
