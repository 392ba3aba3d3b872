package semconv

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// fuzzSeeds returns encoded requests that exercise every rule: the realistic
// mix, legacy names, wrong types, links and zero ids.
func fuzzSeeds(tb testing.TB) []ptrace.Traces {
	tb.Helper()
	legacy := buildTraces(tb, resourceSpec{
		attrs: map[string]any{"service.name": "legacy", "service.namespace": "old"},
		spans: []spanSpec{
			{name: "GET", kind: client, status: errCode, attrs: map[string]any{"http.method": "GET", "http.url": "http://u:p@legacy:81/x", "http.status_code": 404}},
			{name: "q", kind: client, attrs: map[string]any{"db.system": "mysql", "db.name": "users", "net.peer.name": "db", "net.peer.port": 3306}},
			{name: "publish", kind: producer, attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination": "jobs", "messaging.destination_kind": "topic", "messaging.temp_destination": true}},
			{name: "process", kind: consumer, attrs: map[string]any{"messaging.system": "kafka", "messaging.source.name": "t", "messaging.kafka.consumer_group": "g"}},
			{name: "rpc", kind: client, status: errCode, attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": 14, "peer.service": "pay"}},
		},
	})
	odd := buildTraces(tb,
		resourceSpec{
			attrs: map[string]any{"service.name": 1},
			spans: []spanSpec{
				{name: "wrong types", kind: client, status: errCode, attrs: map[string]any{"server.address": 1, "server.port": "x", "url.full": "//h/x", "rpc.response.status_code": "not_found", "http.request.resend_count": 3}},
				{name: "zero", zeroIDs: true},
				{
					name: "links", kind: consumer, start: 1 << 63, end: 1<<64 - 1,
					attrs: map[string]any{"messaging.system": "nats", "messaging.operation.type": "deliver"},
					links: []ptrace.SpanLink{newLink(testTraceID, testParent), newLink(pcommon.TraceID{}, testParent)},
				},
			},
		},
		resourceSpec{},
	)
	return []ptrace.Traces{realisticRequest(tb, 2), legacy, odd, ptrace.NewTraces()}
}

// FuzzTranslate feeds arbitrary bytes to the OTLP decoder and whatever
// decodes to Translate, which must not panic and must account for every
// span.
func FuzzTranslate(f *testing.F) {
	var m ptrace.ProtoMarshaler
	for _, td := range fuzzSeeds(f) {
		b, err := m.MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(b)
		if err != nil {
			return
		}
		spans, invalid := Translate(nil, td)
		if n := td.SpanCount(); len(spans)+invalid != n {
			t.Fatalf("%d spans + %d invalid != %d in request", len(spans), invalid, n)
		}
		for _, s := range spans {
			if s.Service == "" || s.Trace == ([16]byte{}) || s.ID.IsZero() {
				t.Fatalf("bad span %+v", s)
			}
		}
	})
}
