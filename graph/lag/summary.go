package lag

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Query says what Summarise covers. Whoever judges the summaries sets it
// (detect.LagJudge): which readings are current, and how many a trend
// needs, are the judge's to say.
type Query struct {
	// Window is how far back the readings summarised go; non-positive, or
	// longer than Retention, means Retention.
	Window time.Duration
	// StaleAfter is the age of a partition's newest reading beyond which
	// the partition is stale, as it is with no reading in the window: its
	// numbers are as of that reading, and it is left out of the rates and
	// of Summary.Sum. Non-positive means Retention.
	StaleAfter time.Duration
	// MinReadings is how many readings a partition's Trend covers at the
	// least: a source read less often than the window needs (the
	// kafkametrics receiver scrapes once a minute by default) leaves too
	// few in it, and its newest MinReadings are summarised instead.
	MinReadings int
	// MinSumReadings is the same for Summary.Sum, which is nil when the
	// group's current partitions have fewer readings in common.
	MinSumReadings int
}

// Summary is what the readings of one group on one destination show over
// a window, all partitions together: the numbers an edge shows, and the
// facts a verdict is drawn from. Pointer fields are nil when they cannot be
// known. It draws no verdict (see detect.JudgeLag).
type Summary struct {
	GroupKey
	At     time.Time     // when summarised: now
	Window time.Duration // the window summarised (Query.Window after defaults)

	Messages     *float64 // latest total lag over partitions with a known lag; nil when none has one
	Seconds      *float64 // time lag: how long ago the consumer's position was the head (max over partitions)
	DrainSeconds *float64 // lag / (consume rate - produce rate), when the consumer gains on the producer by at least DrainShare of its consume rate (0 with no lag)

	ProduceRate *float64 // messages/s over the window, summed over current partitions
	ConsumeRate *float64 // messages/s over the window, summed over current partitions
	Consumers   *float64 // latest members / consumers

	UpdatedAt time.Time // time of the newest reading
	Sources   []string
	// Subjects are the trace-side names of the destination (see
	// Sample.Subjects), over all partitions.
	Subjects []string `json:",omitempty"`

	// Partitions are the group's partitions with a reading within
	// Retention, in the Store's order (the same from one call to the next
	// while the group's keys stay).
	Partitions []Partition
	// Sum is the Trend of the group's lag summed over its current (not
	// stale) partitions, at the times all of them have a reading (one
	// broker poll): a sum over n partitions grows n times faster than one
	// of them while their independent jitter grows only about sqrt(n)
	// times. It is nil with fewer than two current partitions, fewer than
	// MinSumReadings such readings, or a newest one older than StaleAfter.
	Sum *Trend
}

// Partition is what one partition's readings show.
type Partition struct {
	Partition int32 // -1: the destination has no partitions
	// Stale: no reading in the window, or none for Query.StaleAfter. Its
	// numbers are then as of its newest reading, and Trend is zero.
	Stale  bool
	Newest time.Time // its newest reading
	Lag    float64   // its newest known lag, or Unknown
	Trend  Trend     // of the readings in the window (at least MinReadings)
}

// Trend is what a series of readings (a partition's, or the group's summed
// lag) shows: where its lag last stood at zero, and what the readings
// since then (the run) did at their end. Runs and rises are counted
// backwards from the newest reading.
type Trend struct {
	// ZeroAt is the newest reading with a lag of zero; zero when none had.
	ZeroAt time.Time
	// Run is how many readings came after ZeroAt (all of them when none
	// had no lag); 0 means the series caught up at its newest reading.
	Run int
	// Lag is the lag at the run's newest reading, Unknown when that
	// reading has none (or Run is 0).
	Lag float64
	// Idle is the run's newest readings that show no consumers while the
	// lag is above zero. When Lag is unknown, it and the facts below are
	// empty (Position Unknown).
	Idle Span
	// Position is the consumer's position at the newest reading: its
	// committed offset, or (OnCounter; a queue) its consumed counter;
	// Unknown when neither is known.
	Position  float64
	OnCounter bool
	// Stuck is the run's newest readings at Position with the lag above
	// zero: the consumer's position did not move.
	Stuck Span
	// Rise is the run's newest readings over which the lag rose at each
	// reading while the position moved (a consumer consuming, too slowly).
	Rise Rise
}

