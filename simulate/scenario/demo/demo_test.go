package demo_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
	"github.com/seed-a49a8342/cartograph/simulate/scenario/demo"
)

func TestScheduleAt(t *testing.T) {
	const p = 10 * time.Second
	s := demo.Schedule{Phase: p, Faults: []scenario.Fault{scenario.FaultRetryStorm, scenario.FaultBottleneck}}
	for _, tt := range []struct {
		at    time.Duration
		want  scenario.Fault
		begin time.Duration
	}{
		{0, 0, 0},
		{9 * time.Second, 0, 0},
		{10 * time.Second, scenario.FaultRetryStorm, 10 * time.Second},
		{19 * time.Second, scenario.FaultRetryStorm, 10 * time.Second},
		{20 * time.Second, 0, 20 * time.Second},
		{30 * time.Second, scenario.FaultBottleneck, 30 * time.Second},
		{45 * time.Second, 0, 40 * time.Second},
		{50 * time.Second, scenario.FaultRetryStorm, 50 * time.Second}, // the cycle repeats, without warm-up
		{75 * time.Second, scenario.FaultBottleneck, 70 * time.Second},
	} {
		f, begin := s.At(tt.at)
		require.Equal(t, tt.want, f, "at %s", tt.at)
		require.Equal(t, tt.begin, begin, "at %s", tt.at)
	}
	require.Equal(t, 40*time.Second, s.Cycle())
}

// recorder is a pair of consumers noting what arrives, and which faults
// the generator had on at the time.
type recorder struct {
	gen *scenario.Generator

	mu      sync.Mutex
	roots   int                    // traces: root server spans
	onAt    map[scenario.Fault]int // traces sent while each fault was on
	metrics []time.Time
	calls   []time.Time
	refuse  func(n int) error // error for the n-th trace call (from 0), or nil
}

func (r *recorder) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.calls)
	r.calls = append(r.calls, time.Now())
	if r.refuse != nil {
		if err := r.refuse(n); err != nil {
			return err
		}
	}
	rss := td.ResourceSpans()
	roots := 0
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				if sp := spans.At(k); sp.Kind() == ptrace.SpanKindServer && sp.ParentSpanID().IsEmpty() {
					roots++
				}
			}
		}
	}
	r.roots += roots
	for _, f := range r.gen.Faults() {
		r.onAt[f] += roots
	}
	return nil
}

func (r *recorder) ConsumeMetrics(_ context.Context, _ pmetric.Metrics) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, time.Now())
	return nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newDriver(t *testing.T, r *recorder, o demo.Options, logs *syncBuffer) *demo.Driver {
	t.Helper()
	gen, err := scenario.New(scenario.Options{Seed: 1, Services: scenario.MinServices})
	require.NoError(t, err)
	r.gen, r.onAt = gen, map[scenario.Fault]int{}
	o.Generator, o.Traces, o.Metrics = gen, r, r
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	d, err := demo.New(o)
	require.NoError(t, err)
	return d
}

// TestDriverCycle runs the driver on a fake clock through one warm-up and
// one cycle: the rate is kept, broker readings go every second, each fault
// is on for one phase in the default order, and each change is logged.
func TestDriverCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const phase = 10 * time.Second
		r := &recorder{}
		var logs syncBuffer
		d := newDriver(t, r, demo.Options{Rate: 50, Phase: phase}, &logs)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		total := phase + d.Schedule().Cycle()
		time.Sleep(total - time.Millisecond) // the next cycle starts at total
		cancel()
		require.NoError(t, <-done)

		require.InDelta(t, 50*total.Seconds(), r.roots, 50*0.5, "traces sent at the rate")
		require.InDelta(t, total.Seconds(), len(r.metrics), 2, "one broker reading a second")
		for _, f := range scenario.AllFaults() {
			require.InDelta(t, 50*phase.Seconds(), r.onAt[f], 50*0.5, "%s on for one phase", f)
		}
		require.Empty(t, r.gen.Faults(), "every fault off once Run returns")

		var order []string
		for line := range strings.Lines(logs.String()) {
			if i := strings.Index(line, `msg="demo: `); i >= 0 {
				msg := line[i+len(`msg="demo: `):]
				order = append(order, msg[:strings.IndexByte(msg, '"')])
			}
		}
		require.Equal(t, []string{"healthy warm-up",
			"retry_storm on", "retry_storm off", "bottleneck on", "bottleneck off",
			"open_circuit on", "open_circuit off", "consumer_lag on", "consumer_lag off", "cascade on", "cascade off"}, order)
		require.Contains(t, logs.String(), `expect="retry_storm on gateway -> checkout"`)
	})
}

// TestDriverBackpressure: refused sends pause the driver, for longer after
// every further refusal, and it goes back to the rate once accepted.
func TestDriverBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{refuse: func(n int) error {
			if n < 4 {
				return ingest.ErrOverloaded
			}
			return nil
		}}
		var logs syncBuffer
		d := newDriver(t, r, demo.Options{Rate: 50, Tick: 100 * time.Millisecond}, &logs)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		time.Sleep(10 * time.Second)
		cancel()
		require.NoError(t, <-done)

		r.mu.Lock()
		defer r.mu.Unlock()
		require.Greater(t, len(r.calls), 50, "sending resumed")
		for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second} {
			gap := r.calls[i+1].Sub(r.calls[i])
			require.GreaterOrEqual(t, gap, want, "pause after refusal %d", i+1)
			require.Less(t, gap, want+200*time.Millisecond, "pause after refusal %d", i+1)
		}
		require.LessOrEqual(t, r.calls[5].Sub(r.calls[4]), 100*time.Millisecond, "back to every tick once accepted")
		// What was refused is dropped, and refused time is not made up for.
		resumed := r.calls[4]
		sent := float64(r.roots)
		require.InDelta(t, 50*(10*time.Second-resumed.Sub(r.calls[0])).Seconds(), sent, 50)
	})
}

func TestOptionsValidate(t *testing.T) {
	_, err := demo.New(demo.Options{})
	require.Error(t, err)
	gen, err := scenario.New(scenario.Options{})
	require.NoError(t, err)
	r := &recorder{}
	_, err = demo.New(demo.Options{Generator: gen, Traces: r, Metrics: r, Rate: -1})
	require.Error(t, err)
	_, err = demo.New(demo.Options{Generator: gen, Traces: r, Metrics: r, Faults: []scenario.Fault{9}})
	require.Error(t, err)
}
