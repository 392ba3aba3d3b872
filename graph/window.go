package graph

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// LatencyRelativeAccuracy is the relative error bound of every latency
// quantile cartograph reports: a reported p95 is within 1% of a true value of
// the sample at that rank. Latencies are kept in DDSketches, which merge
// exactly across time buckets and across collectors.
const LatencyRelativeAccuracy = 0.01

// newLatencyMapping returns the index mapping all latency sketches share;
// sketches must share a mapping to merge.
func newLatencyMapping() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(LatencyRelativeAccuracy)
	if err != nil {
		panic(err) // constant accuracy: cannot fail
	}
	return m
}

// Stats are an edge's aggregates over some time span, in mergeable form:
// counts add up, sketches merge. Latency sketches hold milliseconds.
// A Stats value is owned by one goroutine at a time.
type Stats struct {
	Requests uint64
	Errors   uint64
	Retries  uint64
	// Unanswered counts calls to an instrumented service that no server
	// span answered (refused, timed out, failed fast); they are included
	// in Requests.
	Unanswered uint64
	// Seen is the calls actually seen (spans that arrived) and Sampled
	// those of them whose traces were sampled: Requests, Errors, Retries
	// and Unanswered count each sampled call as the calls it stands for,
	// so they are estimates when Sampled > 0. Seen 0 with Requests above
	// it means not recorded (history written before they were).
	Seen, Sampled uint64
	// Refused counts the unanswered calls whose error says the caller tried
	// and could not connect (connection refused or reset, host or network
	// unreachable, gRPC UNAVAILABLE with no server span); Rejected those
	// whose error says the caller's own breaker or bulkhead turned them
	// away without trying (resilience4j CallNotPermittedException, Polly
	// BrokenCircuitException, gobreaker ErrOpenState, Envoy overflow).
	// Both are included in Unanswered; calls whose error says neither, or
	// names none, are in neither. Live only: storage buckets do not keep
	// them.
	Refused, Rejected uint64

	// Server is the callee-side latency (SERVER or CONSUMER span), Client the
	// caller-side latency (CLIENT or PRODUCER span), Delay the
	// producer-end to consumer-start delay of async hops. nil when empty.
	Server, Client, Delay *ddsketch.DDSketch
	// UnansweredLatency is the caller-side latency of unanswered calls.
	UnansweredLatency *ddsketch.DDSketch
}

// call counts one call seen that stands for n calls (n > 1: sampled),
// failed or retried as said.
func (s *Stats) call(n uint32, failed, retry bool) {
	s.Requests += uint64(n)
	s.Seen++
	if n > 1 {
		s.Sampled++
	}
	if failed {
		s.Errors += uint64(n)
	}
	if retry {
		s.Retries += uint64(n)
	}
}

// Merge adds o into s, allocating sketches with m as needed.
func (s *Stats) Merge(o *Stats, m mapping.IndexMapping) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Retries += o.Retries
	s.Unanswered += o.Unanswered
	s.Seen += o.Seen
	s.Sampled += o.Sampled
	s.Refused += o.Refused
	s.Rejected += o.Rejected
	s.UnansweredLatency = mergeSketch(s.UnansweredLatency, o.UnansweredLatency, m)
	s.Server = mergeSketch(s.Server, o.Server, m)
	s.Client = mergeSketch(s.Client, o.Client, m)
	s.Delay = mergeSketch(s.Delay, o.Delay, m)
}

func mergeSketch(dst, src *ddsketch.DDSketch, m mapping.IndexMapping) *ddsketch.DDSketch {
	if src == nil || src.IsEmpty() {
		return dst
	}
	if dst == nil {
		dst = ddsketch.NewDDSketchFromStoreProvider(m, store.BufferedPaginatedStoreConstructor)
	}
	_ = dst.MergeWith(src) // same mapping by construction: cannot fail
	return dst
}

func (s *Stats) reset() {
	s.Requests, s.Errors, s.Retries, s.Unanswered, s.Seen, s.Sampled = 0, 0, 0, 0, 0, 0
	s.Refused, s.Rejected = 0, 0
	for _, sk := range []*ddsketch.DDSketch{s.Server, s.Client, s.Delay, s.UnansweredLatency} {
		if sk != nil {
			sk.Clear()
		}
	}
}

// addLatency records d nanoseconds into *sk as milliseconds; negative
// durations (clock skew, bad timestamps) are not recorded and return false.
func addLatency(sk **ddsketch.DDSketch, ix *latencyIndex, nanos int64) bool {
	if nanos < 0 {
		return false
	}
	if *sk == nil {
		*sk = ix.newSketch()
	}
	ix.add(*sk, nanos)
	return true
}

// Quantiles are latency quantiles in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// quantilesOf returns the p50/p95/p99 of sk, or nil when sk is empty.
func quantilesOf(sk *ddsketch.DDSketch) *Quantiles {
	if sk == nil || sk.IsEmpty() {
		return nil
	}
	v, err := sk.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99})
	if err != nil {
		return nil
	}
	return &Quantiles{P50: round3(v[0]), P95: round3(v[1]), P99: round3(v[2])}
}

// round3 rounds to microsecond precision so JSON stays readable.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// roundSig4 rounds v to four significant digits.
func roundSig4(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// ring keeps an edge's Stats in time buckets: slot epoch%len holds the bucket
// whose start is epoch*width. Slots are reused, their sketches cleared.
type ring struct {
	epochs []int64
	stats  []Stats
}

func newRing(n int) ring {
	r := ring{epochs: make([]int64, n), stats: make([]Stats, n)}
	for i := range r.epochs {
		r.epochs[i] = math.MinInt64
	}
	return r
}

// at returns the bucket for epoch, resetting a slot that held an older one.
func (r *ring) at(epoch int64) *Stats {
	i := int(uint64(epoch) % uint64(len(r.epochs)))
	if r.epochs[i] != epoch {
		r.epochs[i] = epoch
		r.stats[i].reset()
	}
	return &r.stats[i]
}

// sum merges the buckets with epochs in [from, to] into dst.
func (r *ring) sum(dst *Stats, from, to int64, m mapping.IndexMapping) (any bool) {
	for i, e := range r.epochs {
		if e >= from && e <= to {
			s := &r.stats[i]
			if s.Requests == 0 && (s.Delay == nil || s.Delay.IsEmpty()) {
				continue
			}
			dst.Merge(s, m)
			any = true
		}
	}
	return any
}

// lastEpoch returns the newest epoch the ring holds.
func (r *ring) lastEpoch() int64 {
	last := int64(math.MinInt64)
	for _, e := range r.epochs {
		if e > last {
			last = e
		}
	}
	return last
}

// recent sums the calls of the buckets with epochs in [from, to] into a
// Recent, or returns nil when they hold none. Only the unanswered calls'
// latencies are merged (into a sketch of mapping m), so it costs little
// on the edges that have none.
func (r *ring) recent(from, to int64, m mapping.IndexMapping) *Recent {
	var (
		rc Recent
		sk *ddsketch.DDSketch
	)
	for i, e := range r.epochs {
		if e < from || e > to {
			continue
		}
		s := &r.stats[i]
		rc.Requests += s.Requests
		rc.Errors += s.Errors
		rc.Retries += s.Retries
		rc.Unanswered += s.Unanswered
		rc.Refused += s.Refused
		rc.Rejected += s.Rejected
		sk = mergeSketch(sk, s.UnansweredLatency, m)
	}
	if rc.Requests == 0 {
		return nil
	}
	rc.UnansweredLatency = quantilesOf(sk)
	return &rc
}
