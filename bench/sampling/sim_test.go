package sampling_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// The system simulated (service.name, replicas):
//
//	client -> gateway(2) -HTTP-> a(3) -HTTP-> b(3) -SQL-> postgres
//	                              a -gRPC-> c(2)                  (fan-out: every request)
//	                              a -kafka-> orders -> worker(2)  (one request in two)
//
// a re-sends a failed call to b up to simMaxRetries times
// (http.request.resend_count). Background errors: b answers 500 to
// bgErrB of its calls, c fails bgErrC, the database bgErrDB.
const (
	bgErrB          = 0.0075
	bgErrC          = 0.005
	bgErrDB         = 0.002
	simMaxRetries   = 3
	exportEvery     = 5 * time.Second // the SDK batch processor's default delay
	simStep         = 100 * time.Millisecond
	defaultRate     = 30 // requests/s entering the gateway
	stormFailRatio  = 0.9
	bgRetryMaxTries = 1 // on a background error a re-sends once
)

// True edges of the system, by graph edge id.
const (
	edgeClientGW = "client:client->service:gateway http"
	edgeGWA      = "service:gateway->service:a http"
	edgeAB       = "service:a->service:b http"
	edgeAC       = "service:a->service:c grpc"
	edgeBDB      = "service:b->database:postgresql/orders db"
	edgeAOrders  = "service:a->topic:kafka/orders kafka"
	edgeOrdersW  = "topic:kafka/orders->service:worker kafka @worker"
)

// role is what a simulated span does.
type role uint8

const (
	roleHTTPServer role = iota
	roleHTTPClient
	roleGRPCServer
	roleGRPCClient
	roleDB
	roleProducer
	roleConsumer
)

// rec is one simulated span, as its service's SDK would export it.
type rec struct {
	trace        pcommon.TraceID
	id, parent   pcommon.SpanID
	role         role
	name         string
	peer         string // server.address of a client span
	start, end   int64
	err          bool
	status       int64
	resend       int64
	breaker      bool   // failed fast by an open circuit breaker
	traceState   string // W3C tracestate (ot=th:...)
	jaegerParam  float64
	replica      *replica
	sampledOutOf bool // not exported (its service's sampler dropped it)
}

// replica is one process: it buffers its spans and exports them every
// exportEvery at its own phase, as the SDK batch processor does.
type replica struct {
	service, instance string
	next              time.Time
	buf               []rec
}

// sampler decides which spans are kept and what they carry.
type sampler struct {
	name string
	// kind: "all", "consistent" (parent-based, the root's threshold on
	// every span), "independent" (each service visit tosses its own
	// coin), "per-service" (each service keeps by its own ratio against
	// the trace id's randomness, not parent-based), "jaeger" (Jaeger's
	// probabilistic sampler: the decision propagates, the tags are on the
	// root span only).
	kind  string
	p     float64
	perSv map[string]float64
}

// ratio returns the sampling probability of service svc.
func (s sampler) ratio(svc string) float64 {
	if s.kind == "per-service" {
		return s.perSv[svc]
	}
	return s.p
}

// threshold returns the OTEP 235 rejection threshold of probability p as
// tracestate writes it: (1-p)*2^56 as 14 hex digits, trailing zeros
// dropped ("0" for 100%), and its value.
func threshold(p float64) (string, uint64) {
	const max56 = 1 << 56
	// 2^56 - p*2^56 rather than (1-p)*2^56: p*2^56 < 2^53 is exact to
	// the unit in a float64, (1-p)*2^56 is not.
	th := max56 - uint64(math.Round(p*max56))
	h := fmt.Sprintf("%014x", th)
	for len(h) > 1 && h[len(h)-1] == '0' {
		h = h[:len(h)-1]
	}
	return h, th
}

// randomness is the trace id's 56 random bits (its low 7 bytes).
func randomness(tr pcommon.TraceID) uint64 {
	return binary.BigEndian.Uint64(tr[8:]) & (1<<56 - 1)
}

// keptByThreshold reports whether a consistent probability sampler of
// probability p keeps trace tr, and the tracestate it writes.
func keptByThreshold(tr pcommon.TraceID, p float64) (bool, string) {
	if p >= 1 {
		return true, "ot=th:0"
	}
	h, th := threshold(p)
	return randomness(tr) >= th, "ot=th:" + h
}

