package otlp

import "github.com/prometheus/client_golang/prometheus"

// limiter bounds how many export requests are processed at once. It never
// queues: tryAcquire fails at once when every slot is taken. It is safe for
// concurrent use.
type limiter struct {
	slots    chan struct{}
	inFlight prometheus.Gauge
	heap     *heapGate // nil: no heap bound
}

func newLimiter(n int, inFlight prometheus.Gauge) *limiter {
	return &limiter{slots: make(chan struct{}, n), inFlight: inFlight}
}

// tryAcquire takes a slot if one is free and the live heap is within its
// bound, and reports whether it did. Every
// successful tryAcquire must be followed by exactly one release.
func (l *limiter) tryAcquire() bool {
	if l.heap.refuse() {
		return false
	}
	select {
	case l.slots <- struct{}{}:
		l.inFlight.Inc()
		return true
	default:
		return false
	}
}

// release frees a slot taken by tryAcquire.
func (l *limiter) release() {
	l.inFlight.Dec()
	<-l.slots
}

// full reports whether every slot is taken at this instant, or the live
// heap is above its bound.
func (l *limiter) full() bool { return len(l.slots) == cap(l.slots) || l.heap.refuse() }
