package otlp

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestHeapBound: above MaxHeapBytes of live heap every export is refused
// as backpressure on both transports and counted; below it, served.
func TestHeapBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  int64
		refuse bool
	}{
		{"live heap above the bound", 1 << 10, true}, // any process has more than 1 KiB live
		{"live heap within the bound", 1 << 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startReceiver(t, func(o *Options) { o.MaxHeapBytes = tc.limit })
			runtime.GC() // the live heap is what the last collection found
			time.Sleep(2 * readEvery)
			res, err := postOTLP(tr.httpURL(pathTraces), contentTypeProto, "", encodeRequest(t, signalTraces, contentTypeProto, 3))
			require.NoError(t, err)
			_, gerr := exportTraces(tr.grpcConn(t), makeTraces(3))
			if !tc.refuse {
				require.Equal(t, http.StatusOK, res.code)
				require.NoError(t, gerr)
				require.Zero(t, tr.metric(t, "cartograph_receiver_memory_refusals_total", nil))
				return
			}
			require.Equal(t, http.StatusTooManyRequests, res.code, "body %q", res.body)
			require.NotEmpty(t, res.header.Get("Retry-After"))
			require.Contains(t, errorStatus(t, res).GetMessage(), "memory above its bound")
			require.Equal(t, codes.ResourceExhausted, status.Code(gerr), "error %v", gerr)
			require.Equal(t, 2.0, tr.metric(t, "cartograph_receiver_memory_refusals_total", nil))
			spans, _ := tr.sink.counts()
			require.Zero(t, spans, "nothing reached the consumer")
		})
	}
}
