package semconv

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
)

// A failed call's error tells, in words that differ by language and
// library, whether the caller could not reach the callee or its own
// breaker turned the call away without trying. Only the texts the span
// already carries are read: error.type, the status message and the
// exception events (exception.type, exception.message), each up to
// failureTextMax bytes, and at most failureEventsMax events, so a
// hostile span costs no more than a few kilobytes of matching.
const (
	failureTextMax   = 1024
	failureEventsMax = 8
)

// rejectedTexts say the caller's breaker or bulkhead refused the call
// without trying, lower case: resilience4j (CallNotPermittedException,
// "CircuitBreaker 'x' is OPEN and does not permit further calls",
// BulkheadFullException), Polly (BrokenCircuitException,
// IsolatedCircuitException, BulkheadRejectedException), sony/gobreaker
// ("circuit breaker is open"), hystrix-go ("hystrix: circuit open"),
// opossum ("Breaker is open", EOPENBREAKER), Envoy's overflow header.
var rejectedTexts = []string{
	"callnotpermitted", "does not permit further calls", "bulkheadfull",
	"brokencircuit", "isolatedcircuit", "bulkheadrejected",
	"circuit breaker is open", "circuit breaker open", "circuitbreakeropen",
	"circuit open", "breaker is open", "eopenbreaker", "x-envoy-overflow",
}

// unreachableTexts say the caller tried and could not connect, lower
// case: Go ("dial tcp ...: connect: connection refused", "no such host",
// gRPC's "Error while dialing"), Java (java.net.ConnectException,
// NoRouteToHostException, UnknownHostException, Netty's
// AnnotatedConnectException, OkHttp's "Failed to connect to"), Node
// (ECONNREFUSED, EHOSTUNREACH, ENOTFOUND, EAI_AGAIN, ECONNRESET), Python
// (ConnectionRefusedError, urllib3's NewConnectionError "Failed to
// establish a new connection", httpx ConnectError, aiohttp "Cannot connect
// to host"), .NET ("actively refused", SocketException texts).
var unreachableTexts = []string{
	"connection refused", "econnrefused", "actively refused", "connectexception",
	"connectionrefusederror", "newconnectionerror", "failed to establish a new connection",
	"connecterror", "cannot connect to host", "failed to connect to",
	"no route to host", "noroutetohost", "ehostunreach", "network is unreachable", "enetunreach",
	"no such host", "unknownhost", "enotfound", "eai_again", "name or service not known",
	"nodename nor servname", "connection reset", "econnreset",
	"connecttimeout", "connect timed out", "dial tcp", "dial udp", "dial unix", "while dialing",
}

// failure tells why the failed call of a span with these attributes
// failed, from its status message and the texts of its exception events
// (exceptionTexts, wireExceptionTexts).
func (a *spanAttrs) failure(statusMessage string, exceptions []string) graph.Failure {
	code, ok := a.grpcStatus()
	return failureOf(a.errorType, statusMessage, exceptions, code, ok)
}

// exceptionTexts appends to dst the exception.type and exception.message
// of the exception events among the first failureEventsMax events.
func exceptionTexts(dst []string, events ptrace.SpanEventSlice) []string {
	for i := 0; i < events.Len() && i < failureEventsMax; i++ {
		ev := events.At(i)
		if ev.Name() != "exception" {
			continue
		}
		if v, ok := ev.Attributes().Get("exception.type"); ok {
			dst = append(dst, v.Str())
		}
		if v, ok := ev.Attributes().Get("exception.message"); ok {
			dst = append(dst, v.Str())
		}
	}
	return dst
}

// failureOf tells why a failed span's call failed from its error texts
// (error.type, status message, exception texts); grpcCode is its gRPC
// status code when it has one (UNAVAILABLE, 14, means unreachable when no
// text says the breaker refused it).
func failureOf(errorType, statusMessage string, exceptions []string, grpcCode int64, hasGRPC bool) graph.Failure {
	unreachable := hasGRPC && grpcCode == 14
	for i := -2; i < len(exceptions); i++ {
		var t string
		switch i {
		case -2:
			t = errorType
		case -1:
			t = statusMessage
		default:
			t = exceptions[i]
		}
		if t == "" {
			continue
		}
		t = strings.ToLower(t[:min(len(t), failureTextMax)])
		if containsAny(t, rejectedTexts) {
			return graph.FailureRejected
		}
		unreachable = unreachable || containsAny(t, unreachableTexts)
	}
	if unreachable {
		return graph.FailureUnreachable
	}
	return graph.FailureUnknown
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
