package semconv

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
)

var (
	testTraceID = pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	testSpanID  = pcommon.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	testParent  = pcommon.SpanID{0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8}
)

// spanSpec describes one span to build.
type spanSpec struct {
	name    string
	kind    ptrace.SpanKind
	status  ptrace.StatusCode
	message string // status message
	attrs   map[string]any
	events  []map[string]any // attributes of "exception" events
	traceID pcommon.TraceID  // testTraceID when zero and !zeroIDs
	spanID  pcommon.SpanID   // testSpanID when zero and !zeroIDs
	zeroIDs bool             // keep zero ids as they are
	links   []ptrace.SpanLink
	start   pcommon.Timestamp
	end     pcommon.Timestamp
}

// resourceSpec describes one ResourceSpans to build.
type resourceSpec struct {
	attrs map[string]any
	spans []spanSpec
}

// buildTraces builds a request from specs.
func buildTraces(tb testing.TB, resources ...resourceSpec) ptrace.Traces {
	tb.Helper()
	td := ptrace.NewTraces()
	for _, r := range resources {
		rs := td.ResourceSpans().AppendEmpty()
		if err := rs.Resource().Attributes().FromRaw(r.attrs); err != nil {
			tb.Fatalf("resource attributes: %v", err)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("test")
		for _, s := range r.spans {
			sp := ss.Spans().AppendEmpty()
			tid, sid := s.traceID, s.spanID
			if !s.zeroIDs {
				if tid.IsEmpty() {
					tid = testTraceID
				}
				if sid.IsEmpty() {
					sid = testSpanID
				}
			}
			sp.SetTraceID(tid)
			sp.SetSpanID(sid)
			sp.SetParentSpanID(testParent)
			sp.SetName(s.name)
			sp.SetKind(s.kind)
			sp.Status().SetCode(s.status)
			sp.Status().SetMessage(s.message)
			for _, ev := range s.events {
				e := sp.Events().AppendEmpty()
				e.SetName("exception")
				if err := e.Attributes().FromRaw(ev); err != nil {
					tb.Fatalf("event attributes: %v", err)
				}
			}
			sp.SetStartTimestamp(s.start)
			sp.SetEndTimestamp(s.end)
			if err := sp.Attributes().FromRaw(s.attrs); err != nil {
				tb.Fatalf("span attributes: %v", err)
			}
			for _, l := range s.links {
				l.CopyTo(sp.Links().AppendEmpty())
			}
		}
	}
	return td
}

// translateOne translates a request holding the single span s of service
// "checkout" and returns the span.
func translateOne(t *testing.T, s spanSpec) graph.Span {
	t.Helper()
	td := buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": "checkout"}, spans: []spanSpec{s}})
	spans, invalid := Translate(nil, td)
	if invalid != 0 || len(spans) != 1 {
		t.Fatalf("Translate: %d spans, %d invalid; want 1 span", len(spans), invalid)
	}
	return spans[0]
}

// newLink returns a span link to (tid, sid).
func newLink(tid pcommon.TraceID, sid pcommon.SpanID) ptrace.SpanLink {
	l := ptrace.NewSpanLink()
	l.SetTraceID(tid)
	l.SetSpanID(sid)
	return l
}

// realisticRequest builds a request of nRes resources with 10 spans each, a
// mix of HTTP server and client, database, gRPC and Kafka spans carrying
// about ten attributes each, as instrumentation libraries send them.
func realisticRequest(tb testing.TB, nRes int) ptrace.Traces {
	tb.Helper()
	td := ptrace.NewTraces()
	id := uint64(1)
	nextSpanID := func() pcommon.SpanID {
		id++
		var s pcommon.SpanID
		for i := range s {
			s[i] = byte(id >> (8 * i))
		}
		return s
	}
	for r := 0; r < nRes; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", "service-"+string(rune('a'+r%26)))
		ra.PutStr("service.namespace", "shop")
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("deployment.environment.name", "production")
		ra.PutStr("host.name", "ip-10-0-3-17.ec2.internal")
		ra.PutStr("telemetry.sdk.language", "go")
		ra.PutStr("telemetry.sdk.name", "opentelemetry")
		ra.PutStr("telemetry.sdk.version", "1.44.0")
		ra.PutStr("k8s.pod.name", "checkout-7d9f8b6c5-x2x9z")
		ra.PutStr("k8s.namespace.name", "shop")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		tid := pcommon.TraceID{byte(r), byte(r >> 8), 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
		root := nextSpanID()
		for k := 0; k < 10; k++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(tid)
			if k == 0 {
				sp.SetSpanID(root)
			} else {
				sp.SetSpanID(nextSpanID())
				sp.SetParentSpanID(root)
			}
			sp.SetStartTimestamp(pcommon.Timestamp(1_750_000_000_000_000_000 + uint64(k)*1000))
			sp.SetEndTimestamp(pcommon.Timestamp(1_750_000_000_000_500_000 + uint64(k)*1000))
			a := sp.Attributes()
			switch k {
			case 0: // HTTP server
				sp.SetName("GET /api/orders/{id}")
				sp.SetKind(ptrace.SpanKindServer)
				a.PutStr("http.request.method", "GET")
				a.PutStr("url.path", "/api/orders/42")
				a.PutStr("url.scheme", "https")
				a.PutStr("http.route", "/api/orders/{id}")
				a.PutInt("http.response.status_code", 200)
				a.PutStr("server.address", "checkout")
				a.PutInt("server.port", 8080)
				a.PutStr("client.address", "10.0.1.5")
				a.PutStr("user_agent.original", "Go-http-client/1.1")
				a.PutStr("network.protocol.version", "1.1")
			case 1, 2, 3: // HTTP clients
				sp.SetName("GET")
				sp.SetKind(ptrace.SpanKindClient)
				a.PutStr("http.request.method", "GET")
				a.PutStr("url.full", "http://inventory:8080/api/items/7?x=1")
				a.PutStr("server.address", "inventory")
				a.PutInt("server.port", 8080)
				a.PutInt("http.response.status_code", 200)
				a.PutStr("network.peer.address", "10.0.2.9")
				a.PutInt("network.peer.port", 8080)
				a.PutStr("network.protocol.version", "1.1")
				a.PutStr("user_agent.original", "Go-http-client/1.1")
				if k == 3 {
					a.PutInt("http.request.resend_count", 1)
					sp.Status().SetCode(ptrace.StatusCodeError)
					a.PutInt("http.response.status_code", 503)
				}
			case 4, 5: // database
				sp.SetName("SELECT orders")
				sp.SetKind(ptrace.SpanKindClient)
				a.PutStr("db.system.name", "postgresql")
				a.PutStr("db.namespace", "orders")
				a.PutStr("db.collection.name", "orders")
				a.PutStr("db.operation.name", "SELECT")
				a.PutStr("db.query.text", "SELECT id, total FROM orders WHERE id = $1")
				a.PutStr("server.address", "pg-primary")
				a.PutInt("server.port", 5432)
				a.PutStr("network.peer.address", "10.0.4.2")
				a.PutInt("network.peer.port", 5432)
				a.PutStr("code.function.name", "store.(*Orders).Get")
			case 6, 7: // gRPC client
				sp.SetName("payments.v1.Payments/Authorize")
				sp.SetKind(ptrace.SpanKindClient)
				a.PutStr("rpc.system", "grpc")
				a.PutStr("rpc.service", "payments.v1.Payments")
				a.PutStr("rpc.method", "Authorize")
				a.PutInt("rpc.grpc.status_code", 0)
				a.PutStr("server.address", "payments")
				a.PutInt("server.port", 9090)
				a.PutStr("network.peer.address", "10.0.5.3")
				a.PutInt("network.peer.port", 9090)
				a.PutStr("network.transport", "tcp")
				a.PutStr("network.type", "ipv4")
			case 8: // Kafka producer
				sp.SetName("send orders")
				sp.SetKind(ptrace.SpanKindProducer)
				a.PutStr("messaging.system", "kafka")
				a.PutStr("messaging.destination.name", "orders")
				a.PutStr("messaging.operation.type", "send")
				a.PutStr("messaging.operation.name", "send")
				a.PutStr("messaging.kafka.message.key", "order-42")
				a.PutStr("messaging.destination.partition.id", "3")
				a.PutStr("messaging.message.id", "a1b2c3")
				a.PutStr("server.address", "kafka-0")
				a.PutInt("server.port", 9092)
				a.PutStr("messaging.client.id", "producer-1")
			case 9: // Kafka consumer with a link
				sp.SetName("process orders")
				sp.SetKind(ptrace.SpanKindConsumer)
				a.PutStr("messaging.system", "kafka")
				a.PutStr("messaging.destination.name", "orders")
				a.PutStr("messaging.operation.type", "process")
				a.PutStr("messaging.consumer.group.name", "billing")
				a.PutStr("messaging.destination.partition.id", "3")
				a.PutInt("messaging.kafka.offset", 1234)
				a.PutStr("messaging.message.id", "a1b2c3")
				a.PutStr("server.address", "kafka-0")
				a.PutInt("server.port", 9092)
				a.PutStr("messaging.client.id", "consumer-1")
				l := sp.Links().AppendEmpty()
				l.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
				l.SetSpanID(nextSpanID())
			}
		}
	}
	return td
}