// fault is what goes wrong in a faulty run, from its onset.
type fault uint8

const (
	faultNone        fault = iota
	faultOpenCircuit       // a's breaker to b is open: a's calls fail fast, b sees none
	faultRetryStorm        // b fails stormFailRatio of its calls and a re-sends each up to simMaxRetries times
)

func (f fault) String() string {
	return [...]string{"none", "open circuit a->b", "retry storm a->b"}[f]
}

// truth counts the real calls of one edge.
type truth struct{ req, errs, retries uint64 }

// sim runs the system on an injected clock through the real pipeline:
// OTLP ptrace.Traces -> semconv.Pipeline -> graph.Graph -> Snapshot ->
// detect.Engine with the four detectors at default settings.
type sim struct {
	t        testing.TB
	rng      *rand.Rand
	t0, now  time.Time
	rate     float64
	smp      sampler
	reg      *prometheus.Registry
	g        *graph.Graph
	pipe     *semconv.Pipeline
	engine   *detect.Engine
	replicas map[string][]*replica

	fault      fault
	faultFrom  time.Time
	trafficEnd time.Time // no request enters from then on (zero: never)

	// truth per edge id over the run, and per edge id and minute of the
	// run (by the call's start).
	truth       map[string]*truth
	truthMinute map[string]map[int]*truth
	// est is the graph's closed buckets summed per edge id over the run;
	// estMinute per minute of the bucket's start.
	est       map[string]*graph.EdgeBucket
	estMinute map[string]map[int]*graph.EdgeBucket
	after     time.Time
	// firing is every finding that fired, by id, with when it first did.
	firing      map[string]firedFinding
	pendingSeen map[string]finding.Finding
	maxPending  float64
	lastSnap    *graph.Snapshot
	spans, kept int
}

type firedFinding struct {
	f  finding.Finding
	at time.Time
}

func newSim(t testing.TB, smp sampler, rate float64, seed uint64) *sim {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 14)), t0: t0, now: t0, rate: rate, smp: smp,
		reg: prometheus.NewRegistry(), replicas: map[string][]*replica{},
		truth: map[string]*truth{}, truthMinute: map[string]map[int]*truth{},
		est: map[string]*graph.EdgeBucket{}, estMinute: map[string]map[int]*graph.EdgeBucket{},
		firing: map[string]firedFinding{}, pendingSeen: map[string]finding.Finding{}}
	clock := func() time.Time { return s.now }
	// As cmd/collector wires them at default settings: the critical paths
	// of one complete trace in 10 feed the bottleneck detector.
	paths, err := critpath.New(critpath.Options{SampleOneIn: 10, TraceIdle: 5 * time.Second, MaxTraces: 10_000, Now: clock, Registerer: s.reg})
	require.NoError(t, err)
	g, err := graph.New(graph.Options{Paths: paths, Now: clock, Registerer: s.reg})
	require.NoError(t, err)
	pipe, err := semconv.NewPipeline(semconv.Options{Sink: g, Registerer: s.reg})
	require.NoError(t, err)
	e, err := detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{
			detect.NewRetryStorm(detect.RetryStormOptions{}),
			detect.NewConsumerLag(detect.ConsumerLagOptions{}),
			detect.NewOpenCircuit(detect.OpenCircuitOptions{}),
			detect.NewBottleneck(detect.BottleneckOptions{}),
		},
		Now: clock,
	})
	require.NoError(t, err)
	s.g, s.pipe, s.engine = g, pipe, e
	for _, r := range []struct {
		svc string
		n   int
	}{{"gateway", 2}, {"a", 3}, {"b", 3}, {"c", 2}, {"worker", 2}} {
		for i := range r.n {
			ph := time.Duration(s.rng.Int64N(int64(exportEvery)))
			s.replicas[r.svc] = append(s.replicas[r.svc], &replica{service: r.svc, instance: r.svc + "-" + strconv.Itoa(i), next: t0.Add(ph)})
		}
	}
	return s
}

func (s *sim) traceID() pcommon.TraceID {
	var tr pcommon.TraceID
	binary.BigEndian.PutUint64(tr[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(tr[8:], s.rng.Uint64())
	return tr
}

func (s *sim) spanID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], s.rng.Uint64()|1)
	return id
}

