package brokermetrics

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// unknownCount marks a retry counter that was not reported (RetrySample.Calls
// is -1 when unknown).
const unknownCount = -1.0

// breakerKey identifies one breaker or retry reading of one instance (see
// breakerInstance); the samples carry the instance on, so that the store
// keeps each instance's counters and state apart.
type breakerKey struct {
	service, name, instance string
	ts                      pcommon.Timestamp
}

type circuitReading struct {
	state     resilience.CircuitState // resilience4j: the state whose gauge is 1
	envoy     bool                    // an Envoy rq_open gauge was seen
	envoyOpen bool                    // and one of them was 1
	points    int
}

// openness orders states when a breaker reports more than one as current:
// the most refusing wins.
var openness = [...]int{
	resilience.CircuitClosed:     1,
	resilience.CircuitDisabled:   2,
	resilience.CircuitHalfOpen:   3,
	resilience.CircuitOpen:       4,
	resilience.CircuitForcedOpen: 5,
}

// retryReading holds Envoy's retry and request counters or resilience4j's
// four call counters (successful/failed, with/without retry).
type retryReading struct {
	retries, calls float64 // Envoy
	r4j            [4]float64
	r4jSeen        [4]bool
	points         int
}

// resilience4j retry call kinds, the index into retryReading.r4j.
var r4jKinds = map[string]int{
	"successful_with_retry":    0,
	"failed_with_retry":        1,
	"successful_without_retry": 2,
	"failed_without_retry":     3,
}

// breakerService returns the service owning a breaker: the resource's
// service.name, else an "application" (Micrometer's common tag) or "job"
// attribute of the point or the resource.
func breakerService(b *batch, attrs pcommon.Map) string {
	if s := b.res.service(); s != "" {
		return s
	}
	for _, k := range [...]string{"application", "job"} {
		if s := str(attrs, k); s != "" {
			return s
		}
		if s := str(b.res.attrs, k); s != "" {
			return s
		}
	}
	return ""
}

// instanceAttrs are the resource attributes that name the instance a
// breaker or retry reading comes from, best first: the OpenTelemetry
// service.instance.id (which the Collector's prometheus receiver also sets
// from the scrape target), then what tells replicas apart when it is
// missing.
var instanceAttrs = [...]string{"service.instance.id", "k8s.pod.uid", "k8s.pod.name", "container.id", "host.name"}

// breakerInstance returns the instance a reading of the current resource
// comes from: the first of instanceAttrs the resource has, else a Prometheus
// "instance" or "pod" label of the point, else "" (all such readings of a
// service are one instance: nothing tells them apart).
func breakerInstance(b *batch, attrs pcommon.Map) string {
	if id := b.res.instance(); id != "" {
		return id
	}
	for _, k := range instanceAttrs[1:] {
		if v := str(b.res.attrs, k); v != "" {
			return k + "=" + v
		}
	}
	for _, k := range [...]string{"instance", "pod"} {
		if v := str(attrs, k); v != "" {
			return k + "=" + v
		}
	}
	return ""
}

// breakerIdent returns the service and breaker name of a circuit or retry
// point; it rejects the point and returns false when either is missing.
func breakerIdent(b *batch, f family, sp spec, pt point) (svc, name string, ok bool) {
	attr := "name"
	if sp.kind == kindEnvoyRqOpen || sp.kind == kindEnvoyRetry || sp.kind == kindEnvoyRqTotal {
		attr = "envoy_cluster_name"
	}
	if name = str(pt.attrs, attr); name == "" {
		b.reject(f, "%s: no %q attribute", pt.name, attr)
		return "", "", false
	}
	if svc = breakerService(b, pt.attrs); svc == "" {
		b.reject(f, "%s: no service.name resource attribute (nor application or job)", pt.name)
		return "", "", false
	}
	return svc, name, true
}

// circuitPoint reads a resilience4j state gauge (one point per state, 1 for
// the current one) or an Envoy rq_open gauge (1 open, 0 closed).
func (c *Consumer) circuitPoint(b *batch, sp spec, pt point) {
	svc, name, ok := breakerIdent(b, famCircuit, sp, pt)
	if !ok {
		return
	}
	var st resilience.CircuitState
	sk := seriesKey{a: svc, b: name, part: -1}
	if sp.kind == kindR4jState {
		s := str(pt.attrs, "state")
		if err := st.UnmarshalText([]byte(s)); err != nil {
			b.reject(famCircuit, "%s: %v", pt.name, err)
			return
		}
		sk.c = s
	}
	v, ok := c.cumulative(b, famCircuit, pt, sk)
	if !ok {
		return
	}
	if v = level(v); v < 0 {
		b.reject(famCircuit, "%s: value is not 0 or 1", pt.name)
		return
	}
	r, _ := b.circuits.get(breakerKey{service: svc, name: name, instance: breakerInstance(b, pt.attrs), ts: pt.ts})
	r.points++
	if sp.kind == kindEnvoyRqOpen {
		r.envoy = true
		r.envoyOpen = r.envoyOpen || v > 0
		return
	}
	if v > 0 && openness[st] > openness[r.state] {
		r.state = st
	}
}

