package brokermetrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// seriesKey identifies a delta series: the metric, the sending instance and
// the attributes that identify the reading (a, b, c, part: topic, group and
// partition; vhost, queue and state; service, breaker and kind...).
type seriesKey struct {
	name, instance string
	a, b, c        string
	part           int32
}

type deltaSeries struct {
	total float64
	last  pcommon.Timestamp // Timestamp of the series' last point
	seen  time.Time         // when it was last added to, for expiry
}

// deltaTable keeps a running total per delta series so that delta sums reach
// the sinks as cumulative counters. It holds at most max series; a series is
// forgotten ttl after its last point. Safe for concurrent use.
type deltaTable struct {
	mu        sync.Mutex
	max       int
	ttl       time.Duration
	series    map[seriesKey]deltaSeries
	lastSweep time.Time
	size      prometheus.Gauge
	overflow  prometheus.Counter
}

func newDeltaTable(maxSeries int, ttl time.Duration, size prometheus.Gauge, overflow prometheus.Counter) *deltaTable {
	return &deltaTable{max: maxSeries, ttl: ttl, series: make(map[seriesKey]deltaSeries), size: size, overflow: overflow}
}

// add folds the delta v, covering (start, ts], into k's running total and
// returns the total.
//
// A point whose start is not the series' last timestamp (delta points are
// contiguous) follows a gap or a restart of the sender: the deltas in between
// are lost, so the total starts again from v, and the stores downstream see a
// counter reset rather than a wrong rate. A point not newer than the last
// one is a duplicate or a late retransmission: ErrOutOfOrder. A new series
// beyond the bound: ErrTooManyDeltaSeries.
func (t *deltaTable) add(k seriesKey, start, ts pcommon.Timestamp, v float64, now time.Time) (float64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastSweep) >= t.ttl {
		t.sweep(now)
	}
	s, ok := t.series[k]
	if !ok {
		if len(t.series) >= t.max {
			// Sweep early, but not on every new series while full.
			if now.Sub(t.lastSweep) >= t.ttl/16 {
				t.sweep(now)
			}
			if len(t.series) >= t.max {
				t.overflow.Inc()
				return 0, ErrTooManyDeltaSeries
			}
		}
		t.series[k] = deltaSeries{total: v, last: ts, seen: now}
		t.size.Set(float64(len(t.series)))
		return v, nil
	}
	switch {
	case ts != 0 && s.last != 0 && ts <= s.last:
		return 0, ErrOutOfOrder
	case start != 0 && s.last != 0 && start != s.last:
		s.total = v
	default:
		s.total += v
	}
	s.last, s.seen = ts, now
	t.series[k] = s
	return s.total, nil
}

// sweep forgets the series not added to for ttl. t.mu must be held.
func (t *deltaTable) sweep(now time.Time) {
	for k, s := range t.series {
		if now.Sub(s.seen) >= t.ttl {
			delete(t.series, k)
		}
	}
	t.lastSweep = now
	t.size.Set(float64(len(t.series)))
}