func (s *sim) pick(svc string) *replica {
	rs := s.replicas[svc]
	return rs[s.rng.IntN(len(rs))]
}

func (s *sim) jit(base time.Duration) int64 {
	return int64(base)/2 + s.rng.Int64N(int64(base)+1)
}

// count records one real call on edge id, started at ns.
func (s *sim) count(id string, ns int64, failed, retry bool) {
	m := int(time.Duration(ns-s.t0.UnixNano()) / time.Minute)
	for _, tr := range []*truth{getTruth(s.truth, id), getTruth(getMinute(s.truthMinute, id), m)} {
		tr.req++
		if failed {
			tr.errs++
		}
		if retry {
			tr.retries++
		}
	}
}

func getTruth[K comparable](m map[K]*truth, k K) *truth {
	if t, ok := m[k]; ok {
		return t
	}
	t := &truth{}
	m[k] = t
	return t
}

func getMinute[V any](m map[string]map[int]V, id string) map[int]V {
	if mm, ok := m[id]; ok {
		return mm
	}
	mm := map[int]V{}
	m[id] = mm
	return mm
}

// visit is one service's part of a trace: its spans share the sampling
// decision of a process whose spans are parent-based within it.
type visit struct {
	svc  string
	rep  *replica
	kept bool
	ts   string
}

// trace is one request being built.
type trace struct {
	id       pcommon.TraceID
	recs     []rec
	rootKept bool
	rootTS   string
}

// newVisit tosses the sampler's coin for service svc's part of tr.
func (s *sim) newVisit(tr *trace, svc string) visit {
	v := visit{svc: svc, rep: s.pick(svc)}
	switch s.smp.kind {
	case "all":
		v.kept = true
	case "consistent", "jaeger":
		v.kept, v.ts = tr.rootKept, tr.rootTS
		if s.smp.kind == "jaeger" {
			v.ts = ""
		}
	case "independent":
		v.kept = s.rng.Float64() < s.smp.p
		_, v.ts = keptByThreshold(tr.id, s.smp.p)
	case "per-service":
		v.kept, v.ts = keptByThreshold(tr.id, s.smp.ratio(svc))
	}
	return v
}

func (s *sim) add(tr *trace, v visit, r rec) *rec {
	r.trace, r.replica, r.traceState, r.sampledOutOf = tr.id, v.rep, v.ts, !v.kept
	if r.id.IsEmpty() {
		r.id = s.spanID()
	}
	tr.recs = append(tr.recs, r)
	return &tr.recs[len(tr.recs)-1]
}