// Span is a run of consecutive readings: how many, and the time from the
// first to the last.
type Span struct {
	Readings int
	Length   time.Duration
}

// Rise is the run of readings at the end of a Trend over which the lag
// rose at each reading while the position moved. With no rise (Rises 0),
// From and To are the newest lag, Produced is Unknown and the rest zero.
type Rise struct {
	Rises    int           // rises in a row (0: the lag did not rise at the newest reading)
	Length   time.Duration // from the first reading of the rise to the newest
	From, To float64       // the lag at them
	MaxStep  float64       // the largest single rise: a burst or a pause, not steady growth
	// Produced is how many messages were produced over the rise (head
	// offsets, or else the produced counter), Unknown when neither tells.
	Produced float64
	// Noise is half the range of the steps between consecutive known lags
	// of the readings held before the rise, and its first: the series' own
	// jitter. A steady trend moves every step alike and does not widen it.
	Noise float64
	// Baseline is how long the readings Noise comes from span (from the
	// oldest known lag held to the rise's first reading), and BaselineLag
	// the lag at the oldest: with little history, the noise is not known.
	Baseline    time.Duration
	BaselineLag float64
}

// DrainShare is the least net gain of the consumer on the producer, as a
// share of its consume rate, for which Summary.DrainSeconds is given: below
// it the net rate measures noise and lag / net rate is meaningless.
const DrainShare = 0.05

// maxSubjects bounds the trace-side names kept per series and per summary.
const maxSubjects = 32

