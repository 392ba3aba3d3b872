package otlp

import (
	"fmt"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// heapGate refuses work while the live heap is above a bound, the way the
// OpenTelemetry Collector's memory_limiter does: senders are told to retry
// later (RESOURCE_EXHAUSTED / 429) instead of the process growing until it
// is killed. The live heap is what the last garbage collection found
// reachable (runtime/metrics "/gc/heap/live:bytes"), so garbage waiting to
// be collected does not count; it is read at most once per readEvery. Safe
// for concurrent use; a nil *heapGate never refuses.
type heapGate struct {
	limit    uint64
	refused  prometheus.Counter
	liveHeap prometheus.GaugeFunc

	mu     sync.Mutex // guards sample
	sample []rtmetrics.Sample
	next   atomic.Int64 // Unix ns of the next read
	over   atomic.Bool  // the last reading was above limit
	last   atomic.Uint64
}

const (
	liveHeapMetric = "/gc/heap/live:bytes"
	readEvery      = 10 * time.Millisecond
)

// newHeapGate returns a gate refusing above limit bytes of live heap, or
// nil when limit is 0. Its metrics are registered on reg (when not nil).
func newHeapGate(limit int64, reg prometheus.Registerer) (*heapGate, error) {
	if limit <= 0 {
		return nil, nil
	}
	h := &heapGate{
		limit:  uint64(limit),
		sample: []rtmetrics.Sample{{Name: liveHeapMetric}},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_receiver_memory_refusals_total",
			Help: "OTLP export requests refused because the live heap was above the receiver's heap bound (--memory-limit).",
		}),
	}
	h.liveHeap = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartograph_receiver_heap_limit_bytes",
		Help: "Live heap above which OTLP export requests are refused.",
	}, func() float64 { return float64(h.limit) })
	if reg != nil {
		for _, c := range []prometheus.Collector{h.refused, h.liveHeap} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("otlp: registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

// refuse reports whether a request must be refused now, counting it.
func (h *heapGate) refuse() bool {
	if h == nil {
		return false
	}
	now := time.Now().UnixNano()
	if now >= h.next.Load() && h.mu.TryLock() {
		rtmetrics.Read(h.sample)
		v := h.sample[0].Value.Uint64()
		h.last.Store(v)
		h.over.Store(v > h.limit)
		h.next.Store(now + int64(readEvery))
		h.mu.Unlock()
	}
	if h.over.Load() {
		h.refused.Inc()
		return true
	}
	return false
}
