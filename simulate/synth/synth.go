// Package synth generates realistic synthetic OTLP traces for benchmarks,
// load tests and demos: a shop-like topology of services calling each other
// over HTTP and gRPC, a database, an external API and a Kafka topic with a
// consumer group, with correct client/server and producer/consumer pairs.
// Output is deterministic for a seed.
package synth

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Generator makes traces. It is not safe for concurrent use; give each
// goroutine its own.
type Generator struct {
	rnd   *rand.Rand
	seq   uint64
	seed  uint64
	start time.Time
}

// New returns a Generator for seed whose spans start at start.
func New(seed uint64, start time.Time) *Generator {
	return &Generator{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed, start: start}
}

// SpansPerTrace is the number of spans in each generated trace.
const SpansPerTrace = 8

// Traces returns n traces (n*SpansPerTrace spans) grouped by service as an
// SDK exporter would send them: one ResourceSpans per service.
func (g *Generator) Traces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	byService := map[string]ptrace.SpanSlice{}
	spans := func(svc, ns string) ptrace.SpanSlice {
		if s, ok := byService[svc]; ok {
			return s
		}
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("service.namespace", ns)
		rs.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		byService[svc] = ss.Spans()
		return ss.Spans()
	}
	for range n {
		g.trace(spans)
	}
	return td
}

func (g *Generator) ids() (pcommon.TraceID, func() pcommon.SpanID) {
	g.seq++
	var t pcommon.TraceID
	binary.BigEndian.PutUint64(t[:8], g.seed)
	binary.BigEndian.PutUint64(t[8:], g.seq)
	var n uint64
	return t, func() pcommon.SpanID {
		n++
		var s pcommon.SpanID
		binary.BigEndian.PutUint64(s[:], g.seq<<8|n)
		return s
	}
}

type spanFn func(svc, ns string) ptrace.SpanSlice