// flushCircuits hands the request's breaker states to the resilience sink.
// A resilience4j breaker none of whose state gauges is 1 tells nothing; its
// points are ignored.
func (c *Consumer) flushCircuits(b *batch) {
	if b.circuits.len() == 0 {
		return
	}
	out := b.circuitOut[:0]
	points := 0
	for i, k := range b.circuits.keys {
		r := &b.circuits.vals[i]
		st := r.state
		if st == 0 && r.envoy {
			st = resilience.CircuitClosed
			if r.envoyOpen {
				st = resilience.CircuitOpen
			}
		}
		if st == 0 {
			b.count(famCircuit, outcomeIgnored, r.points)
			continue
		}
		out = append(out, resilience.CircuitSample{
			Time:       timeOf(k.ts, b.now),
			BreakerKey: resilience.BreakerKey{Service: k.service, Name: k.name},
			Instance:   k.instance,
			State:      st,
			Source:     Source,
		})
		points += r.points
	}
	b.circuitOut = out
	if len(out) > 0 {
		b.settle(famCircuit, points, len(out), c.res.AddCircuits(out), "resilience")
	}
}

// retryPoint reads Envoy's upstream_rq_retry and upstream_rq_total counters
// or resilience4j's retry.calls{kind} counters.
func (c *Consumer) retryPoint(b *batch, sp spec, pt point) {
	svc, name, ok := breakerIdent(b, famRetry, sp, pt)
	if !ok {
		return
	}
	kind := -1
	sk := seriesKey{a: svc, b: name, part: -1}
	if sp.kind == kindR4jRetry {
		s := str(pt.attrs, "kind")
		if kind, ok = r4jKinds[s]; !ok {
			b.reject(famRetry, "%s: unknown kind %q", pt.name, s)
			return
		}
		sk.c = s
	}
	v, ok := c.cumulative(b, famRetry, pt, sk)
	if !ok {
		return
	}
	if v = level(v); v < 0 {
		b.reject(famRetry, "%s: negative or non-finite counter", pt.name)
		return
	}
	r, fresh := b.retries.get(breakerKey{service: svc, name: name, instance: breakerInstance(b, pt.attrs), ts: pt.ts})
	if fresh {
		r.retries, r.calls = unknownCount, unknownCount
	}
	r.points++
	switch sp.kind {
	case kindEnvoyRetry:
		r.retries = v
	case kindEnvoyRqTotal:
		r.calls = v
	case kindR4jRetry:
		r.r4j[kind], r.r4jSeen[kind] = v, true
	}
}

// flushRetries hands the request's retry counters to the resilience sink.
//
// Both give Retries out of Calls attempts, retries included, as
// resilience.RetrySample asks. Envoy: Retries is upstream_rq_retry (retry
// attempts), Calls is upstream_rq_total, which counts every attempt (-1
// without it). resilience4j counts calls, not attempts: a call that needed a
// retry made at least one, so Retries is the calls that needed a retry
// (successful and failed with retry) and Calls all four kinds plus those
// retries (-1 unless all four are reported), both lower bounds of the
// attempts. A reading without a retry count (upstream_rq_total alone) is
// ignored.
func (c *Consumer) flushRetries(b *batch) {
	if b.retries.len() == 0 {
		return
	}
	out := b.retryOut[:0]
	points := 0
	for i, k := range b.retries.keys {
		r := &b.retries.vals[i]
		retries, calls := r.retries, r.calls
		if r.r4jSeen[0] || r.r4jSeen[1] {
			retries = r.r4j[0] + r.r4j[1]
			calls = retries + r.r4j[0] + r.r4j[1] + r.r4j[2] + r.r4j[3]
			if r.r4jSeen != [4]bool{true, true, true, true} {
				calls = unknownCount
			}
		}
		if retries < 0 {
			b.count(famRetry, outcomeIgnored, r.points)
			continue
		}
		out = append(out, resilience.RetrySample{
			Time:       timeOf(k.ts, b.now),
			BreakerKey: resilience.BreakerKey{Service: k.service, Name: k.name},
			Instance:   k.instance,
			Retries:    retries,
			Calls:      calls,
			Source:     Source,
		})
		points += r.points
	}
	b.retryOut = out
	if len(out) > 0 {
		b.settle(famRetry, points, len(out), c.res.AddRetries(out), "resilience")
	}
}