// request simulates one request entering the gateway at ns.
func (s *sim) request(ns int64) {
	tr := &trace{id: s.traceID()}
	switch s.smp.kind {
	case "consistent":
		tr.rootKept, tr.rootTS = keptByThreshold(tr.id, s.smp.p)
	case "jaeger":
		// Jaeger's probabilistic sampler keeps a trace by its id; the
		// decision propagates in the sampled flag.
		tr.rootKept = float64(randomness(tr.id))/(1<<56) < s.smp.p
	}
	at := time.Unix(0, ns)
	faulty := s.fault != faultNone && !at.Before(s.faultFrom)

	gw := s.newVisit(tr, "gateway")
	root := s.add(tr, gw, rec{role: roleHTTPServer, name: "GET /orders", start: ns, status: 200})
	rootID := root.id
	if s.smp.kind == "jaeger" {
		tr.recs[0].jaegerParam = s.smp.p
	}
	cur := ns + s.jit(500*time.Microsecond)

	// gateway -> a
	gc := s.add(tr, gw, rec{role: roleHTTPClient, name: "GET", parent: rootID, peer: "a", start: cur})
	gcID, gcIdx := gc.id, len(tr.recs)-1
	av := s.newVisit(tr, "a")
	as := s.add(tr, av, rec{role: roleHTTPServer, name: "GET /orders", parent: gcID, start: cur + s.jit(300*time.Microsecond), status: 200})
	asID, asIdx := as.id, len(tr.recs)-1
	acur := tr.recs[asIdx].start + s.jit(300*time.Microsecond)

	// a -> b, re-sent on failure
	aFailed := false
	tries := bgRetryMaxTries
	if faulty && s.fault == faultRetryStorm {
		tries = simMaxRetries
	}
	for attempt := 0; attempt <= tries; attempt++ {
		cid := s.spanID()
		ci := len(tr.recs)
		s.add(tr, av, rec{role: roleHTTPClient, id: cid, name: "GET", parent: asID, peer: "b", start: acur, resend: int64(attempt)})
		if faulty && s.fault == faultOpenCircuit {
			c := &tr.recs[ci]
			c.end, c.err, c.breaker = acur+s.jit(200*time.Microsecond), true, true
			s.count(edgeAB, acur, true, attempt > 0)
			acur = c.end
			aFailed = true
			break
		}
		bv := s.newVisit(tr, "b")
		fail := s.rng.Float64() < bgErrB || (faulty && s.fault == faultRetryStorm && s.rng.Float64() < stormFailRatio)
		bs := s.add(tr, bv, rec{role: roleHTTPServer, name: "GET /stock", parent: cid, start: acur + s.jit(300*time.Microsecond), status: 200})
		bsID, bsIdx := bs.id, len(tr.recs)-1
		bcur := tr.recs[bsIdx].start + s.jit(200*time.Microsecond)
		if !fail {
			dbFail := s.rng.Float64() < bgErrDB
			d := s.add(tr, bv, rec{role: roleDB, name: "SELECT orders", parent: bsID, start: bcur, err: dbFail})
			d.end = bcur + s.jit(2*time.Millisecond)
			bcur = d.end
			s.count(edgeBDB, d.start, dbFail, false)
			fail = dbFail
		} else {
			bcur += s.jit(time.Millisecond)
		}
		bs = &tr.recs[bsIdx]
		bs.end = bcur + s.jit(300*time.Microsecond)
		bs.err = fail
		if fail {
			bs.status = 500
		}
		c := &tr.recs[ci]
		c.end, c.err, c.status = bs.end+s.jit(300*time.Microsecond), fail, bs.status
		s.count(edgeAB, c.start, fail, attempt > 0)
		acur = c.end
		aFailed = fail
		if !fail {
			break
		}
		acur += s.jit(2 * time.Millisecond) // backoff
	}

	// a -> c (gRPC), every request: the fan-out
	{
		cid := s.spanID()
		ci := len(tr.recs)
		s.add(tr, av, rec{role: roleGRPCClient, id: cid, name: "shop.Pricing/Get", parent: asID, peer: "c", start: acur})
		cv := s.newVisit(tr, "c")
		fail := s.rng.Float64() < bgErrC
		cs := s.add(tr, cv, rec{role: roleGRPCServer, name: "shop.Pricing/Get", parent: cid, start: acur + s.jit(300*time.Microsecond), err: fail})
		cs.end = cs.start + s.jit(3*time.Millisecond)
		if fail {
			cs.status = 13
		}
		c := &tr.recs[ci]
		c.end, c.err, c.status = cs.end+s.jit(300*time.Microsecond), fail, cs.status
		s.count(edgeAC, c.start, fail, false)
		acur = c.end
	}

	// a -> kafka orders -> worker, one request in two
	if !aFailed && s.rng.IntN(2) == 0 {
		p := s.add(tr, av, rec{role: roleProducer, name: "orders publish", parent: asID, start: acur})
		p.end = acur + s.jit(500*time.Microsecond)
		pID, pEnd := p.id, p.end
		s.count(edgeAOrders, acur, false, false)
		acur = pEnd
		wv := s.newVisit(tr, "worker")
		w := s.add(tr, wv, rec{role: roleConsumer, name: "orders process", parent: pID, start: pEnd + s.jit(10*time.Millisecond)})
		w.end = w.start + s.jit(4*time.Millisecond)
		s.count(edgeOrdersW, w.start, false, false)
	}

	as = &tr.recs[asIdx]
	as.end = acur + s.jit(300*time.Microsecond)
	as.err = aFailed
	if aFailed {
		as.status = 503
	}
	gc = &tr.recs[gcIdx]
	gc.end, gc.err, gc.status = as.end+s.jit(300*time.Microsecond), aFailed, as.status
	s.count(edgeGWA, gc.start, aFailed, false)
	root = &tr.recs[0]
	root.end = gc.end + s.jit(300*time.Microsecond)
	root.err = aFailed
	if aFailed {
		root.status = 503
	}
	s.count(edgeClientGW, root.start, aFailed, false)

	for _, r := range tr.recs {
		s.spans++
		if r.sampledOutOf {
			continue
		}
		s.kept++
		r.replica.buf = append(r.replica.buf, r)
	}
}