// trace emits: client -> gateway(server) -> gateway(client) ->
// checkout(server) -> checkout(client db), checkout(client grpc) ->
// payment(server), checkout(producer) -> orders topic -> shipping(consumer).
func (g *Generator) trace(spans spanFn) {
	tr, next := g.ids()
	t0 := g.start.Add(time.Duration(g.seq) * time.Millisecond)
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	jit := func(base float64) float64 { return base * (0.5 + g.rnd.Float64()) }

	add := func(svc, ns, name string, kind ptrace.SpanKind, id, parent pcommon.SpanID, start time.Time, dur time.Duration) ptrace.Span {
		sp := spans(svc, ns).AppendEmpty()
		sp.SetTraceID(tr)
		sp.SetSpanID(id)
		sp.SetParentSpanID(parent)
		sp.SetName(name)
		sp.SetKind(kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(dur)))
		return sp
	}
	fail := g.rnd.IntN(100) == 0

	root := next()
	total := ms(jit(40))
	sp := add("gateway", "edge", "GET /checkout", ptrace.SpanKindServer, root, pcommon.SpanID{}, t0, total)
	a := sp.Attributes()
	a.PutStr("http.request.method", "GET")
	a.PutStr("http.route", "/checkout")
	a.PutStr("url.scheme", "https")
	a.PutInt("http.response.status_code", 200)
	a.PutStr("server.address", "shop.example.com")

	gc := next()
	sp = add("gateway", "edge", "POST", ptrace.SpanKindClient, gc, root, t0.Add(ms(1)), total-ms(2))
	a = sp.Attributes()
	a.PutStr("http.request.method", "POST")
	a.PutStr("server.address", "checkout")
	a.PutInt("server.port", 8080)
	a.PutStr("url.full", "http://checkout:8080/api/checkout")
	a.PutInt("http.response.status_code", 200)

	cs := next()
	inner := total - ms(4)
	sp = add("checkout", "shop", "POST /api/checkout", ptrace.SpanKindServer, cs, gc, t0.Add(ms(2)), inner)
	a = sp.Attributes()
	a.PutStr("http.request.method", "POST")
	a.PutStr("http.route", "/api/checkout")
	a.PutInt("http.response.status_code", 200)
	a.PutStr("network.protocol.version", "1.1")

	sp = add("checkout", "shop", "SELECT orders", ptrace.SpanKindClient, next(), cs, t0.Add(ms(3)), ms(jit(3)))
	a = sp.Attributes()
	a.PutStr("db.system.name", "postgresql")
	a.PutStr("db.namespace", "orders")
	a.PutStr("db.operation.name", "SELECT")
	a.PutStr("db.collection.name", "orders")
	a.PutStr("server.address", "pg-orders")
	a.PutInt("server.port", 5432)

	pc := next()
	pd := ms(jit(10))
	sp = add("checkout", "shop", "payment.Payment/Charge", ptrace.SpanKindClient, pc, cs, t0.Add(ms(8)), pd)
	a = sp.Attributes()
	a.PutStr("rpc.system", "grpc")
	a.PutStr("rpc.service", "payment.Payment")
	a.PutStr("rpc.method", "Charge")
	a.PutStr("server.address", "payment")
	a.PutInt("server.port", 9090)
	code := int64(0)
	if fail {
		code = 14
		sp.Status().SetCode(ptrace.StatusCodeError)
	}
	a.PutInt("rpc.grpc.status_code", code)
	sp = add("payment", "shop", "payment.Payment/Charge", ptrace.SpanKindServer, next(), pc, t0.Add(ms(9)), pd-ms(2))
	a = sp.Attributes()
	a.PutStr("rpc.system", "grpc")
	a.PutStr("rpc.service", "payment.Payment")
	a.PutStr("rpc.method", "Charge")
	a.PutInt("rpc.grpc.status_code", code)
	if fail {
		sp.Status().SetCode(ptrace.StatusCodeError)
	}

	pr := next()
	prodStart := t0.Add(ms(20))
	sp = add("checkout", "shop", "publish orders", ptrace.SpanKindProducer, pr, cs, prodStart, ms(1))
	a = sp.Attributes()
	a.PutStr("messaging.system", "kafka")
	a.PutStr("messaging.operation.type", "publish")
	a.PutStr("messaging.destination.name", "orders")
	a.PutStr("server.address", "kafka-1")

	sp = add("shipping", "shop", "process orders", ptrace.SpanKindConsumer, next(), pr, prodStart.Add(ms(jit(15))), ms(jit(5)))
	a = sp.Attributes()
	a.PutStr("messaging.system", "kafka")
	a.PutStr("messaging.operation.type", "process")
	a.PutStr("messaging.destination.name", "orders")
	a.PutStr("messaging.consumer.group.name", "shipping")
	a.PutInt("messaging.kafka.offset", int64(g.seq))
}

// TelemetrygenSpansPerTrace is the number of spans in each trace of
// TelemetrygenTraces.
const TelemetrygenSpansPerTrace = 2

// TelemetrygenTraces returns n traces shaped as the OpenTelemetry
// Collector's telemetrygen sends them by default: in one service,
// "telemetrygen", a client span "lets-go" and its server child
// "okey-dokey-0", each 123 µs long with net.peer.ip and peer.service, all in
// one ResourceSpans as its batch span processor exports them (the child,
// which ends first, before its parent).
func (g *Generator) TelemetrygenTraces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "telemetrygen")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("telemetrygen")
	spans := ss.Spans()
	spans.EnsureCapacity(n * TelemetrygenSpansPerTrace)
	const dur = 123 * time.Microsecond
	for range n {
		tr, next := g.ids()
		t0 := g.start.Add(time.Duration(g.seq) * time.Millisecond)
		parent, child := next(), next()
		add := func(name string, kind ptrace.SpanKind, id, parentID pcommon.SpanID, start time.Time, peer string) {
			sp := spans.AppendEmpty()
			sp.SetTraceID(tr)
			sp.SetSpanID(id)
			sp.SetParentSpanID(parentID)
			sp.SetName(name)
			sp.SetKind(kind)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(dur)))
			sp.Attributes().PutStr("net.peer.ip", "1.2.3.4")
			sp.Attributes().PutStr("peer.service", peer)
		}
		add("okey-dokey-0", ptrace.SpanKindServer, child, parent, t0.Add(time.Microsecond), "telemetrygen-client")
		add("lets-go", ptrace.SpanKindClient, parent, pcommon.SpanID{}, t0, "telemetrygen-server")
	}
	return td
}
