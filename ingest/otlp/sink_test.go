package otlp

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// sink is an in-memory ingest.TracesConsumer and ingest.MetricsConsumer. It
// copies what it is given (consumers must not keep it), can be told to
// return an error, and can block calls to hold in-flight slots.
type sink struct {
	mu      sync.Mutex
	traces  []ptrace.Traces
	metrics []pmetric.Metrics
	spans   int
	points  int
	err     error
	gate    chan struct{} // when non-nil, calls wait until it is closed
	entered chan struct{} // a blocked call sends on it once it waits
}

func newSink() *sink { return &sink{entered: make(chan struct{}, 16)} }

// setErr makes every following call return err (nil: succeed).
func (s *sink) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// block makes following calls wait; the returned func lets them go.
func (s *sink) block() (unblock func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(gate)
	})
}

func (s *sink) wait(ctx context.Context) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate == nil {
		return nil
	}
	s.entered <- struct{}{}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *sink) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	s.traces = append(s.traces, cp)
	s.spans += td.SpanCount()
	return nil
}

func (s *sink) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	cp := pmetric.NewMetrics()
	md.CopyTo(cp)
	s.metrics = append(s.metrics, cp)
	s.points += md.DataPointCount()
	return nil
}

// counts returns how many spans and data points were consumed.
func (s *sink) counts() (spans, points int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans, s.points
}

// lastTraces returns the last traces consumed.
func (s *sink) lastTraces() ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.traces) == 0 {
		return ptrace.NewTraces()
	}
	return s.traces[len(s.traces)-1]
}
