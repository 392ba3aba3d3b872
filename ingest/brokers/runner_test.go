package brokers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// runnerPoller is a scripted Poller: it blocks until ctx is done when hang
// is set, else returns its samples and error.
type runnerPoller struct {
	hang    bool
	samples []lag.Sample
	err     error
}

func (p *runnerPoller) Kind() string     { return "kafka" }
func (p *runnerPoller) Endpoint() string { return redact("kafka://user:secret@b1:9092/?x=1") }
func (p *runnerPoller) Poll(ctx context.Context) ([]lag.Sample, error) {
	if p.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return p.samples, p.err
}

type runnerSink struct {
	mu sync.Mutex
	n  int
}

func (s *runnerSink) Add(samples []lag.Sample) int {
	s.mu.Lock()
	s.n += len(samples)
	s.mu.Unlock()
	return 0
}

func TestRunnerIsolatesSlowBrokers(t *testing.T) {
	sample := lag.Sample{Time: time.Now(), Key: lag.Key{System: "kafka", Destination: "orders", Group: "g", Partition: 0}, Lag: 3}
	sink := &runnerSink{}
	reg := prometheus.NewRegistry()
	r, err := NewRunner(RunnerOptions{
		Sink: sink, Registerer: reg,
		Sources: []Source{
			{Name: "slow", Poller: &runnerPoller{hang: true}, Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond},
			{Name: "fine", Poller: &runnerPoller{samples: []lag.Sample{sample}}, Interval: 20 * time.Millisecond},
			{Name: "broken", Poller: &runnerPoller{err: errors.New("connection refused")}, Interval: 20 * time.Millisecond},
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool {
		st := r.Status()
		return st[1].Polls >= 2 && st[2].Polls >= 5 && st[2].Failures >= 1
	}, 5*time.Second, 10*time.Millisecond, "a hanging broker must not hold up the others")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop")
	}

	st := r.Status()
	require.Equal(t, []string{"broken", "fine", "slow"}, []string{st[0].Name, st[1].Name, st[2].Name})
	require.Equal(t, "connection refused", st[0].LastError)
	require.Nil(t, st[0].LastSuccess)
	require.NotNil(t, st[1].LastSuccess)
	require.Equal(t, 1, st[1].Samples)
	require.Contains(t, st[2].LastError, "deadline exceeded")
	require.Equal(t, "kafka://b1:9092/", st[2].Endpoint, "no credentials, no query")
	require.Positive(t, sink.n)
	require.Positive(t, testutil.ToFloat64(r.polls.WithLabelValues("slow", "error")))
}

func TestRunnerRejectsBadSources(t *testing.T) {
	_, err := NewRunner(RunnerOptions{Sink: &runnerSink{}, Sources: []Source{{Name: "a", Poller: &runnerPoller{}}, {Name: "a", Poller: &runnerPoller{}}}})
	require.ErrorContains(t, err, "duplicate")
	_, err = NewRunner(RunnerOptions{Sources: nil})
	require.Error(t, err)
}
