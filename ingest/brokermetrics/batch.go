package brokermetrics

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/ingest"
)

// maxPooledEntries bounds the readings a pooled batch keeps room for; a batch
// grown beyond it by an unusually large request is left to the collector.
const maxPooledEntries = 1 << 16

// batch is the per-request state: readings merged by key, in order of first
// appearance, and the point counts. Batches are pooled; one is used by one
// request at a time.
type batch struct {
	now time.Time
	res resourceInfo

	counts    [numFamilies][numOutcomes]int
	malformed int    // points rejected as malformed
	sinkRej   int    // points rejected with samples a sink refused
	reason    string // the first malformed point's reason
	sinkMsg   []string

	kafka      readings[kafkaKey, kafkaReading]
	kafkaSums  readings[kafkaKey, kafkaReading]
	kafkaMemb  sideTable
	kafkaEnds  sideTable
	rabbit     readings[rabbitKey, rabbitReading]
	js         readings[jsKey, jsReading]
	jsEnds     sideTable
	circuits   readings[breakerKey, circuitReading]
	retries    readings[breakerKey, retryReading]
	lagOut     []lag.Sample
	circuitOut []resilience.CircuitSample
	retryOut   []resilience.RetrySample
}

func newBatch() *batch {
	b := &batch{}
	b.kafka.init()
	b.kafkaSums.init()
	b.kafkaMemb.init()
	b.kafkaEnds.init()
	b.rabbit.init()
	b.js.init()
	b.jsEnds.init()
	b.circuits.init()
	b.retries.init()
	return b
}

// size is the number of entries b holds, for the pooling bound.
func (b *batch) size() int {
	return b.kafka.len() + b.kafkaSums.len() + b.kafkaMemb.len() + b.kafkaEnds.len() +
		b.rabbit.len() + b.js.len() + b.jsEnds.len() + b.circuits.len() + b.retries.len() +
		cap(b.lagOut) + cap(b.circuitOut) + cap(b.retryOut)
}

func (c *Consumer) putBatch(b *batch) {
	if b.size() > maxPooledEntries {
		return
	}
	b.now, b.res = time.Time{}, resourceInfo{}
	b.counts = [numFamilies][numOutcomes]int{}
	b.malformed, b.sinkRej, b.reason, b.sinkMsg = 0, 0, "", b.sinkMsg[:0]
	b.kafka.reset()
	b.kafkaSums.reset()
	b.kafkaMemb.reset()
	b.kafkaEnds.reset()
	b.rabbit.reset()
	b.js.reset()
	b.jsEnds.reset()
	b.circuits.reset()
	b.retries.reset()
	clear(b.lagOut)
	clear(b.circuitOut)
	clear(b.retryOut)
	b.lagOut, b.circuitOut, b.retryOut = b.lagOut[:0], b.circuitOut[:0], b.retryOut[:0]
	c.batches.Put(b)
}

func (b *batch) count(f family, o outcome, n int) { b.counts[f][o] += n }

// reject counts one malformed point of family f; the first reason is kept
// for the partial-success message.
func (b *batch) reject(f family, format string, args ...any) {
	b.counts[f][outcomeRejected]++
	b.malformed++
	if b.reason == "" {
		b.reason = fmt.Sprintf(format, args...)
	}
}

// settle accounts for points points of family f that went into m samples of
// which a sink refused rejected. A sink says how many samples it refused,
// not which, so the points are split in proportion, rounding the rejected
// share up: accepted + rejected stays equal to points.
func (b *batch) settle(f family, points, m, rejected int, sink string) {
	rejected = min(max(rejected, 0), m)
	rp := 0
	if rejected > 0 && m > 0 {
		rp = min((points*rejected+m-1)/m, points)
		b.sinkRej += rp
		b.sinkMsg = append(b.sinkMsg, fmt.Sprintf("%s sink refused %d of %d %s samples", sink, rejected, m, f))
	}
	b.counts[f][outcomeRejected] += rp
	b.counts[f][outcomeAccepted] += points - rp
}

// err returns the request's result: nil, or an *ingest.PartialError.
func (b *batch) err() error {
	n := b.malformed + b.sinkRej
	if n == 0 {
		return nil
	}
	var parts []string
	if b.malformed > 0 {
		parts = append(parts, fmt.Sprintf("%d malformed data points (first: %s)", b.malformed, b.reason))
	}
	parts = append(parts, b.sinkMsg...)
	return &ingest.PartialError{Rejected: int64(n), Reason: strings.Join(parts, "; ")}
}

// resourceInfo resolves, once per resource and only when asked, the resource
// attributes the families need.
type resourceInfo struct {
	attrs pcommon.Map

	svcDone, instDone bool
	svc, inst         string
}