// export sends what replica r holds of the spans ended by now, in the
// order they ended (roots last), as one OTLP request.
func (s *sim) export(r *replica) {
	nowN := s.now.UnixNano()
	slices.SortStableFunc(r.buf, func(a, b rec) int { return int(a.end - b.end) })
	n := 0
	for n < len(r.buf) && r.buf[n].end <= nowN {
		n++
	}
	if n == 0 {
		return
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", r.service)
	ra.PutStr("service.instance.id", r.instance)
	ra.PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	for _, x := range r.buf[:n] {
		emit(ss.Spans().AppendEmpty(), &x)
	}
	r.buf = append(r.buf[:0], r.buf[n:]...)
	require.NoError(s.t, s.pipe.ConsumeTraces(context.Background(), td))
}

// emit writes x as an OTLP span with the attributes its instrumentation
// sets.
func emit(sp ptrace.Span, x *rec) {
	sp.SetTraceID(x.trace)
	sp.SetSpanID(x.id)
	sp.SetParentSpanID(x.parent)
	sp.SetName(x.name)
	sp.SetStartTimestamp(pcommon.Timestamp(x.start))
	sp.SetEndTimestamp(pcommon.Timestamp(x.end))
	if x.traceState != "" {
		sp.TraceState().FromRaw(x.traceState)
	}
	if x.err {
		sp.Status().SetCode(ptrace.StatusCodeError)
	}
	a := sp.Attributes()
	switch x.role {
	case roleHTTPServer:
		sp.SetKind(ptrace.SpanKindServer)
		a.PutStr("http.request.method", "GET")
		a.PutStr("http.route", x.name[len("GET "):])
		a.PutStr("url.scheme", "http")
		a.PutInt("http.response.status_code", x.status)
	case roleHTTPClient:
		sp.SetKind(ptrace.SpanKindClient)
		a.PutStr("http.request.method", "GET")
		a.PutStr("server.address", x.peer)
		a.PutInt("server.port", 8080)
		a.PutStr("url.full", "http://"+x.peer+":8080/")
		if x.status != 0 {
			a.PutInt("http.response.status_code", x.status)
		}
		if x.resend > 0 {
			a.PutInt("http.request.resend_count", x.resend)
		}
		if x.breaker {
			a.PutStr("error.type", "circuit_breaker_open")
		}
	case roleGRPCServer, roleGRPCClient:
		sp.SetKind(ptrace.SpanKindServer)
		if x.role == roleGRPCClient {
			sp.SetKind(ptrace.SpanKindClient)
			a.PutStr("server.address", x.peer)
			a.PutInt("server.port", 9090)
		}
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", "shop.Pricing")
		a.PutStr("rpc.method", "Get")
		a.PutInt("rpc.grpc.status_code", x.status)
	case roleDB:
		sp.SetKind(ptrace.SpanKindClient)
		a.PutStr("db.system.name", "postgresql")
		a.PutStr("server.address", "pg")
		a.PutInt("server.port", 5432)
		a.PutStr("db.namespace", "orders")
		a.PutStr("db.operation.name", "SELECT")
		a.PutStr("db.collection.name", "orders")
	case roleProducer, roleConsumer:
		sp.SetKind(ptrace.SpanKindProducer)
		op := "send"
		if x.role == roleConsumer {
			sp.SetKind(ptrace.SpanKindConsumer)
			op = "process"
			a.PutStr("messaging.consumer.group.name", "worker")
		}
		a.PutStr("messaging.system", "kafka")
		a.PutStr("messaging.operation.type", op)
		a.PutStr("messaging.destination.name", "orders")
	}
	if x.jaegerParam > 0 {
		a.PutStr("sampler.type", "probabilistic")
		a.PutDouble("sampler.param", x.jaegerParam)
	}
}

// run advances the simulation by d in simStep steps: arrivals, exports,
// the collector's 1 s expiry ticker, and every 5 s (aligned) a snapshot
// judged by the engine and the closed buckets collected.
func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		if s.trafficEnd.IsZero() || s.now.Before(s.trafficEnd) {
			for n := poissonN(s.rng, s.rate*simStep.Seconds()); n > 0; n-- {
				s.request(s.now.Add(time.Duration(s.rng.Int64N(int64(simStep)))).UnixNano())
			}
		}
		s.now = s.now.Add(simStep)
		for _, svc := range []string{"gateway", "a", "b", "c", "worker"} {
			for _, r := range s.replicas[svc] {
				if !s.now.Before(r.next) {
					r.next = r.next.Add(exportEvery)
					s.export(r)
				}
			}
		}
		if s.now.UnixNano()%int64(time.Second) == 0 {
			s.g.Expire()
			s.maxPending = max(s.maxPending, gauge(s.reg, "cartograph_graph_half_edges"))
		}
		if s.now.UnixNano()%int64(5*time.Second) == 0 {
			s.evaluate()
		}
	}
}

