package otlp

import (
	"context"
	"errors"
	"google.golang.org/grpc/tap"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/seed-a49a8342/cartograph/ingest"
)

// grpcMethodSignal returns the signal of an OTLP export RPC given its full
// gRPC method name, and false for any other method.
func grpcMethodSignal(fullMethod string) (string, bool) {
	switch fullMethod {
	case "/opentelemetry.proto.collector.trace.v1.TraceService/Export":
		return signalTraces, true
	case "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export":
		return signalMetrics, true
	}
	return "", false
}

// grpcTraces serves OTLP TraceService/Export.
type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	r        *Receiver
	consumer ingest.TracesConsumer
}

func (s *grpcTraces) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	td := req.Traces()
	res, err := s.r.serveGRPC(ctx, signalTraces, batch{
		items:   int64(td.SpanCount()),
		consume: func(ctx context.Context) error { return s.consumer.ConsumeTraces(ctx, td) },
	})
	resp := ptraceotlp.NewExportResponse()
	if err != nil {
		return resp, err
	}
	if res.verdict == verdictPartial {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(res.rejected)
		ps.SetErrorMessage(res.message)
	}
	return resp, nil
}

// grpcMetrics serves OTLP MetricsService/Export.
type grpcMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	r        *Receiver
	consumer ingest.MetricsConsumer
}

func (s *grpcMetrics) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := req.Metrics()
	res, err := s.r.serveGRPC(ctx, signalMetrics, batch{
		items:   int64(md.DataPointCount()),
		consume: func(ctx context.Context) error { return s.consumer.ConsumeMetrics(ctx, md) },
	})
	resp := pmetricotlp.NewExportResponse()
	if err != nil {
		return resp, err
	}
	if res.verdict == verdictPartial {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(res.rejected)
		ps.SetErrorMessage(res.message)
	}
	return resp, nil
}

// serveGRPC runs one decoded gRPC export request through the limiter and the
// consumer and records it. It returns the result and, for a failure, the
// gRPC status error to answer with.
func (r *Receiver) serveGRPC(ctx context.Context, signal string, b batch) (result, error) {
	start := time.Now()
	if st, ok := ctx.Value(rpcStateKey{}).(*rpcState); ok {
		st.handled.Store(true)
	}
	var res result
	if r.limiter.tryAcquire() {
		func() {
			defer r.limiter.release()
			res = r.export(ctx, transportGRPC, signal, b)
		}()
	} else {
		// gRPC decodes the message before calling us, so its items are known.
		res = limited()
		r.countItems(ctx, transportGRPC, signal, itemsRefused, b.items)
	}
	r.metrics.request(transportGRPC, signal, res.verdict.outcome(), time.Since(start))
	if st := r.status(res); st != nil {
		return res, st.Err()
	}
	return res, nil
}

// rpcStateKey is the context key of an export RPC's *rpcState.
type rpcStateKey struct{}

// rpcState tracks one export RPC between the stats handler and serveGRPC.
type rpcState struct {
	signal  string
	handled atomic.Bool // serveGRPC was reached and recorded the request
}

// grpcStats is a gRPC stats handler that records export RPCs that gRPC
// itself refused before they reached serveGRPC: messages above
// MaxRequestBytes (compressed or not), undecodable messages or compression,
// unknown compressors, senders that gave up.
type grpcStats struct{ r *Receiver }

func (h grpcStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	signal, ok := grpcMethodSignal(info.FullMethodName)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, rpcStateKey{}, &rpcState{signal: signal})
}

func (h grpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok || end.Error == nil {
		return
	}
	st, ok := ctx.Value(rpcStateKey{}).(*rpcState)
	if !ok || st.handled.Load() {
		return
	}
	outcome, reason := outcomeBadRequest, reasonMalformed
	switch code := status.Code(end.Error); {
	case code == codes.ResourceExhausted:
		outcome, reason = outcomeTooLarge, reasonTooLarge
	case code == codes.Unimplemented:
		outcome, reason = outcomeUnsupportedMedia, reasonUnsupportedEncoding
	case code == codes.Canceled || code == codes.DeadlineExceeded,
		errors.Is(end.Error, context.Canceled), errors.Is(end.Error, context.DeadlineExceeded):
		outcome, reason = outcomeCanceled, ""
	}
	if reason != "" {
		h.r.metrics.badRequest(transportGRPC, st.signal, reason)
	}
	h.r.metrics.request(transportGRPC, st.signal, outcome, end.EndTime.Sub(end.BeginTime))
}

func (grpcStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (grpcStats) HandleConn(context.Context, stats.ConnStats) {}

// tapGRPC refuses an RPC before gRPC reads its message when it lacks a
// valid bearer token (with Options.Auth), or, for an export RPC, when every
// in-flight slot is taken, so a burst of large requests is not all held in
// memory at once only to be refused after decoding.
func (r *Receiver) tapGRPC(ctx context.Context, info *tap.Info) (context.Context, error) {
	if r.opts.Auth != nil {
		var err error
		if ctx, err = r.authGRPC(ctx, info.Header, info.FullMethodName); err != nil {
			return ctx, err
		}
	}
	signal, ok := grpcMethodSignal(info.FullMethodName)
	if !ok || !r.limiter.full() {
		return ctx, nil
	}
	res := limited()
	r.metrics.request(transportGRPC, signal, res.verdict.outcome(), 0)
	return ctx, r.status(res).Err()
}