// service returns the resource's service.name, or "".
func (r *resourceInfo) service() string {
	if !r.svcDone {
		r.svc, r.svcDone = str(r.attrs, "service.name"), true
	}
	return r.svc
}

// instance returns the resource's service.instance.id, or "".
func (r *resourceInfo) instance() string {
	if !r.instDone {
		r.inst, r.instDone = str(r.attrs, "service.instance.id"), true
	}
	return r.inst
}

// str returns the attribute k of m as a string; "" when absent.
func str(m pcommon.Map, k string) string {
	v, ok := m.Get(k)
	if !ok {
		return ""
	}
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString()
}

// partition returns the attribute "partition" of m: an int (kafkametrics) or
// a decimal string (Prometheus labels) in int32 range.
func partition(m pcommon.Map) (int32, bool) {
	v, ok := m.Get("partition")
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		i := v.Int()
		if i < 0 || i > 1<<31-1 {
			return 0, false
		}
		return int32(i), true
	case pcommon.ValueTypeStr:
		i, err := strconv.ParseInt(v.Str(), 10, 32)
		if err != nil || i < 0 {
			return 0, false
		}
		return int32(i), true
	}
	return 0, false
}

// readings holds values merged by key K, in order of first appearance.
type readings[K comparable, V any] struct {
	idx  map[K]int32
	keys []K
	vals []V
}

func (r *readings[K, V]) init() { r.idx = make(map[K]int32) }

func (r *readings[K, V]) len() int { return len(r.vals) }

// get returns the reading for k, adding zero (then initialised by the
// caller, which sees fresh == true) when there is none.
func (r *readings[K, V]) get(k K) (v *V, fresh bool) {
	if i, ok := r.idx[k]; ok {
		return &r.vals[i], false
	}
	r.idx[k] = int32(len(r.vals))
	r.keys = append(r.keys, k)
	var zero V
	r.vals = append(r.vals, zero)
	return &r.vals[len(r.vals)-1], true
}

func (r *readings[K, V]) reset() {
	clear(r.idx)
	clear(r.keys)
	clear(r.vals)
	r.keys, r.vals = r.keys[:0], r.vals[:0]
}

// sideKey names what a side value applies to: a Kafka group (members), a
// topic partition (end offset) or a JetStream stream (last sequence).
type sideKey struct {
	name string
	part int32
}

type sideTSKey struct {
	sideKey
	ts pcommon.Timestamp
}

type sideValue struct {
	v      float64
	ts     pcommon.Timestamp
	points int
	used   bool
}

// sideTable holds values that apply to every sample of some key in the
// request (a group's member count, a partition's end offset): the value of
// the sample's own timestamp when there is one, else the newest.
type sideTable struct {
	exact  map[sideTSKey]int32
	latest map[sideKey]int32
	vals   []sideValue
}

func (t *sideTable) init() {
	t.exact = make(map[sideTSKey]int32)
	t.latest = make(map[sideKey]int32)
}

func (t *sideTable) len() int { return len(t.vals) }

func (t *sideTable) reset() {
	clear(t.exact)
	clear(t.latest)
	t.vals = t.vals[:0]
}

func (t *sideTable) put(k sideKey, ts pcommon.Timestamp, v float64) {
	tk := sideTSKey{k, ts}
	if i, ok := t.exact[tk]; ok {
		t.vals[i].v = v
		t.vals[i].points++
		return
	}
	i := int32(len(t.vals))
	t.vals = append(t.vals, sideValue{v: v, ts: ts, points: 1})
	t.exact[tk] = i
	if j, ok := t.latest[k]; !ok || t.vals[j].ts < ts {
		t.latest[k] = i
	}
}

// get returns the value for k at ts (or the newest for k), marking it used;
// lag.Unknown when there is none.
func (t *sideTable) get(k sideKey, ts pcommon.Timestamp) float64 {
	if len(t.vals) == 0 {
		return lag.Unknown
	}
	i, ok := t.exact[sideTSKey{k, ts}]
	if !ok {
		if i, ok = t.latest[k]; !ok {
			return lag.Unknown
		}
	}
	t.vals[i].used = true
	return t.vals[i].v
}

// settle returns the points of the values that went into a sample, and
// counts the others as ignored under f: they applied to no sample of the
// request (an end offset of a partition no group reads, say).
func (t *sideTable) settle(b *batch, f family) (used int) {
	for _, v := range t.vals {
		if v.used {
			used += v.points
		} else {
			b.count(f, outcomeIgnored, v.points)
		}
	}
	return used
}