// Summarise returns one Summary per group, all partitions of a GroupKey
// together, of the samples within Retention and the window of q, for every
// group that has a sample within Retention, sorted by GroupKey.
//
// A partition with no reading in the window or none for q.StaleAfter is
// stale: its lag and time lag are as of its newest reading, and it adds
// nothing to the rates or to Sum. A current partition's rates are over the
// readings of the window (at least its newest q.MinReadings), its time lag
// as of now, and its Trend over the same readings, its noise over all it
// holds.
func (s *Store) Summarise(q Query) []Summary {
	now := s.o.Now()
	window := q.Window
	if window <= 0 || window > s.o.Retention {
		window = s.o.Retention
	}
	staleAfter := q.StaleAfter
	if staleAfter <= 0 {
		staleAfter = s.o.Retention
	}
	sm := summariser{
		at:          now,
		now:         now.UnixNano(),
		start:       now.Add(-window).UnixNano(),
		cutoff:      now.Add(-s.o.Retention).UnixNano(),
		window:      window,
		staleAfter:  int64(staleAfter),
		minReadings: q.MinReadings,
		minSum:      max(q.MinSumReadings, 1),
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
	out := make([]Summary, 0, len(gks))
	var parts []partFacts
	for _, gk := range gks {
		parts = parts[:0]
		for _, sr := range s.groups[gk].series {
			if p, ok := sm.partition(sr); ok {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			continue
		}
		out = append(out, sm.group(gk, parts, s.groups[gk].series))
	}
	return out
}

// summariser holds one Summarise call's clock, window and query, in Unix
// ns.
type summariser struct {
	at                 time.Time
	now, start, cutoff int64
	window             time.Duration
	staleAfter         int64
	minReadings        int
	minSum             int
}

// partFacts is one partition's Partition and the numbers the group's are
// folded from.
type partFacts struct {
	Partition
	key               Key
	newest            int64
	cons              float64 // newest known consumers, or Unknown
	prod, consume     float64 // rates over the window, msgs/s
	prodOK, consumeOK bool
	seconds           float64 // time lag
	secondsOK         bool
}

// partition summarises one key; false when it has no sample within
// Retention.
func (sm *summariser) partition(sr *series) (partFacts, bool) {
	pts := sr.pts()
	pts = pts[search(pts, sm.cutoff):]
	if len(pts) == 0 {
		return partFacts{}, false
	}
	p := partFacts{
		key:    sr.key,
		newest: pts[len(pts)-1].t,
		cons:   newestKnown(pts, fConsumers),
	}
	p.Partition = Partition{Partition: sr.key.Partition, Newest: time.Unix(0, p.newest).UTC(), Lag: newestKnown(pts, fLag)}
	w := pts[search(pts, sm.start):]
	if len(w) == 0 || sm.now-p.newest > sm.staleAfter {
		// Numbers as of the newest reading, time lag included.
		p.Stale = true
		prod, ok, _, _ := rates(pts)
		p.seconds, p.secondsOK = timeLag(pts, p.Lag, p.newest, prod, ok)
		return p, true
	}
	if len(w) < sm.minReadings {
		w = pts[max(0, len(pts)-sm.minReadings):]
	}
	p.prod, p.prodOK, p.consume, p.consumeOK = rates(w)
	p.seconds, p.secondsOK = timeLag(pts, p.Lag, sm.now, p.prod, p.prodOK)
	p.Trend = trend(w, pts)
	return p, true
}

// trend summarises w, the readings judged, a suffix of hist, all the
// series holds.
func trend(w, hist []point) Trend {
	tr := Trend{Lag: Unknown, Position: Unknown}
	run := w
	for i := len(w) - 1; i >= 0; i-- {
		if w[i].v[fLag] == 0 {
			tr.ZeroAt = time.Unix(0, w[i].t).UTC()
			run = w[i+1:]
			break
		}
	}
	tr.Run = len(run)
	if len(run) == 0 {
		return tr
	}
	newest := run[len(run)-1]
	if newest.v[fLag] <= 0 {
		return tr // lag unknown at the newest reading
	}
	tr.Lag = newest.v[fLag]
	tr.Idle = spanOf(trailing(run, func(x *point) bool { return x.v[fConsumers] == 0 && x.v[fLag] > 0 }))
	// The position is the committed offset when known, else (a queue) the
	// consumed counter.
	f := fCommitted
	if newest.v[f] < 0 {
		f = fConsumed
	}
	tr.Position, tr.OnCounter = newest.v[f], f == fConsumed
	if pos := tr.Position; pos >= 0 {
		tr.Stuck = spanOf(trailing(run, func(x *point) bool { return x.v[f] == pos && x.v[fLag] > 0 }))
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
	r := &tr.Rise
	r.Rises, r.Length, r.From, r.To, r.Produced = n-1, time.Duration(newest.t-first.t), first.v[fLag], newest.v[fLag], Unknown
	if n == 1 {
		return tr
	}
	for i := 1; i < len(g); i++ {
		r.MaxStep = max(r.MaxStep, g[i].v[fLag]-g[i-1].v[fLag])
	}
	for _, pf := range []int{fEnd, fProduced} {
		if a, b := first.v[pf], newest.v[pf]; a >= 0 && b >= a {
			r.Produced = b - a
			break
		}
	}
	r.Noise, r.Baseline, r.BaselineLag = band(hist[:search(hist, first.t)], first)
	return tr
}

// trailing returns the longest suffix of w whose points all satisfy ok.
func trailing(w []point, ok func(*point) bool) []point {
	i := len(w)
	for i > 0 && ok(&w[i-1]) {
		i--
	}
	return w[i:]
}

func spanOf(w []point) Span {
	if len(w) == 0 {
		return Span{}
	}
	return Span{Readings: len(w), Length: time.Duration(w[len(w)-1].t - w[0].t)}
}

// band returns the noise band of a series' lag before the rise that starts
// at the reading from: half the range of the steps between consecutive
// known lags of before and from, and how long those readings span from the
// oldest known lag, with that lag.
func band(before []point, from point) (noise float64, baseline time.Duration, baselineLag float64) {
	oldest, prev := from, -1.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := 0; i <= len(before); i++ {
		x := &from
		if i < len(before) {
			x = &before[i]
		}
		v := x.v[fLag]
		if v < 0 {
			continue
		}
		if prev < 0 {
			oldest = *x
		} else {
			lo, hi = min(lo, v-prev), max(hi, v-prev)
		}
		prev = v
	}
	if hi >= lo {
		noise = (hi - lo) / 2
	}
	return noise, time.Duration(from.t - oldest.t), oldest.v[fLag]
}

// group folds the partitions of gk into its Summary.
func (sm *summariser) group(gk GroupKey, parts []partFacts, series []*series) Summary {
	su := Summary{GroupKey: gk, At: sm.at, Window: sm.window, Partitions: make([]Partition, len(parts))}
	var (
		lagKnown                      bool
		messages                      float64
		prod, cons, secs, consumers   float64
		prodOK, consOK, secsOK, consK bool
		newest                        int64
		live                          int
	)
	for i := range parts {
		p := &parts[i]
		su.Partitions[i] = p.Partition
		newest = max(newest, p.newest)
		if p.Lag >= 0 {
			lagKnown = true
			messages += p.Lag
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
		if !p.Stale {
			live++
		}
	}
	su.UpdatedAt = time.Unix(0, newest).UTC()
	if prodOK {
		su.ProduceRate = &prod
	}
	if consOK {
		su.ConsumeRate = &cons
	}
	if consK {
		su.Consumers = &consumers
	}
	if secsOK {
		su.Seconds = &secs
	}
	if lagKnown {
		su.Messages = &messages
	}
	switch d := cons - prod; {
	case !lagKnown:
	case messages == 0:
		su.DrainSeconds = ptr(0.0)
	case prodOK && consOK && d > 0 && d >= DrainShare*cons:
		su.DrainSeconds = ptr(messages / d)
	}
	su.Sources = sources(series, sm.cutoff)
	for _, sr := range series {
		for _, subj := range sr.subjects {
			if !slices.Contains(su.Subjects, subj) && len(su.Subjects) < maxSubjects {
				su.Subjects = append(su.Subjects, subj)
			}
		}
	}
	slices.Sort(su.Subjects)
	if live > 1 {
		su.Sum = sm.sum(parts, series)
	}
	return su
}

// sum returns the Trend of the group's summed lag: the sums of its live
// (not stale) partitions' readings taken at the same time (one broker
// poll), consumers left unknown (members are not partitions' to add up);
// nil when fewer than minSum such readings are held, or the newest is
// older than staleAfter.
func (sm *summariser) sum(parts []partFacts, series []*series) *Trend {
	live := make([][]point, 0, len(parts))
	for _, sr := range series {
		for i := range parts {
			if parts[i].key == sr.key && !parts[i].Stale {
				pts := sr.pts()
				live = append(live, pts[search(pts, sm.cutoff):])
				break
			}
		}
	}
	// Merge the live series by time, adding up each field in series order
	// (unknown when any reading of the time lacks it).
	longest := 0
	for _, pts := range live {
		longest = max(longest, len(pts))
	}
	sum := make([]point, 0, longest)
	for {
		t := int64(math.MaxInt64)
		for _, pts := range live {
			if len(pts) > 0 {
				t = min(t, pts[0].t)
			}
		}
		if t == math.MaxInt64 {
			break
		}
		acc, n := point{t: t}, 0
		for i, pts := range live {
			if len(pts) == 0 || pts[0].t != t {
				continue
			}
			x := &pts[0]
			live[i] = pts[1:]
			n++
			for f := range nFields {
				switch {
				case f == fConsumers:
					acc.v[f] = Unknown // members are not partitions' to add up
				case x.v[f] < 0 || n > 1 && acc.v[f] < 0:
					acc.v[f] = Unknown
				default:
					acc.v[f] += x.v[f]
				}
			}
		}
		if n == len(live) && acc.v[fLag] >= 0 {
			sum = append(sum, acc)
		}
	}
	w := sum[search(sum, sm.start):]
	if len(w) < sm.minSum {
		w = sum[max(0, len(sum)-sm.minSum):]
	}
	if len(w) < sm.minSum || sm.now-w[len(w)-1].t > sm.staleAfter {
		return nil
	}
	tr := trend(w, sum)
	return &tr
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
