// Package scenario generates the telemetry of a whole made-up system for load
// tests, benchmarks and the demo mode: OTLP traces of N services (grouped in
// namespaces) calling each other over HTTP and gRPC in chains with fan-out
// and fan-in, calling databases and external APIs, and publishing to Kafka,
// RabbitMQ and NATS destinations read by consumer groups, some of them batch
// consumers tied to their producers by span links; and the broker metrics
// (Kafka consumer-group lag, RabbitMQ queue depth) an OpenTelemetry Collector
// would send for those destinations. Every client span is answered by a
// server span and every producer by its consumers, with the semantic
// convention attributes instrumentation libraries set.
//
// Faults (retry storm, open circuit, consumer lag, bottleneck) can be
// switched on and off at run time; each provokes one finding of the matching
// kind on a fixed subject (Generator.Expect). A cascade (a failing database
// its service's callers retry) provokes two, and one incident.
//
// Output is deterministic for Options and the sequence of calls.
package scenario

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Limits of Options.Services.
const (
	MinServices     = 6
	MaxServices     = 100_000
	DefaultServices = 24
)

// Options configure a Generator.
type Options struct {
	// Services is the number of services (default DefaultServices, between
	// MinServices and MaxServices). The topology depends on it alone.
	Services int
	// Seed drives the random choices (latencies, branches, healthy errors).
	Seed uint64
	// Stream tells apart generators of one Seed that must not share trace
	// ids (one per load-generator worker, say): it is mixed into the random
	// choices and into the high 8 bytes of every trace id (TraceIDHigh).
	Stream uint64
	// Faults are switched on from the start.
	Faults []Fault
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Services < MinServices || o.Services > MaxServices {
		errs = append(errs, fmt.Errorf("services %d: must be in [%d, %d]", o.Services, MinServices, MaxServices))
	}
	for _, f := range o.Faults {
		if f == 0 || f >= numFaults {
			errs = append(errs, fmt.Errorf("unknown fault %d", f))
		}
		if f == FaultCascade && o.Services <= cascadeSvc {
			errs = append(errs, fmt.Errorf("fault %s needs at least %d services", f, cascadeSvc+1))
		}
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Services == 0 {
		o.Services = DefaultServices
	}
	return o
}

// Generator makes the traces and metrics of one scenario. It is safe for
// concurrent use: calls are serialised by a mutex (the demo generates from
// one goroutine and toggles faults from another). The pdata values it
// returns belong to the caller.
type Generator struct {
	topo *topology

	mu     sync.Mutex
	rnd    *rand.Rand
	high   uint64 // high 8 bytes of every trace id
	seq    uint64 // low 8 bytes: one per trace
	faults [numFaults]bool
	onset  [numFaults]time.Time // when the fault was first seen on (zero: not yet)
	epoch  time.Time            // first Metrics call: broker offsets count from it
	spans  []rec                // scratch: one trace's spans
	batch  [][]ref              // per destination group: messages waiting for a batch consumer
}

// New returns a Generator configured by o.
func New(o Options) (*Generator, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	o = o.withDefaults()
	g := &Generator{
		topo: newTopology(o.Services),
		rnd:  rand.New(rand.NewPCG(o.Seed, mix64(o.Stream)^0x9e3779b97f4a7c15)),
		high: mix64(o.Seed) ^ mix64(o.Stream+0x5bd1e995),
	}
	for _, f := range o.Faults {
		g.faults[f] = true
	}
	var groups int
	for _, d := range g.topo.dests {
		groups += len(d.groups)
	}
	g.batch = make([][]ref, groups)
	return g, nil
}

// Topology describes the generated system in one line.
func (g *Generator) Topology() string { return g.topo.String() }

// TraceIDHigh is the high 8 bytes (big-endian) of every trace id the
// generator makes, in spans and span links alike; the low 8 bytes count
// traces. A load generator that replays encoded requests may rewrite them.
func (g *Generator) TraceIDHigh() uint64 { return g.high }

// SetFault switches fault f on or off. A fault switched on again starts
// afresh (the lag of FaultConsumerLag grows from zero).
func (g *Generator) SetFault(f Fault, on bool) {
	if f == 0 || f >= numFaults {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if on && !g.faults[f] {
		g.onset[f] = time.Time{}
	}
	g.faults[f] = on
}

// Faults lists the faults switched on.
func (g *Generator) Faults() []Fault {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Fault
	for _, f := range AllFaults() {
		if g.faults[f] {
			out = append(out, f)
		}
	}
	return out
}

// The subjects of the faults.
const (
	retryCaller, retryCallee = 0, 1 // gateway -> its first child
	circuitCaller            = 1    // first child -> its first child
	circuitCallee            = 4
	bottleneckSvc            = 2
	lagDest, lagGroup        = 0, 0 // first destination (Kafka), its first group
	// The cascade: the gateway -> identity (gRPC) -> reviews (HTTP), whose
	// PostgreSQL database fails.
	cascadeCaller, cascadeSvc = 3, 10
	cascadeFailure            = 0.95
)

// Expect returns the finding fault f provokes: its kind and subject.
func (g *Generator) Expect(f Fault) Expectation {
	s := g.topo.svcs
	switch f {
	case FaultRetryStorm:
		return Expectation{Kind: "retry_storm", Source: s[retryCaller].name, Target: s[retryCallee].name}
	case FaultOpenCircuit:
		return Expectation{Kind: "open_circuit", Source: s[circuitCaller].name, Target: s[circuitCallee].name}
	case FaultConsumerLag:
		d := g.topo.dests[lagDest]
		return Expectation{Kind: "consumer_lag", Source: d.name, Target: s[d.groups[lagGroup].svc].name}
	case FaultBottleneck:
		return Expectation{Kind: "bottleneck", Node: s[bottleneckSvc].name}
	case FaultCascade:
		if len(s) <= cascadeSvc {
			return Expectation{}
		}
		return Expectation{Kind: "retry_storm", Source: s[cascadeCaller].name, Target: s[cascadeSvc].name,
			Also:  []Expectation{{Kind: "retry_storm", Source: s[0].name, Target: s[cascadeCaller].name}},
			Cause: g.topo.dbs[s[cascadeSvc].db].name, CauseKind: "database"}
	}
	return Expectation{}
}

// on reports whether fault f is on, noting its onset at now. Caller holds mu.
func (g *Generator) on(f Fault, now time.Time) bool {
	if !g.faults[f] {
		return false
	}
	if g.onset[f].IsZero() {
		g.onset[f] = now
	}
	return true
}

// ref is a span a batch consumer links to.
type ref struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
	end   int64
}

// role says what a span is and which attributes it carries.
type role uint8

const (
	roleServer   role = iota
	roleClient        // a call to service peer
	roleDB            // a call to database peer
	roleExternal      // a call to external peer
	roleProducer      // publish to destination peer
	roleConsumer      // process from destination peer, group grp
)

// rec is one span being built; times are relative to the trace start until
// Traces shifts them.
type rec struct {
	role       role
	svc        int32
	peer       int32
	grp        int32
	kind       ptrace.SpanKind
	trace      pcommon.TraceID
	id, parent pcommon.SpanID
	name       string
	start, end int64
	err        bool
	code       int64 // HTTP status or gRPC code
	resend     int64
	links      []ref
}

const ms = int64(time.Millisecond)

// Traces returns n traces ending by now, grouped by service as SDK
// exporters send them (one ResourceSpans per service). Messages published
// to batch consumers are consumed in batches of up to eight by consumer
// spans with span links, in the same call.
func (g *Generator) Traces(now time.Time, n int) ptrace.Traces {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := newEmitter(g.topo)
	nowN := now.UnixNano()
	for range n {
		g.spans = g.spans[:0]
		tr := g.traceID()
		g.request(tr, nowN)
		// Shift the trace so that its last span ends at now, minus a little
		// jitter: exporters send spans once they end.
		var last int64
		for i := range g.spans {
			last = max(last, g.spans[i].end)
		}
		shift := nowN - last - g.rnd.Int64N(50*ms)
		for i := range g.spans {
			r := &g.spans[i]
			r.start += shift
			r.end += shift
			if r.role == roleProducer {
				g.queueBatch(r)
			}
		}
		for i := range g.spans {
			e.emit(&g.spans[i])
		}
	}
	g.flushBatches(e, nowN)
	return e.td
}

func (g *Generator) traceID() pcommon.TraceID {
	g.seq++
	var t pcommon.TraceID
	binary.BigEndian.PutUint64(t[:8], g.high)
	binary.BigEndian.PutUint64(t[8:], g.seq)
	return t
}

// spanID hands out span ids unique within a run: the trace sequence number
// above the low 12 bits, the span's index in its trace below.
func (g *Generator) spanID() pcommon.SpanID {
	var s pcommon.SpanID
	binary.BigEndian.PutUint64(s[:], g.seq<<12|uint64(len(g.spans)+1))
	return s
}

func (g *Generator) jit(base int64) int64 { return base/2 + g.rnd.Int64N(base+1) }

func (g *Generator) add(r rec) *rec {
	r.id = g.spanID()
	g.spans = append(g.spans, r)
	return &g.spans[len(g.spans)-1]
}

// request makes one trace entering at the gateway: its root server span and
// the calls below it. The gateway route names the first-level service it
// goes to, so each route is its own entry operation.
func (g *Generator) request(tr pcommon.TraceID, nowN int64) {
	t := g.topo
	gw := &t.svcs[0]
	child := gw.children[g.rnd.IntN(len(gw.children))]
	root := g.add(rec{role: roleServer, svc: 0, kind: ptrace.SpanKindServer, trace: tr,
		name: "GET /" + t.svcs[child].name, code: 200})
	rootIdx := len(g.spans) - 1
	at := g.jit(ms)
	at, failed := g.call(tr, rootIdx, 0, child, at, nowN, 0)
	root = &g.spans[rootIdx]
	root.end = at + g.jit(ms/2)
	if failed && g.faults[FaultCascade] {
		root.err, root.code = true, 502
	}
}

// call adds the calls of service caller (whose server span is at index
// parent) to callee starting at at, and returns when the caller has its
// answer and whether it failed (in the end, after retries).
func (g *Generator) call(tr pcommon.TraceID, parent int, caller, callee int32, at, nowN int64, hop int) (int64, bool) {
	t := g.topo
	cs := &t.svcs[callee]
	if caller == circuitCaller && callee == circuitCallee && g.on(FaultOpenCircuit, time.Unix(0, nowN)) {
		// The breaker is open: fail in a fraction of a millisecond, no
		// server span.
		c := g.add(rec{role: roleClient, svc: caller, peer: callee, kind: ptrace.SpanKindClient, trace: tr,
			parent: g.spans[parent].id, start: at, err: true})
		c.end = at + 100_000 + g.rnd.Int64N(200_000)
		if cs.proto == protoGRPC {
			c.code = 14
		}
		return c.end, true
	}
	if tries := g.cascadeTries(caller, callee, nowN); tries > 0 {
		// The cascade's retry policies: try again while the callee fails.
		var failed bool
		for a := range tries {
			ci := len(g.spans)
			g.add(rec{role: roleClient, svc: caller, peer: callee, kind: ptrace.SpanKindClient, trace: tr,
				parent: g.spans[parent].id, start: at, resend: int64(a)})
			var end int64
			end, failed = g.serve(tr, ci, callee, at+g.jit(ms/2), nowN, hop)
			end += g.jit(ms / 2)
			c := &g.spans[ci]
			srv := &g.spans[ci+1]
			c.end, c.err, c.code = end, srv.err, srv.code
			at = end
			if !failed {
				break
			}
			if a < tries-1 {
				at += g.jit(5 * ms) // backoff
			}
		}
		return at, failed
	}
	attempts := 1
	if caller == retryCaller && callee == retryCallee && g.on(FaultRetryStorm, time.Unix(0, nowN)) {
		attempts = 3
	}
	failed := false
	for a := range attempts {
		fail := a < attempts-1
		ci := len(g.spans)
		g.add(rec{role: roleClient, svc: caller, peer: callee, kind: ptrace.SpanKindClient, trace: tr,
			parent: g.spans[parent].id, start: at, resend: int64(a)})
		var end int64
		if fail {
			si := len(g.spans)
			g.add(rec{role: roleServer, svc: callee, kind: ptrace.SpanKindServer, trace: tr,
				parent: g.spans[ci].id, start: at + g.jit(ms/2), err: true, code: 503})
			g.spans[si].end = g.spans[si].start + g.jit(2*ms)
			end = g.spans[si].end + g.jit(ms/2)
		} else {
			end, failed = g.serve(tr, ci, callee, at+g.jit(ms/2), nowN, hop)
			end += g.jit(ms / 2)
		}
		c := &g.spans[ci]
		c.end = end
		srv := &g.spans[ci+1]
		c.err, c.code = srv.err, srv.code
		at = end
		if fail {
			at += g.jit(5 * ms) // backoff
		}
	}
	return at, failed
}

// cascadeTries is how many times caller tries callee while the cascade
// is on (0: the cascade has no policy for that call): the gateway tries
// the cascade's caller twice, which tries the failing service three times.
func (g *Generator) cascadeTries(caller, callee int32, nowN int64) int {
	if !g.faults[FaultCascade] {
		return 0
	}
	switch {
	case caller == 0 && callee == cascadeCaller:
		return 2
	case caller == cascadeCaller && callee == cascadeSvc:
		g.on(FaultCascade, time.Unix(0, nowN))
		return 3
	}
	return 0
}

// serve adds the server span of service s answering client span at index
// client, and everything s does for it; it returns the server span's end
// and whether it failed.
func (g *Generator) serve(tr pcommon.TraceID, client int, s int32, at, nowN int64, hop int) (int64, bool) {
	t := g.topo
	sv := &t.svcs[s]
	si := len(g.spans)
	code := int64(200)
	if sv.proto == protoGRPC {
		code = 0
	}
	fail := g.rnd.IntN(1000) == 0 // healthy systems fail now and then
	if fail {
		code = 500
		if sv.proto == protoGRPC {
			code = 13
		}
	}
	g.add(rec{role: roleServer, svc: s, kind: ptrace.SpanKindServer, trace: tr, parent: g.spans[client].id,
		name: sv.route, start: at, err: fail, code: code})
	cur := at + g.jit(ms/2)
	if s == bottleneckSvc && g.on(FaultBottleneck, time.Unix(0, nowN)) {
		cur += 200*ms + g.rnd.Int64N(100*ms)
	}
	// cascade: s's failures fail its callers (while the cascade is on).
	cascade := g.faults[FaultCascade] && (s == cascadeSvc || s == cascadeCaller)
	if sv.db >= 0 {
		dbFail := s == cascadeSvc && cascade && g.rnd.Float64() < cascadeFailure
		cur = g.leaf(tr, si, s, roleDB, sv.db, cur, g.jit(2*ms), dbFail)
		fail = fail || dbFail
	}
	if sv.ext >= 0 && g.rnd.IntN(4) == 0 {
		cur = g.leaf(tr, si, s, roleExternal, sv.ext, cur, g.jit(30*ms), false)
	}
	if len(sv.children) > 0 && hop < 12 {
		// One child, or (one time in four) two: fan-out.
		k := g.rnd.IntN(len(sv.children))
		if s == circuitCaller && g.rnd.IntN(2) == 0 {
			// The open-circuit edge is called often, so its breaker opens
			// quickly and the finding has calls to judge.
			k = 0
		}
		var failed bool
		cur, failed = g.call(tr, si, s, sv.children[k], cur+g.jit(ms/5), nowN, hop+1)
		fail = fail || cascade && failed
		if len(sv.children) > 1 && g.rnd.IntN(4) == 0 {
			cur, failed = g.call(tr, si, s, sv.children[(k+1)%len(sv.children)], cur+g.jit(ms/5), nowN, hop+1)
			fail = fail || cascade && failed
		}
	}
	if sv.cross >= 0 && g.rnd.IntN(3) == 0 {
		cur, _ = g.call(tr, si, s, sv.cross, cur+g.jit(ms/5), nowN, 99) // the callee calls no further
	}
	if sv.produces >= 0 {
		cur = g.publish(tr, si, s, sv.produces, cur, nowN)
	}
	end := cur + g.jit(ms/2)
	srv := &g.spans[si]
	srv.end = end
	if fail && !srv.err {
		srv.err, srv.code = true, 500
		if sv.proto == protoGRPC {
			srv.code = 13
		}
	}
	return end, fail
}

// leaf adds a client span of service s to a database or external peer,
// failed when fail is set.
func (g *Generator) leaf(tr pcommon.TraceID, parent int, s int32, r role, peer int32, at, dur int64, fail bool) int64 {
	c := g.add(rec{role: r, svc: s, peer: peer, kind: ptrace.SpanKindClient, trace: tr, parent: g.spans[parent].id,
		start: at, end: at + dur, code: 200, err: fail})
	if fail {
		c.code = 500
	}
	return c.end
}

// publish adds a producer span of service s to destination d and, for each
// of its streaming consumer groups, a consumer span in the same trace.
// Batch groups get the message later (queueBatch).
func (g *Generator) publish(tr pcommon.TraceID, parent int, s, d int32, at, nowN int64) int64 {
	pi := len(g.spans)
	p := g.add(rec{role: roleProducer, svc: s, peer: d, kind: ptrace.SpanKindProducer, trace: tr,
		parent: g.spans[parent].id, start: at, end: at + g.jit(ms/2)})
	pend := p.end
	dest := &g.topo.dests[d]
	for gi, grp := range dest.groups {
		if grp.batch {
			continue
		}
		delay := g.jit(5 * ms)
		if d == lagDest && gi == lagGroup && g.on(FaultConsumerLag, time.Unix(0, nowN)) {
			// The group falls behind: each message waits longer.
			behind := time.Duration(nowN - g.onset[FaultConsumerLag].UnixNano())
			delay += int64(min(behind/2, 30*time.Second))
		}
		c := g.add(rec{role: roleConsumer, svc: grp.svc, peer: d, grp: int32(gi), kind: ptrace.SpanKindConsumer, trace: tr,
			parent: g.spans[pi].id, start: pend + delay})
		c.end = c.start + g.jit(3*ms)
	}
	return pend
}

// groupIndex is the index into g.batch of group gi of destination d.
func (g *Generator) groupIndex(d, gi int32) int {
	n := 0
	for i := range d {
		n += len(g.topo.dests[i].groups)
	}
	return n + int(gi)
}

// queueBatch hands producer span r to the batch consumers of its destination.
func (g *Generator) queueBatch(r *rec) {
	for gi, grp := range g.topo.dests[r.peer].groups {
		if grp.batch {
			k := g.groupIndex(r.peer, int32(gi))
			g.batch[k] = append(g.batch[k], ref{trace: r.trace, span: r.id, end: r.end})
		}
	}
}

// maxBatch is the most messages one batch consumer span takes.
const maxBatch = 8

// flushBatches emits a consumer span, in a trace of its own, for every
// batch of queued messages. Traces calls it at its end, so that links never
// reach into another call's output.
func (g *Generator) flushBatches(e *emitter, nowN int64) {
	k := 0
	for d := range g.topo.dests {
		dest := &g.topo.dests[d]
		for gi, grp := range dest.groups {
			q := g.batch[k]
			k++
			if !grp.batch {
				continue
			}
			for len(q) > 0 {
				n := min(len(q), maxBatch)
				var last int64
				for _, l := range q[:n] {
					last = max(last, l.end)
				}
				g.spans = g.spans[:0]
				tr := g.traceID()
				start := max(last, nowN-20*ms) + g.jit(2*ms)
				links := make([]ref, n)
				copy(links, q[:n])
				c := g.add(rec{role: roleConsumer, svc: grp.svc, peer: int32(d), grp: int32(gi), kind: ptrace.SpanKindConsumer,
					trace: tr, start: start, end: start + g.jit(int64(n)*ms), links: links})
				e.emit(c)
				q = q[n:]
			}
			g.batch[k-1] = g.batch[k-1][:0]
		}
	}
}

// mix64 is the SplitMix64 finaliser, a bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
