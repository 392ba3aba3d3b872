// Package ingest holds the contracts between cartograph's receivers and what
// consumes their data: one-method consumers for traces and metrics, and the
// error classes that receivers turn into OTLP responses (partial success,
// backpressure, permanent rejection).
package ingest

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TracesConsumer consumes decoded traces. The consumer must not keep td, or
// anything reachable from it, after ConsumeTraces returns. It may be called
// from many goroutines at once.
type TracesConsumer interface {
	ConsumeTraces(ctx context.Context, td ptrace.Traces) error
}

// TracesProtoDecoder is a TracesConsumer that reads OTLP/protobuf trace
// export requests itself, from their bytes, instead of taking pdata's
// objects: receivers hand it the protobuf requests (gRPC, and HTTP with
// Content-Type application/x-protobuf) and keep ConsumeTraces for the
// rest (OTLP/JSON). It may be called from many goroutines at once.
type TracesProtoDecoder interface {
	TracesConsumer
	// DecodeTracesProto reads body, an ExportTraceServiceRequest. It
	// fails for a request pdata's decoder would refuse (the receiver
	// answers it as malformed) and for one nested too deep. Otherwise the
	// result may alias body: the caller must keep body unchanged until it
	// calls Release on the result.
	DecodeTracesProto(body []byte) (DecodedTraces, error)
}

// TracesJSONDecoder is a TracesConsumer that reads OTLP/JSON trace export
// requests itself, from their bytes: the HTTP receiver hands it the
// requests with Content-Type application/json. It may be called from
// many goroutines at once.
type TracesJSONDecoder interface {
	TracesConsumer
	// DecodeTracesJSON reads body, an ExportTraceServiceRequest in
	// OTLP/JSON. It fails for a request pdata's JSON decoder would refuse
	// and for one nested too deep. Otherwise the result may alias body:
	// the caller must keep body unchanged until it calls Release on the
	// result.
	DecodeTracesJSON(body []byte) (DecodedTraces, error)
}

// DecodedTraces is a trace request read by a TracesProtoDecoder or a
// TracesJSONDecoder.
type DecodedTraces interface {
	// SpanCount is the number of spans in the request, as
	// ptrace.Traces.SpanCount counts them.
	SpanCount() int
	// Consume hands the request on, as ConsumeTraces does, with the same
	// errors. It may be called once, and not after Release.
	Consume(ctx context.Context) error
	// Release ends the caller's use of the request, consumed or not; the
	// decoder may reuse what it holds, and the caller may reuse the body.
	Release()
}

// MetricsConsumer consumes decoded metrics. The consumer must not keep md, or
// anything reachable from it, after ConsumeMetrics returns. It may be called
// from many goroutines at once.
type MetricsConsumer interface {
	ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error
}

// ErrOverloaded means the pipeline is full right now; the sender should retry
// later. Receivers answer gRPC RESOURCE_EXHAUSTED / HTTP 429 with a retry delay.
var ErrOverloaded = errors.New("ingest: pipeline overloaded, retry later")

// ErrUnavailable means the pipeline cannot take data (shutting down, or its
// storage is down and the buffer is full); the sender should retry. Receivers
// answer gRPC UNAVAILABLE / HTTP 503.
var ErrUnavailable = errors.New("ingest: pipeline unavailable, retry later")

// PartialError reports that a request was accepted except for Rejected items
// (spans or data points). Receivers answer success with an OTLP partial_success
// carrying Rejected and Reason; senders must not retry it.
type PartialError struct {
	Rejected int64
	Reason   string
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("ingest: %d items rejected: %s", e.Rejected, e.Reason)
}

// permanent marks an error the sender must not retry.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// NewPermanent wraps err so IsPermanent reports true: the data is bad and
// retrying it cannot help (receivers answer gRPC INVALID_ARGUMENT / HTTP 400).
func NewPermanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was made by NewPermanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
