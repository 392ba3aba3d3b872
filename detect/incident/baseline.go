package incident

import (
	"time"
)

// metric is one figure a baseline learns.
type metric uint8

// Figures learnt per node and per edge. Node figures: the mean latency of
// the calls into it, their error ratio, its critical-path self time, the
// rate it produces to and consumes from messaging destinations. Edge
// figures: mean latency as the caller waits, error ratio, p95 latency,
// calls per request of the caller.
const (
	mInMean metric = iota
	mInErr
	mSelf
	mProduce
	mConsume
	nMetrics

	mEdgeMean = mInMean
	mEdgeErr  = mInErr
	mEdgeP95  = mSelf
	// mEdgeK is how many calls of the edge its source makes per request
	// it serves (retries make it grow).
	mEdgeK = mProduce
)

// ewma is an exponentially weighted mean that starts as the plain mean of
// its first samples (so a short history is not dominated by the first
// one).
type ewma struct {
	v float64
	n uint32
}

// learn folds x in with weight alpha, or 1/(n+1) while that is larger,
// scaled by slow (1: as usual; less: an anomalous sample teaches less,
// warm-up included).
func (e *ewma) learn(x, alpha, slow float64) {
	if e.n < 1<<31 {
		e.n++
	}
	a := max(alpha, 1/float64(e.n)) * slow
	if e.n == 1 {
		a = 1
	}
	e.v += a * (x - e.v)
}

// baseline is what is learnt of one node or edge: the usual value of each
// figure, and when its anomaly began (nodes).
type baseline struct {
	m [nMetrics]ewma
	// since is when the node's anomaly last rose past the onset
	// threshold and has stayed there; zero when it is not anomalous.
	since time.Time
	seen  time.Time // last evaluation it was in the graph
}

// usual returns the learnt value of m, and whether enough samples taught
// it to judge against.
func (b *baseline) usual(m metric, minSamples uint32) (float64, bool) {
	e := b.m[m]
	return e.v, e.n >= minSamples
}

// baselines holds the baselines of nodes and edges, at most max of them.
// It is used by the Tracker's goroutine alone.
type baselines struct {
	max     int
	m       map[string]*baseline
	dropped uint64 // keys refused at the bound
}

func newBaselines(max int) *baselines {
	return &baselines{max: max, m: map[string]*baseline{}}
}

// get returns the baseline of key, creating it when there is room; nil
// (and counted) when the bound is reached.
func (bs *baselines) get(key string, now time.Time) *baseline {
	b := bs.m[key]
	if b == nil {
		if len(bs.m) >= bs.max {
			bs.dropped++
			return nil
		}
		b = &baseline{}
		bs.m[key] = b
	}
	b.seen = now
	return b
}

// peek returns the baseline of key without creating it.
func (bs *baselines) peek(key string) *baseline { return bs.m[key] }

// expire forgets the baselines not seen since before.
func (bs *baselines) expire(before time.Time) {
	for k, b := range bs.m {
		if b.seen.Before(before) {
			delete(bs.m, k)
		}
	}
}

func nodeKey(id string) string  { return "n|" + id }
func edgeKey(id string) string  { return "e|" + id }
func entryKey(id string) string { return "x|" + id }
