package otlp

import (
	"context"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/seed-a49a8342/cartograph/ingest"
)

// grpcWireTraces serves OTLP TraceService/Export for a consumer that reads
// protobuf requests itself (ingest.TracesProtoDecoder): gRPC hands the
// receiver's codec the request's bytes, the consumer reads them, and no
// pdata object is built.
type grpcWireTraces struct {
	r       *Receiver
	decoder ingest.TracesProtoDecoder
}

// wireTracesDesc is the TraceService as pdata's generated code describes
// it, with a handler that decodes into a wireTraceRequest.
var wireTracesDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler:    wireTracesExport,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// wireTraceRequest is the request message of wireTracesDesc: what the
// codec decoded, and the buffer holding the request's bytes, which the
// decoded spans alias. The handler owns both from the codec's Unmarshal
// until it returns, and frees them then.
type wireTraceRequest struct {
	decoder ingest.TracesProtoDecoder
	decoded ingest.DecodedTraces
	buf     mem.Buffer
}

// free releases the decoded request, then its bytes.
func (w *wireTraceRequest) free() {
	if w.decoded != nil {
		w.decoded.Release()
		w.decoded = nil
	}
	if w.buf != nil {
		w.buf.Free()
		w.buf = nil
	}
}

// encodedMessage is a response message already encoded, which the
// codec sends as it is.
type encodedMessage []byte

// wireTracesExport is the gRPC method handler of wireTracesDesc. The
// receiver installs no interceptors.
func wireTracesExport(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*grpcWireTraces)
	req := &wireTraceRequest{decoder: s.decoder}
	if err := dec(req); err != nil {
		return nil, err
	}
	defer req.free()
	d := req.decoded
	res, err := s.r.serveGRPC(ctx, signalTraces, batch{items: int64(d.SpanCount()), consume: d.Consume})
	if err != nil {
		return nil, err
	}
	if res.verdict != verdictPartial {
		// An ExportTraceServiceResponse without partial success
		// encodes to no bytes.
		return encodedMessage(nil), nil
	}
	resp := ptraceotlp.NewExportResponse()
	ps := resp.PartialSuccess()
	ps.SetRejectedSpans(res.rejected)
	ps.SetErrorMessage(res.message)
	b, err := resp.MarshalProto()
	if err != nil {
		return nil, err
	}
	return encodedMessage(b), nil
}
