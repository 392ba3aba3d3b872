package lag

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Store. Zero fields take the documented defaults.
type Options struct {
	// Retention is how long samples are kept per key (default 15m). It
	// bounds the history used for time lag and the age of samples Add
	// accepts. A group is summarised while it has a sample within it, so
	// the judge's stale-after (detect.LagJudgeOptions) must be below it for
	// a silent source to show as stale before its keys are forgotten.
	Retention time.Duration
	// MaxAhead is how far past now a sample's time may be (default 2m):
	// later samples are rejected, as a reading from the future would look
	// current until its time came. The collector sets it to the judge's
	// stale-after, so that clock skew up to it is tolerated.
	MaxAhead time.Duration
	// MaxKeys bounds the partition keys kept (default 100,000); samples for
	// new keys beyond it are rejected and counted.
	MaxKeys int
	// MaxSamplesPerKey bounds each key's history (default 128, at least 2);
	// the oldest samples are dropped first and counted.
	MaxSamplesPerKey int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the store's metrics (nil: not registered):
	// cartograph_lag_samples_total{outcome}, cartograph_lag_samples_evicted_total
	// and cartograph_lag_keys.
	Registerer prometheus.Registerer
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Retention <= 0 {
		errs = append(errs, fmt.Errorf("retention %v: must be positive", o.Retention))
	}
	if o.MaxAhead <= 0 {
		errs = append(errs, fmt.Errorf("max ahead %v: must be positive", o.MaxAhead))
	}
	if o.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("max keys %d: must be positive", o.MaxKeys))
	}
	if o.MaxSamplesPerKey < 2 {
		errs = append(errs, fmt.Errorf("max samples per key %d: must be at least 2", o.MaxSamplesPerKey))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Retention == 0 {
		o.Retention = 15 * time.Minute
	}
	if o.MaxAhead == 0 {
		o.MaxAhead = 2 * time.Minute
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 100_000
	}
	if o.MaxSamplesPerKey == 0 {
		o.MaxSamplesPerKey = 128
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Outcomes of a sample handed to Add, the outcome label of
// cartograph_lag_samples_total.
const (
	outcomeAccepted        = "accepted"
	outcomeRejectedInvalid = "rejected_invalid"
	outcomeRejectedLimit   = "rejected_limit"
)

// Store keeps a bounded, time-ordered history of Samples per Key and
// summarises it into a Summary per group: numbers and facts, no verdict
// (detect.JudgeLag draws that). All methods are safe for concurrent use:
// Add and Forget take a write lock, Summarise a read lock; a Summary
// shares nothing with the Store.
type Store struct {
	o   Options
	max int // samples per key

	mu     sync.RWMutex
	keys   map[Key]*series
	groups map[GroupKey]*group
	swept  int64 // time of the last sweep of expired keys, Unix ns

	samples *prometheus.CounterVec
	evicted prometheus.Counter
	nkeys   prometheus.Gauge
}

// group is the set of partition keys of one GroupKey.
type group struct {
	series []*series
}

// Indexes of the numeric fields of a point.
const (
	fLag = iota
	fCommitted
	fEnd
	fConsumers
	fProduced
	fConsumed
	nFields
)

// point is a Sample stripped of its Key and Source. Unknown values are
// negative.
type point struct {
	t int64 // Unix ns
	v [nFields]float64
}

// maxSources bounds the sources remembered per key; beyond it the one seen
// least recently is replaced.
const maxSources = 8

// source is a Source value and the time of its newest sample, Unix ns.
type source struct {
	name string
	last int64
}

// series is one key's history, sorted by time, without duplicate times.
// buf[start:] holds the points; dropping the oldest advances start, and the
// slack is reclaimed when buf runs out of capacity, so neither dropping nor
// appending moves the history on every sample.
type series struct {
	key      Key
	gi       int // index in its group's series
	buf      []point
	start    int
	srcs     []source
	subjects []string // of the newest reading that had any
	subjAt   int64
}

func (sr *series) pts() []point { return sr.buf[sr.start:] }

// dropOldest removes the n oldest points.
func (sr *series) dropOldest(n int) {
	sr.start += n
	if sr.start == len(sr.buf) {
		sr.buf, sr.start = sr.buf[:0], 0
	}
}

// grow makes room for one more point at the end of buf.
func (sr *series) grow() {
	if len(sr.buf) < cap(sr.buf) {
		sr.buf = sr.buf[:len(sr.buf)+1]
		return
	}
	if n := len(sr.buf) - sr.start; sr.start > 0 && sr.start >= n/2 {
		copy(sr.buf, sr.buf[sr.start:])
		sr.buf, sr.start = sr.buf[:n+1], 0
		return
	}
	sr.buf = append(sr.buf, point{})
}

// insert adds p in time order, keeping at most max points; a point at an
// existing time replaces it. It reports whether p was kept and how many
// older points were evicted to make room.
func (sr *series) insert(p point, max int) (kept bool, evicted int) {
	pts := sr.pts()
	n := len(pts)
	if n == 0 || p.t > pts[n-1].t { // the common case: a newer reading
		sr.grow()
		sr.buf[len(sr.buf)-1] = p
		if n+1 > max {
			sr.dropOldest(1)
			evicted = 1
		}
		return true, evicted
	}
	i := search(pts, p.t)
	if pts[i].t == p.t {
		pts[i] = p
		return true, 0
	}
	if n >= max {
		if i == 0 { // older than the whole full history
			return false, 0
		}
		sr.dropOldest(1)
		evicted = 1
		i--
	}
	sr.grow()
	pts = sr.pts()
	copy(pts[i+1:], pts[i:len(pts)-1])
	pts[i] = p
	return true, evicted
}

// search returns the index of the first point at or after t, or len(pts).
func search(pts []point, t int64) int {
	lo, hi := 0, len(pts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if pts[m].t < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// seen records that src supplied a sample at t.
func (sr *series) seen(src string, t int64) {
	if src == "" {
		return
	}
	for i := range sr.srcs {
		if sr.srcs[i].name == src {
			sr.srcs[i].last = max(sr.srcs[i].last, t)
			return
		}
	}
	if len(sr.srcs) < maxSources {
		sr.srcs = append(sr.srcs, source{src, t})
		return
	}
	old := 0
	for i := range sr.srcs {
		if sr.srcs[i].last < sr.srcs[old].last {
			old = i
		}
	}
	if sr.srcs[old].last < t {
		sr.srcs[old] = source{src, t}
	}
}

// trim drops points and sources older than cutoff and reports whether any
// point remains.
func (sr *series) trim(cutoff int64) bool {
	pts := sr.pts()
	if i := search(pts, cutoff); i > 0 {
		sr.dropOldest(i)
	}
	sr.srcs = slices.DeleteFunc(sr.srcs, func(x source) bool { return x.last < cutoff })
	return len(sr.pts()) > 0
}

// New returns an empty Store.
func New(o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	o = o.withDefaults()
	s := &Store{
		o:      o,
		max:    o.MaxSamplesPerKey,
		keys:   map[Key]*series{},
		groups: map[GroupKey]*group{},
		swept:  o.Now().UnixNano(),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_lag_samples_total",
			Help: "Consumer lag samples handed to the lag store, by outcome (accepted, rejected_invalid, rejected_limit).",
		}, []string{"outcome"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_lag_samples_evicted_total",
			Help: "Accepted lag samples dropped from a key's full history to make room for newer ones.",
		}),
		nkeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_lag_keys",
			Help: "Consumer group partition keys held by the lag store.",
		}),
	}
	for _, oc := range []string{outcomeAccepted, outcomeRejectedInvalid, outcomeRejectedLimit} {
		s.samples.WithLabelValues(oc)
	}
	if reg := o.Registerer; reg != nil {
		cs := []prometheus.Collector{s.samples, s.evicted, s.nkeys}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] {
					reg.Unregister(done)
				}
				return nil, fmt.Errorf("lag: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// check validates a sample for Add: Sample.Validate, plus finite numbers,
// a partition of at least -1, and a time within Retention of now and at
// most MaxAhead ahead of it.
func (s *Store) check(x *Sample, now time.Time) error {
	if err := x.Validate(); err != nil {
		return err
	}
	for _, v := range []float64{x.Lag, x.Committed, x.End, x.Consumers, x.Produced, x.Consumed} {
		if math.IsInf(v, 0) {
			return fmt.Errorf("lag: infinite value in sample for %s/%s", x.System, x.Destination)
		}
	}
	switch {
	case x.Partition < -1:
		return fmt.Errorf("lag: partition %d in sample for %s/%s", x.Partition, x.System, x.Destination)
	case x.Time.Before(now.Add(-s.o.Retention)):
		return fmt.Errorf("lag: sample for %s/%s older than retention", x.System, x.Destination)
	case x.Time.After(now.Add(s.o.MaxAhead)):
		return fmt.Errorf("lag: sample for %s/%s from the future", x.System, x.Destination)
	}
	return nil
}

// toPoint normalises a checked sample: negative numbers become Unknown, and
// an unknown Lag is derived from End - Committed when both are known.
func toPoint(x *Sample) point {
	p := point{t: x.Time.UnixNano(),
		v: [nFields]float64{x.Lag, x.Committed, x.End, x.Consumers, x.Produced, x.Consumed}}
	for i, v := range p.v {
		if v < 0 {
			p.v[i] = Unknown
		}
	}
	if p.v[fLag] < 0 && p.v[fEnd] >= 0 && p.v[fCommitted] >= 0 {
		p.v[fLag] = max(p.v[fEnd]-p.v[fCommitted], 0)
	}
	return p
}

// Add records samples and returns how many it rejected: invalid ones (see
// Sample.Validate; also infinite values, or a time older than Retention or
// more than MaxAhead ahead of now) and those for a new key once MaxKeys
// keys are held. Samples of one key may arrive in any order; a sample at
// the time of a held one replaces it. Add does not keep samples after it
// returns. Expired keys are swept now and then, and whenever the key limit
// is reached.
func (s *Store) Add(samples []Sample) (rejected int) {
	now := s.o.Now()
	var accepted, invalid, limited, evicted int
	s.mu.Lock()
	if now.UnixNano()-s.swept >= int64(s.sweepEvery()) {
		s.forgetLocked(now)
	}
	swept := false
	for i := range samples {
		x := &samples[i]
		if s.check(x, now) != nil {
			invalid++
			continue
		}
		sr := s.keys[x.Key]
		if sr == nil {
			// At the limit, make room by sweeping expired keys, at most
			// once a second so a full store of live keys is not swept on
			// every Add.
			if len(s.keys) >= s.o.MaxKeys && !swept && now.UnixNano()-s.swept >= int64(time.Second) {
				s.forgetLocked(now)
				swept = true
			}
			if len(s.keys) >= s.o.MaxKeys {
				limited++
				continue
			}
			sr = s.addKey(x.Key)
		}
		p := toPoint(x)
		kept, ev := sr.insert(p, s.max)
		if !kept {
			limited++
			continue
		}
		sr.seen(x.Source, p.t)
		if len(x.Subjects) > 0 && p.t >= sr.subjAt {
			sr.subjects, sr.subjAt = slices.Clone(x.Subjects[:min(len(x.Subjects), maxSubjects)]), p.t
		}
		accepted++
		evicted += ev
	}
	nkeys := len(s.keys)
	s.mu.Unlock()

	s.samples.WithLabelValues(outcomeAccepted).Add(float64(accepted))
	s.samples.WithLabelValues(outcomeRejectedInvalid).Add(float64(invalid))
	s.samples.WithLabelValues(outcomeRejectedLimit).Add(float64(limited))
	s.evicted.Add(float64(evicted))
	s.nkeys.Set(float64(nkeys))
	return invalid + limited
}

// sweepsPerRetention is how often Add sweeps expired keys per Retention:
// every minute at the default Retention.
const sweepsPerRetention = 15

func (s *Store) sweepEvery() time.Duration { return max(s.o.Retention/sweepsPerRetention, time.Second) }

func (s *Store) addKey(k Key) *series {
	gk := GroupKey{k.System, k.Destination, k.Group}
	g := s.groups[gk]
	if g == nil {
		g = &group{}
		s.groups[gk] = g
	}
	sr := &series{key: k, gi: len(g.series)}
	g.series = append(g.series, sr)
	s.keys[k] = sr
	return sr
}

// Forget drops the samples older than Retention and the keys left without
// any, and returns how many keys it dropped. Call it periodically; Add
// also does now and then.
func (s *Store) Forget() (forgotten int) {
	now := s.o.Now()
	s.mu.Lock()
	forgotten = s.forgetLocked(now)
	n := len(s.keys)
	s.mu.Unlock()
	s.nkeys.Set(float64(n))
	return forgotten
}

func (s *Store) forgetLocked(now time.Time) (forgotten int) {
	s.swept = now.UnixNano()
	cutoff := now.Add(-s.o.Retention).UnixNano()
	for k, sr := range s.keys {
		if sr.trim(cutoff) {
			continue
		}
		delete(s.keys, k)
		gk := GroupKey{k.System, k.Destination, k.Group}
		g := s.groups[gk]
		last := g.series[len(g.series)-1]
		g.series[sr.gi], last.gi = last, sr.gi
		g.series[len(g.series)-1] = nil
		g.series = g.series[:len(g.series)-1]
		if len(g.series) == 0 {
			delete(s.groups, gk)
		}
		forgotten++
	}
	return forgotten
}
