package lag

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Store. Zero fields take the documented defaults.
type Options struct {
	// Retention is how long samples are kept per key (default 15m). It
	// bounds the history used for time lag and the age of samples Add
	// accepts.
	Retention time.Duration
	// StaleAfter is the age of a partition's newest reading beyond which the
	// partition is StateStale (default 2m). It must be below Retention, so a
	// silent source shows as stale before its keys are forgotten.
	StaleAfter time.Duration
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
	if o.StaleAfter <= 0 || o.StaleAfter >= o.Retention {
		errs = append(errs, fmt.Errorf("stale after %v: must be in (0, retention %v)", o.StaleAfter, o.Retention))
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
	if o.StaleAfter == 0 {
		o.StaleAfter = 2 * time.Minute
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
// evaluates it into a Status per group. All methods are safe for concurrent
// use: Add and Forget take a write lock, Evaluate a read lock.
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
// most StaleAfter ahead of it (a reading from the future would never go
// stale).
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
	case x.Time.After(now.Add(s.o.StaleAfter)):
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
// more than StaleAfter ahead of now) and those for a new key once MaxKeys
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

func (s *Store) sweepEvery() time.Duration { return max(s.o.StaleAfter/2, time.Second) }

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

// Evaluate judges every group, all partitions of a GroupKey together, on
// the samples of the last window (a non-positive window, or one longer than
// Retention, means Retention), and returns one Status per group that has a
// sample within Retention, sorted by GroupKey.
//
// Each partition is judged in the manner of Burrow's evaluator: stale when
// no reading arrived in the window or for StaleAfter; else OK when its lag
// was zero at the newest reading; else, on the readings since its lag last
// stood at zero, stopped when it had no consumers and a lag over at least
// half the window; else stalled when its committed position (or, without
// offsets, its consumed counter) did not move over at least half the window
// while the lag stayed above zero; else warning when its lag rose at each
// of the last three or more readings while the position moved, by much more
// than the partition's own noise (see judge); else OK. The group takes the
// worst state of its partitions that are not stale, and is stale only when
// all are.
func (s *Store) Evaluate(window time.Duration) []Status {
	now := s.o.Now()
	if window <= 0 || window > s.o.Retention {
		window = s.o.Retention
	}
	e := evaluator{
		now:        now.UnixNano(),
		start:      now.Add(-window).UnixNano(),
		cutoff:     now.Add(-s.o.Retention).UnixNano(),
		window:     window,
		staleAfter: int64(s.o.StaleAfter),
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	gks := make([]GroupKey, 0, len(s.groups))
	for gk := range s.groups {
		gks = append(gks, gk)
	}
	slices.SortFunc(gks, func(a, b GroupKey) int {
		return cmp.Or(cmp.Compare(a.System, b.System), cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Group, b.Group))
	})
	out := make([]Status, 0, len(gks))
	var parts []partition
	for _, gk := range gks {
		parts = parts[:0]
		for _, sr := range s.groups[gk].series {
			if p, ok := e.partition(sr); ok {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			continue
		}
		out = append(out, e.group(gk, parts, s.groups[gk].series))
	}
	return out
}

// evaluator holds one evaluation's clock and window, in Unix ns.
type evaluator struct {
	now, start, cutoff int64
	window             time.Duration
	staleAfter         int64
}

// partition is the evaluation of one key.
type partition struct {
	key    Key
	state  State
	newest int64   // time of the newest reading
	lag    float64 // newest known lag, or Unknown
	cons   float64 // newest known consumers, or Unknown

	prod, consume     float64 // rates over the window, msgs/s
	prodOK, consumeOK bool
	seconds           float64 // time lag
	secondsOK         bool

	zeroAt         int64   // OK: the latest reading in the window with lag 0, or 0
	stuckAt        float64 // stalled: the position that did not move
	stuckOnCounter bool    // stalled: judged on the consumed counter, not offsets
	fromLag, toLag float64 // warning: lag at the window's first and last reading
	growSpan       int64   // warning: ns between them
	behind         float64 // stalled/stopped: the lag
}

// newestKnown returns the newest known value of field f, or Unknown.
func newestKnown(pts []point, f int) float64 {
	for i := len(pts) - 1; i >= 0; i-- {
		if v := pts[i].v[f]; v >= 0 {
			return v
		}
	}
	return Unknown
}

// rate returns the increase per second of field f over pts, using the
// readings where it is known. For offsets a decrease (a rewind, a recreated
// topic) adds nothing; for counters it is a reset, and the new value counts
// as the increase.
func rate(pts []point, f int, counter bool) (float64, bool) {
	var inc, prev float64
	var first, last int64
	n := 0
	for i := range pts {
		v := pts[i].v[f]
		if v < 0 {
			continue
		}
		if n == 0 {
			first = pts[i].t
		} else if d := v - prev; d >= 0 {
			inc += d
		} else if counter {
			inc += v
		}
		prev, last = v, pts[i].t
		n++
	}
	if n < 2 || last <= first {
		return 0, false
	}
	return inc / (float64(last-first) / 1e9), true
}

// rates returns the produce and consume rates over pts: from End and
// Committed offsets, or else from the Produced and Consumed counters.
func rates(pts []point) (prod float64, prodOK bool, cons float64, consOK bool) {
	if prod, prodOK = rate(pts, fEnd, false); !prodOK {
		prod, prodOK = rate(pts, fProduced, true)
	}
	if cons, consOK = rate(pts, fCommitted, false); !consOK {
		cons, consOK = rate(pts, fConsumed, true)
	}
	return prod, prodOK, cons, consOK
}

// timeLag returns how long ago, at ref, the head of the destination was
// where the consumer is now. With an End history and a committed position,
// it is the time End equalled the newest Committed, interpolated between
// readings, or extrapolated back from the oldest reading at the produce
// rate of the history (kafka-lag-exporter's method). Without them it is
// lag / prod, the age of the head of a FIFO backlog.
func timeLag(pts []point, lag float64, ref int64, prod float64, prodOK bool) (float64, bool) {
	switch {
	case lag < 0:
		return 0, false
	case lag == 0:
		return 0, true
	}
	c := newestKnown(pts, fCommitted)
	j := len(pts) - 1
	for j >= 0 && pts[j].v[fEnd] < 0 {
		j--
	}
	if c < 0 || j < 0 {
		if prodOK && prod > 0 {
			return lag / prod, true
		}
		return 0, false
	}
	if pts[j].v[fEnd] < c { // ahead of the newest head reading
		return 0, true
	}
	// Walk back over the readings where End >= c to the one before them.
	var at float64
	prev := -1
	for k := j - 1; k >= 0; k-- {
		e := pts[k].v[fEnd]
		if e < 0 {
			continue
		}
		if e < c {
			prev = k
			break
		}
		j = k
	}
	ej, tj := pts[j].v[fEnd], float64(pts[j].t)
	switch {
	case prev >= 0:
		ep, tp := pts[prev].v[fEnd], float64(pts[prev].t)
		at = tp + (c-ep)/(ej-ep)*(tj-tp)
	case ej == c:
		at = tj
	default: // c is older than the oldest End held: extrapolate
		r, ok := rate(pts, fEnd, false)
		if !ok || r <= 0 {
			return 0, false
		}
		at = tj - (ej-c)/r*1e9
	}
	return max(float64(ref)-at, 0) / 1e9, true
}

// partition evaluates one key; false when it has no sample within Retention.
func (e *evaluator) partition(sr *series) (partition, bool) {
	pts := sr.pts()
	pts = pts[search(pts, e.cutoff):]
	if len(pts) == 0 {
		return partition{}, false
	}
	p := partition{
		key:    sr.key,
		newest: pts[len(pts)-1].t,
		lag:    newestKnown(pts, fLag),
		cons:   newestKnown(pts, fConsumers),
	}
	w := pts[search(pts, e.start):]
	if len(w) == 0 || e.now-p.newest > e.staleAfter {
		// Numbers as of the newest reading, time lag included.
		p.state = StateStale
		prod, ok, _, _ := rates(pts)
		p.seconds, p.secondsOK = timeLag(pts, p.lag, p.newest, prod, ok)
		return p, true
	}
	// A source read less often than the window needs (the kafkametrics
	// receiver scrapes once a minute by default) leaves too few readings in
	// it to judge: the last minRises+1 are judged instead.
	if n := minRises + 1; len(w) < n {
		w = pts[max(0, len(pts)-n):]
	}
	p.prod, p.prodOK, p.consume, p.consumeOK = rates(w)
	p.seconds, p.secondsOK = timeLag(pts, p.lag, e.now, p.prod, p.prodOK)
	p.state = e.judge(&p, w, pts, minRises)
	return p, true
}

// maxSubjects bounds the trace-side names kept per series and per status.
const maxSubjects = 32

// The rules' constants. A broker poller reads a group every 15 s or so, so
// a one-minute window holds only four or five readings: too few for
// Burrow's "lag never fell" alone, which iid jitter on a dozen partitions
// satisfies on some partition at most polls. Growth must therefore also be
// large against the partition's own noise.
const (
	// minRun is how many readings, spanning at least half the window, a
	// partition must have shown no consumers, or an unmoving position
	// with lag, before it is stopped or stalled. A rebalance that pauses
	// the group for less than two polls is not judged.
	minRun = 3
	// minRises is how many rises in a row, each while the position moved,
	// make a partition falling behind (with the growth conditions below).
	minRises = 3
	// minGroupRises is how many rises in a row of the group's lag, summed
	// over its partitions, make the group falling behind (with the same
	// growth conditions, against the sum's own noise): a sum over n
	// partitions grows n times faster than one of them while its iid
	// jitter grows only about sqrt(n) times, so it shows a slow group
	// (a few messages a poll on each partition) a poll sooner.
	minGroupRises = 2
	// bandFactor: the growth must exceed bandFactor times the partition's
	// noise band before the rises (see band).
	bandFactor = 2.0
	// minBaseline is how long the readings before the rises must span to
	// make a noise band on their own (see band). With less history (at
	// start-up) the growth must also be at least minDeficitYoung of what
	// was produced.
	minBaseline = 5 * time.Minute
	// minGrowth is the least growth, in messages, that is falling behind.
	minGrowth = 10.0
	// minDeficit is the least share of the messages produced during the
	// rises that the growth must be: the group consumed under 90% of them.
	minDeficit      = 0.1
	minDeficitYoung = 0.25
	// minDrainShare is the least net gain, as a share of the consume rate,
	// for which a drain time is given: below it the net rate is measuring
	// noise and lag / net rate is meaningless.
	minDrainShare = 0.05
)

// judge applies the rules to a partition with readings w in the window and
// hist within Retention (w is a suffix of hist), rises being the rises in a
// row that make it falling behind (minRises for a partition).
//
// Only the trailing run is judged: the readings since the lag last stood at
// zero (all of w when it did not), so a group that caught up at any reading
// is OK (Burrow's first rule). Then, in order:
//   - stopped: no consumers, with lag, on the last minRun or more readings
//     spanning at least half the window;
//   - stalled: the position (committed offset, or consumed counter) the
//     same, with lag, on the last minRun or more readings spanning at least
//     half the window;
//   - warning (falling behind): the lag rose at each of the last rises
//     or more readings, spanning at least half the window, while the
//     position moved at each (a group that is consuming, just too slowly),
//     and the growth is at least minGrowth messages, at least minDeficit of
//     what was produced meanwhile, and, without its largest step, more than
//     bandFactor times the partition's noise band (see band): steady
//     growth, not one jump.
//
// A rebalance or a commit pause shorter than two polls, a burst that
// drains, and lag jittering within its band are OK.
func (e *evaluator) judge(p *partition, w, hist []point, rises int) State {
	run := w
	for i := len(w) - 1; i >= 0; i-- {
		if w[i].v[fLag] == 0 {
			p.zeroAt = w[i].t
			run = w[i+1:]
			break
		}
	}
	if len(run) == 0 {
		return StateOK // caught up at the newest reading
	}
	newest := run[len(run)-1]
	if newest.v[fLag] <= 0 {
		return StateOK // lag unknown at the newest reading
	}
	if e.long(trailing(run, func(x *point) bool { return x.v[fConsumers] == 0 && x.v[fLag] > 0 })) {
		p.behind = p.lag
		return StateStopped
	}
	// The position is the committed offset when known, else (a queue) the
	// consumed counter.
	f := fCommitted
	if newest.v[f] < 0 {
		f = fConsumed
	}
	if pos := newest.v[f]; pos >= 0 && e.long(trailing(run, func(x *point) bool { return x.v[f] == pos && x.v[fLag] > 0 })) {
		p.stuckAt, p.stuckOnCounter, p.behind = pos, f == fConsumed, p.lag
		return StateStalled
	}
	n := 1
	for i := len(run) - 1; i > 0; i-- {
		a, b := &run[i-1], &run[i]
		if !(a.v[fLag] >= 0 && b.v[fLag] > a.v[fLag]) || (a.v[f] >= 0 && b.v[f] >= 0 && !(b.v[f] > a.v[f])) {
			break
		}
		n++
	}
	g := run[len(run)-n:]
	first := g[0]
	if n-1 < rises || time.Duration(newest.t-first.t) < e.window/2 {
		return StateOK
	}
	// The growth must be sustained: without its largest step (a burst, a
	// pause) it must still clear the noise band.
	growth, jump := newest.v[fLag]-first.v[fLag], 0.0
	for i := 1; i < len(g); i++ {
		jump = max(jump, g[i].v[fLag]-g[i-1].v[fLag])
	}
	noise, young := band(hist[:search(hist, first.t)], first)
	if growth < minGrowth || growth-jump <= bandFactor*noise {
		return StateOK
	}
	deficit := minDeficit
	if young {
		deficit = minDeficitYoung
	}
	for _, pf := range []int{fEnd, fProduced} {
		if a, b := first.v[pf], newest.v[pf]; a >= 0 && b >= a {
			if growth < deficit*(b-a) {
				return StateOK
			}
			break
		}
	}
	p.fromLag, p.toLag, p.growSpan = first.v[fLag], newest.v[fLag], newest.t-first.t
	return StateWarning
}

// trailing returns the longest suffix of w whose points all satisfy ok.
func trailing(w []point, ok func(*point) bool) []point {
	i := len(w)
	for i > 0 && ok(&w[i-1]) {
		i--
	}
	return w[i:]
}

// long reports whether w has at least minRun readings spanning at least
// half the window.
func (e *evaluator) long(w []point) bool {
	return len(w) >= minRun && time.Duration(w[len(w)-1].t-w[0].t) >= e.window/2
}

// band returns the noise band of a partition's lag before the rise that
// starts at the reading from: half the range of the steps between
// consecutive known lags of before and from (a steady trend moves every
// step alike and does not widen it, so a group already falling behind
// stays judged so). While those readings span less than minBaseline
// (young), the band is at least the oldest known lag: too few steps to
// know the noise, it is taken to reach the level the lag started at.
func band(before []point, from point) (noise float64, young bool) {
	oldest, prev := from, -1.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range append(before[:len(before):len(before)], from) {
		v := x.v[fLag]
		if v < 0 {
			continue
		}
		if prev < 0 {
			oldest = x
		} else {
			lo, hi = min(lo, v-prev), max(hi, v-prev)
		}
		prev = v
	}
	if hi >= lo {
		noise = (hi - lo) / 2
	}
	if young = time.Duration(from.t-oldest.t) < minBaseline; young {
		noise = max(noise, oldest.v[fLag])
	}
	return noise, young
}

// group folds the partitions of gk into its Status.
func (e *evaluator) group(gk GroupKey, parts []partition, series []*series) Status {
	st := Status{GroupKey: gk, Partitions: len(parts)}
	var (
		lagKnown                      bool
		messages                      float64
		prod, cons, secs, consumers   float64
		prodOK, consOK, secsOK, consK bool
		newest                        int64
		stale                         []*partition
	)
	worst := State(0)
	for i := range parts {
		p := &parts[i]
		newest = max(newest, p.newest)
		if p.lag >= 0 {
			lagKnown = true
			messages += p.lag
		}
		if p.cons >= 0 {
			consumers, consK = max(consumers, p.cons), true
		}
		if p.prodOK {
			prod, prodOK = prod+p.prod, true
		}
		if p.consumeOK {
			cons, consOK = cons+p.consume, true
		}
		if p.secondsOK {
			secs, secsOK = max(secs, p.seconds), true
		}
		if p.state == StateStale {
			stale = append(stale, p)
		} else {
			worst = max(worst, p.state)
		}
	}
	st.UpdatedAt = time.Unix(0, newest).UTC()
	if prodOK {
		st.ProduceRate = &prod
	}
	if consOK {
		st.ConsumeRate = &cons
	}
	if consK {
		st.Consumers = &consumers
	}
	if secsOK {
		st.Seconds = &secs
	}
	if lagKnown {
		st.Messages = &messages
	}
	switch d := cons - prod; {
	case !lagKnown:
	case messages == 0:
		st.DrainSeconds = ptr(0.0)
	case prodOK && consOK && d > 0 && d >= minDrainShare*cons:
		st.DrainSeconds = ptr(messages / d)
	}
	st.Sources = sources(series, e.cutoff)
	for _, sr := range series {
		for _, subj := range sr.subjects {
			if !slices.Contains(st.Subjects, subj) && len(st.Subjects) < maxSubjects {
				st.Subjects = append(st.Subjects, subj)
			}
		}
	}
	slices.Sort(st.Subjects)

	if worst == 0 {
		st.State = StateStale
		st.Reason = e.staleReason(&st, lagKnown)
		return st
	}
	st.State = worst
	if worst == StateOK && len(parts)-len(stale) > 1 {
		if gp, ok := e.whole(parts, series); ok {
			st.State = StateWarning
			st.Reason = fmt.Sprintf("falling behind: the group's lag grew from %s to %s messages in %s over its %d partitions",
				num(gp.fromLag), num(gp.toLag), dur(float64(gp.growSpan)/1e9), len(parts)-len(stale))
		}
	}
	if st.Reason == "" {
		st.Reason = e.reason(&st, parts, lagKnown)
	}
	if len(stale) > 0 {
		if len(stale) == 1 {
			st.Reason += fmt.Sprintf("; %s has had no reading since %s", partName(stale[0].key), ts(stale[0].newest))
		} else {
			latest := slices.MaxFunc(stale, func(a, b *partition) int { return cmp.Compare(a.newest, b.newest) })
			st.Reason += fmt.Sprintf("; %d of %d partitions have had no reading for %s or more", len(stale), len(parts), dur(float64(e.now-latest.newest)/1e9))
		}
	}
	return st
}

// whole judges the group as one partition whose readings are the sums of
// its live (not stale) partitions' readings taken at the same time (one
// broker poll): falling behind when the summed lag rose on each of the
// last minGroupRises readings, by the rules judge applies to a partition
// (the summed position moving at each, the growth clear of minGrowth, the
// deficit and the sum's own noise band). It returns the group's growth,
// and false when the sum is not falling behind or there are fewer than
// minGroupRises+1 readings of every live partition at the same times.
func (e *evaluator) whole(parts []partition, series []*series) (partition, bool) {
	live := make(map[Key]bool, len(parts))
	for i := range parts {
		if parts[i].state != StateStale {
			live[parts[i].key] = true
		}
	}
	type acc struct {
		n   int
		sum point
	}
	at := map[int64]*acc{}
	for _, sr := range series {
		if !live[sr.key] {
			continue
		}
		pts := sr.pts()
		for _, x := range pts[search(pts, e.cutoff):] {
			a := at[x.t]
			if a == nil {
				a = &acc{sum: point{t: x.t}}
				at[x.t] = a
			}
			a.n++
			for f := range nFields {
				switch {
				case f == fConsumers:
					a.sum.v[f] = Unknown // members are not partitions' to add up
				case x.v[f] < 0 || a.n > 1 && a.sum.v[f] < 0:
					a.sum.v[f] = Unknown
				default:
					a.sum.v[f] += x.v[f]
				}
			}
		}
	}
	sum := make([]point, 0, len(at))
	for _, a := range at {
		if a.n == len(live) && a.sum.v[fLag] >= 0 {
			sum = append(sum, a.sum)
		}
	}
	slices.SortFunc(sum, func(a, b point) int { return cmp.Compare(a.t, b.t) })
	w := sum[search(sum, e.start):]
	if n := minGroupRises + 1; len(w) < n {
		w = sum[max(0, len(sum)-n):]
	}
	if len(w) < minGroupRises+1 || e.now-w[len(w)-1].t > e.staleAfter {
		return partition{}, false
	}
	var gp partition
	return gp, e.judge(&gp, w, sum, minGroupRises) == StateWarning
}

func (e *evaluator) staleReason(st *Status, lagKnown bool) string {
	r := fmt.Sprintf("no reading since %s (%s ago)", ts(st.UpdatedAt.UnixNano()), dur(float64(e.now-st.UpdatedAt.UnixNano())/1e9))
	if lagKnown {
		r += fmt.Sprintf(", when the lag was %s messages", num(*st.Messages))
	}
	return r
}

// reason explains a group's state from its partitions in that state.
func (e *evaluator) reason(st *Status, parts []partition, lagKnown bool) string {
	var in []*partition
	for i := range parts {
		if parts[i].state == st.State {
			in = append(in, &parts[i])
		}
	}
	// The representative: the largest lag, then the lowest partition.
	rep := slices.MinFunc(in, func(a, b *partition) int {
		return cmp.Or(cmp.Compare(b.lag, a.lag), cmp.Compare(a.key.Partition, b.key.Partition))
	})
	where := ""
	if len(parts) > 1 {
		switch len(in) {
		case 1:
			where = " on " + partName(rep.key)
		case len(parts):
			where = fmt.Sprintf(" on all %d partitions", len(parts))
		default:
			where = fmt.Sprintf(" on %d of %d partitions", len(in), len(parts))
		}
	}
	switch st.State {
	case StateStopped:
		var l float64
		for _, p := range in {
			l += p.behind
		}
		return fmt.Sprintf("no consumers while lag is %s messages%s", num(l), where)
	case StateStalled:
		what := "position"
		if rep.stuckOnCounter {
			what = "consumed count"
		}
		r := fmt.Sprintf("%s stuck at %s while lag is %s messages", what, num(rep.stuckAt), num(rep.behind))
		switch {
		case len(parts) == 1:
		case len(in) == 1:
			r += where
		default:
			r += fmt.Sprintf(" on %s and %s", partName(rep.key), others(len(in)-1))
		}
		return r
	case StateWarning:
		// One partition's numbers, the one that grew most: partitions'
		// growths span different readings and do not add up.
		rep := slices.MinFunc(in, func(a, b *partition) int {
			return cmp.Or(cmp.Compare(b.toLag-b.fromLag, a.toLag-a.fromLag), cmp.Compare(a.key.Partition, b.key.Partition))
		})
		r := fmt.Sprintf("falling behind: lag grew from %s to %s messages in %s", num(rep.fromLag), num(rep.toLag), dur(float64(rep.growSpan)/1e9))
		switch {
		case len(parts) == 1:
		case len(in) == 1:
			r += " on " + partName(rep.key)
		default:
			r += fmt.Sprintf(" on %s (and on %s)", partName(rep.key), others(len(in)-1))
		}
		return r
	}
	var m float64
	if st.Messages != nil {
		m = *st.Messages
	}
	// OK.
	var zeroAt int64
	for i := range parts {
		zeroAt = max(zeroAt, parts[i].zeroAt)
	}
	switch {
	case !lagKnown:
		return "no lag reported"
	case m == 0 && st.ProduceRate != nil && *st.ProduceRate == 0:
		return "idle: no lag and nothing produced"
	case m == 0 && zeroAt > 0:
		return fmt.Sprintf("caught up at %s: no lag", ts(zeroAt))
	case m == 0:
		return "no lag"
	case zeroAt > 0:
		return fmt.Sprintf("caught up at %s, %s messages behind now", ts(zeroAt), num(m))
	case st.DrainSeconds != nil:
		return fmt.Sprintf("behind by %s messages but catching up, drained in about %s at the current rates", num(m), dur(*st.DrainSeconds))
	case st.ProduceRate != nil && st.ConsumeRate != nil && math.Abs(*st.ConsumeRate-*st.ProduceRate) < minDrainShare*max(*st.ConsumeRate, *st.ProduceRate):
		return fmt.Sprintf("keeping pace, %s messages behind", num(m))
	default:
		return fmt.Sprintf("behind by %s messages, not growing steadily", num(m))
	}
}

// sources returns the distinct, non-empty Sources that supplied the
// group's samples within Retention, sorted.
func sources(series []*series, cutoff int64) []string {
	var out []string
	for _, sr := range series {
		for _, src := range sr.srcs {
			if src.last >= cutoff && !slices.Contains(out, src.name) {
				out = append(out, src.name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func ptr[T any](v T) *T { return &v }

// others counts other partitions: "1 other partition", "2 other partitions".
func others(n int) string {
	if n == 1 {
		return "1 other partition"
	}
	return strconv.Itoa(n) + " other partitions"
}

func partName(k Key) string {
	if k.Partition < 0 {
		return "the destination"
	}
	return "partition " + strconv.Itoa(int(k.Partition))
}

// ts formats a Unix ns time for a Reason.
func ts(t int64) string { return time.Unix(0, t).UTC().Format(time.RFC3339) }

// dur formats seconds for a Reason, to the second.
func dur(secs float64) string {
	return (time.Duration(math.Round(secs)) * time.Second).String()
}

// num formats a count or an offset for a Reason: whole numbers in full,
// others to four significant digits.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'g', 4, 64), ".0")
}
