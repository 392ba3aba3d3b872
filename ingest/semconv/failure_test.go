package semconv

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestFailureOf: the error texts real instrumentations put on a failed
// client span tell a callee that cannot be reached from a breaker that
// refused the call, in every language cartograph meets. Each shape says
// where it comes from.
func TestFailureOf(t *testing.T) {
	http := map[string]any{"http.request.method": "GET", "server.address": "stock", "server.port": int64(8080)}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range http {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	exception := func(typ, msg string) []map[string]any {
		return []map[string]any{{"exception.type": typ, "exception.message": msg}}
	}
	for _, tc := range []struct {
		name string
		span spanSpec
		want graph.Failure
	}{
		{"Go otelhttp: the status message is the dial error", spanSpec{message: "dial tcp 127.0.0.1:39999: connect: connection refused", attrs: http}, graph.FailureUnreachable},
		{"Go otelhttp: error.type *net.OpError and a DNS failure", spanSpec{message: `Get "http://stock:8080/": dial tcp: lookup stock on 10.96.0.10:53: no such host`, attrs: with(map[string]any{"error.type": "*net.OpError"})}, graph.FailureUnreachable},
		{"Go otelgrpc: UNAVAILABLE while dialing", spanSpec{message: `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:50051: connect: connection refused"`,
			attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": int64(14)}}, graph.FailureUnreachable},
		{"gRPC UNAVAILABLE with no text", spanSpec{attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": int64(14)}}, graph.FailureUnreachable},
		{"Java agent: exception event java.net.ConnectException", spanSpec{attrs: with(map[string]any{"error.type": "java.net.ConnectException"}),
			events: exception("java.net.ConnectException", "Connection refused")}, graph.FailureUnreachable},
		{"Java agent: Netty's AnnotatedConnectException", spanSpec{attrs: with(map[string]any{"error.type": "io.netty.channel.AbstractChannel$AnnotatedConnectException"}),
			events: exception("io.netty.channel.AbstractChannel$AnnotatedConnectException", "Connection refused: stock/10.0.0.7:8080")}, graph.FailureUnreachable},
		{"Java agent: resilience4j's breaker is open", spanSpec{attrs: with(map[string]any{"error.type": "io.github.resilience4j.circuitbreaker.CallNotPermittedException"}),
			events: exception("io.github.resilience4j.circuitbreaker.CallNotPermittedException", "CircuitBreaker 'stock' is OPEN and does not permit further calls")}, graph.FailureRejected},
		{"Java agent: resilience4j's bulkhead is full", spanSpec{attrs: http, events: exception("io.github.resilience4j.bulkhead.BulkheadFullException", "Bulkhead 'stock' is full and does not permit further calls")}, graph.FailureRejected},
		{".NET: Polly's broken circuit", spanSpec{attrs: with(map[string]any{"error.type": "Polly.CircuitBreaker.BrokenCircuitException"}),
			events: exception("Polly.CircuitBreaker.BrokenCircuitException", "The circuit is now open and is not allowing calls.")}, graph.FailureRejected},
		{".NET: HttpClient, connection refused", spanSpec{attrs: with(map[string]any{"error.type": "System.Net.Http.HttpRequestException"}),
			events: exception("System.Net.Http.HttpRequestException", "Connection refused (stock:8080)")}, graph.FailureUnreachable},
		{"Node: ECONNREFUSED", spanSpec{message: "connect ECONNREFUSED 127.0.0.1:8080", attrs: http, events: exception("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:8080")}, graph.FailureUnreachable},
		{"Node: opossum's open breaker", spanSpec{message: "Breaker is open", attrs: http, events: exception("EOPENBREAKER", "Breaker is open")}, graph.FailureRejected},
		{"Python requests: urllib3's NewConnectionError", spanSpec{attrs: http, events: exception("requests.exceptions.ConnectionError",
			"HTTPConnectionPool(host='stock', port=8080): Max retries exceeded with url: / (Caused by NewConnectionError(': Failed to establish a new connection: [Errno 111] Connection refused'))")}, graph.FailureUnreachable},
		{"Python httpx: ConnectError", spanSpec{attrs: with(map[string]any{"error.type": "httpx.ConnectError"}), events: exception("httpx.ConnectError", "[Errno 111] Connection refused")}, graph.FailureUnreachable},
		{"Go gobreaker: ErrOpenState", spanSpec{message: "circuit breaker is open", attrs: http}, graph.FailureRejected},
		{"Go hystrix: circuit open", spanSpec{message: "hystrix: circuit open", attrs: http}, graph.FailureRejected},
		{"a breaker text wins over gRPC UNAVAILABLE", spanSpec{message: "circuit breaker is open", attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": int64(14)}}, graph.FailureRejected},
		{"a timeout says neither", spanSpec{message: "context deadline exceeded", attrs: with(map[string]any{"error.type": "context.DeadlineExceeded"})}, graph.FailureUnknown},
		{"HTTP 503 says neither", spanSpec{attrs: with(map[string]any{"http.response.status_code": int64(503), "error.type": "503"})}, graph.FailureUnknown},
		{"no text at all", spanSpec{attrs: http}, graph.FailureUnknown},
		{"the text past the first KiB is not read", spanSpec{message: strings.Repeat("x", 2*failureTextMax) + "connection refused", attrs: http}, graph.FailureUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.span.name, tc.span.kind, tc.span.status = "GET", ptrace.SpanKindClient, ptrace.StatusCodeError
			got := translateOne(t, tc.span)
			if !got.Error {
				t.Fatalf("not an error")
			}
			if got.Failure != tc.want {
				t.Errorf("failure %d, want %d", got.Failure, tc.want)
			}
		})
	}
	t.Run("only failed client spans are read", func(t *testing.T) {
		for _, s := range []spanSpec{
			{name: "GET", kind: ptrace.SpanKindClient, status: ptrace.StatusCodeOk, message: "connection refused", attrs: http},
			{name: "GET /", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeError, message: "connection refused", attrs: http},
		} {
			if got := translateOne(t, s); got.Failure != graph.FailureUnknown {
				t.Errorf("%v: failure %d", s.kind, got.Failure)
			}
		}
	})
}