// evaluate judges a snapshot, remembers what fired, and collects the
// buckets that closed.
func (s *sim) evaluate() {
	snap, err := s.g.Snapshot(0)
	require.NoError(s.t, err)
	s.engine.Eval(context.Background(), snap)
	if s.trafficEnd.IsZero() || s.now.Before(s.trafficEnd) {
		s.lastSnap = snap
	}
	for _, f := range s.engine.Findings(0) {
		if f.FiredAt != nil {
			if _, ok := s.firing[f.ID]; !ok {
				s.firing[f.ID] = firedFinding{f: f, at: s.now}
			}
		} else if f.State == finding.StatePending {
			s.pendingSeen[f.ID] = f
		}
	}
	bs, after := s.g.ClosedBuckets(s.after)
	s.after = after
	for _, b := range bs {
		id := graph.EdgeID(b.Source.ID(), b.Target.ID(), b.Protocol, b.ConsumerGroup)
		m := int(b.Start.Sub(s.t0) / time.Minute)
		for _, acc := range []*graph.EdgeBucket{getBucket(s.est, id), getBucket(getMinute(s.estMinute, id), m)} {
			acc.Requests += b.Requests
			acc.Errors += b.Errors
			acc.Retries += b.Retries
			acc.Unanswered += b.Unanswered
			acc.Seen += b.Seen
			acc.Sampled += b.Sampled
		}
	}
}

func getBucket[K comparable](m map[K]*graph.EdgeBucket, k K) *graph.EdgeBucket {
	if b, ok := m[k]; ok {
		return b
	}
	b := &graph.EdgeBucket{}
	m[k] = b
	return b
}

// drain stops the traffic and runs on until every span was exported, every
// half-edge expired and every bucket closed.
func (s *sim) drain() {
	s.trafficEnd = s.now
	s.run(40 * time.Second)
}

// gauge reads the value of an unlabelled gauge, or the sum of a counter
// vector's series, from reg.
func gauge(reg *prometheus.Registry, name string) float64 {
	return metricSum(reg, name, nil)
}

// metricSum sums the series of metric name whose labels include want.
func metricSum(reg *prometheus.Registry, name string, want map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue series
				}
			}
			switch {
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// poissonN draws from a Poisson distribution of mean lambda (Knuth below
// 30, a rounded normal above).
func poissonN(rng *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestThreshold pins the OTEP 235 thresholds the study writes and that a
// consistent sampler keeps the share of traces its ratio says.
func TestThreshold(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{{1, "0"}, {0.5, "8"}, {0.25, "c"}, {0.1, "e6666666666666"}, {0.01, "fd70a3d70a3d71"}} {
		h, _ := threshold(tc.p)
		require.Equal(t, tc.want, h, "p=%v", tc.p)
		s := newSim(t, sampler{kind: "all"}, 1, 3)
		kept := 0
		const n = 200_000
		for range n {
			if ok, _ := keptByThreshold(s.traceID(), tc.p); ok {
				kept++
			}
		}
		require.InDelta(t, tc.p, float64(kept)/n, 4*math.Sqrt(tc.p*(1-tc.p)/n), "p=%v", tc.p)
	}
}
