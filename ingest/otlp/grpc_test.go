package otlp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
)

// exportTraces and exportMetrics call Export with a real OTLP gRPC client.
// They do not touch t, so they may run in any goroutine.
func exportTraces(cc *grpc.ClientConn, td ptrace.Traces, opts ...grpc.CallOption) (ptraceotlp.ExportResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ptraceotlp.NewGRPCClient(cc).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td), opts...)
}

func exportMetrics(cc *grpc.ClientConn, md pmetric.Metrics, opts ...grpc.CallOption) (pmetricotlp.ExportResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pmetricotlp.NewGRPCClient(cc).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), opts...)
}

// export sends n items of signal and returns the partial success fields.
func export(cc *grpc.ClientConn, signal string, n int, opts ...grpc.CallOption) (rejected int64, msg string, err error) {
	if signal == signalMetrics {
		resp, err := exportMetrics(cc, makeMetrics(n), opts...)
		if err != nil {
			return 0, "", err
		}
		return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage(), nil
	}
	resp, err := exportTraces(cc, makeTraces(n), opts...)
	if err != nil {
		return 0, "", err
	}
	return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage(), nil
}

func grpcRetryDelay(t *testing.T, err error) (time.Duration, bool) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

func TestGRPCExport(t *testing.T) {
	tr := startReceiver(t, nil)
	cc := tr.grpcConn(t)
	for _, signal := range []string{signalTraces, signalMetrics} {
		for _, compressed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", signal, compressed), func(t *testing.T) {
				var opts []grpc.CallOption
				if compressed {
					opts = append(opts, grpc.UseCompressor(gzip.Name))
				}
				spans0, points0 := tr.sink.counts()
				rejected, msg, err := export(cc, signal, 4, opts...)
				require.NoError(t, err)
				require.Zero(t, rejected)
				require.Empty(t, msg)
				spans, points := tr.sink.counts()
				if signal == signalTraces {
					require.Equal(t, spans0+4, spans)
					require.Equal(t, "GET /cart", tr.sink.lastTraces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())
				} else {
					require.Equal(t, points0+4, points)
				}
			})
		}
	}
	for _, signal := range []string{signalTraces, signalMetrics} {
		require.Equal(t, 2.0, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "grpc", "signal", signal, "outcome", "success")))
		require.Equal(t, 8.0, tr.metric(t, "cartograph_receiver_items_total", lbl("transport", "grpc", "signal", signal, "result", "accepted")))
	}
}

func TestGRPCErrorMapping(t *testing.T) {
	tr := startReceiver(t, nil)
	cc := tr.grpcConn(t)
	for _, tc := range errorCases {
		for _, signal := range []string{signalTraces, signalMetrics} {
			t.Run(tc.name+"/"+signal, func(t *testing.T) {
				tr.sink.setErr(tc.err)
				defer tr.sink.setErr(nil)
				items0 := tr.itemCounts(t, "grpc", signal)
				outcome0 := tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "grpc", "signal", signal, "outcome", tc.outcome))

				rejected, msg, err := export(cc, signal, 5)
				require.Equal(t, tc.grpcCode, status.Code(err), "error %v", err)
				if tc.grpcCode == codes.OK {
					require.Equal(t, tc.rejected, rejected)
					require.Contains(t, msg, tc.msg)
				} else {
					require.Contains(t, status.Convert(err).Message(), tc.msg)
					d, ok := grpcRetryDelay(t, err)
					require.Equal(t, tc.retry, ok, "RetryInfo detail")
					if ok {
						require.Equal(t, 1500*time.Millisecond, d)
					}
				}
				requireItemsDelta(t, items0, tr.itemCounts(t, "grpc", signal), tc.itemsDelta)
				require.Equal(t, outcome0+1, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "grpc", "signal", signal, "outcome", tc.outcome)))
			})
		}
	}
}

func TestGRPCTooLarge(t *testing.T) {
	const limit = 1 << 20
	tr := startReceiver(t, func(o *Options) { o.MaxRequestBytes = limit })
	cc := tr.grpcConn(t)
	big := makeTraces(1)
	big.ResourceSpans().At(0).Resource().Attributes().PutStr("padding", strings.Repeat("a", 2*limit))

	tests := []struct {
		name string
		opts []grpc.CallOption
	}{
		{name: "uncompressed"},
		{name: "gzip, small on the wire", opts: []grpc.CallOption{grpc.UseCompressor(gzip.Name)}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := exportTraces(cc, big, tc.opts...)
			require.Equal(t, codes.ResourceExhausted, status.Code(err), "error %v", err)
			tr.eventually(t, "cartograph_receiver_bad_requests_total", lbl("transport", "grpc", "signal", "traces", "reason", "too_large"), float64(i+1))
			tr.eventually(t, "cartograph_receiver_requests_total", lbl("transport", "grpc", "signal", "traces", "outcome", "too_large"), float64(i+1))

			// The receiver keeps serving.
			_, err = exportTraces(cc, makeTraces(1), tc.opts...)
			require.NoError(t, err)
		})
	}
	spans, _ := tr.sink.counts()
	require.Equal(t, 2, spans, "only the small requests reached the consumer")
}

// rawCodec sends []byte messages as they are, to send malformed protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func TestGRPCMalformed(t *testing.T) {
	tr := startReceiver(t, nil)
	cc := tr.grpcConn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var reply []byte
	err := cc.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
		[]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}, &reply, grpc.ForceCodec(rawCodec{}))
	require.Error(t, err)
	require.NotEqual(t, codes.OK, status.Code(err))
	tr.eventually(t, "cartograph_receiver_bad_requests_total", lbl("transport", "grpc", "signal", "traces", "reason", "malformed"), 1)

	_, err = exportTraces(cc, makeTraces(1))
	require.NoError(t, err, "the receiver keeps serving")
}

func TestGRPCDisabledSignal(t *testing.T) {
	tr := startReceiver(t, func(o *Options) { o.Metrics = nil })
	cc := tr.grpcConn(t)
	_, err := exportMetrics(cc, makeMetrics(1))
	require.Equal(t, codes.Unimplemented, status.Code(err), "error %v", err)
	_, err = exportTraces(cc, makeTraces(1))
	require.NoError(t, err)
}
