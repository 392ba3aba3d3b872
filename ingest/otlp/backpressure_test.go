package otlp

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBackpressure(t *testing.T) {
	// One request holds the only in-flight slot; every other request, on
	// either transport and for either signal, is refused at once.
	for _, holder := range []string{transportHTTP, transportGRPC} {
		t.Run("held by "+holder, func(t *testing.T) {
			tr := startReceiver(t, func(o *Options) { o.MaxInFlight = 1 })
			cc := tr.grpcConn(t)
			body := encodeRequest(t, signalTraces, contentTypeProto, 1)
			unblock := tr.sink.block()
			defer unblock()

			held := make(chan error, 1)
			go func() {
				if holder == transportHTTP {
					res, err := postOTLP(tr.httpURL(pathTraces), contentTypeProto, "", body)
					if err == nil && res.code != http.StatusOK {
						err = status.Errorf(codes.Unknown, "HTTP %d", res.code)
					}
					held <- err
					return
				}
				_, err := exportTraces(cc, makeTraces(1))
				held <- err
			}()
			<-tr.sink.entered
			require.Equal(t, 1.0, tr.metric(t, "cartograph_receiver_in_flight_requests", nil))

			for _, signal := range []string{signalTraces, signalMetrics} {
				start := time.Now()
				res, err := postOTLP(tr.httpURL(signalPath(signal)), contentTypeJSON, "", encodeRequest(t, signal, contentTypeJSON, 2))
				require.NoError(t, err)
				require.Equal(t, http.StatusTooManyRequests, res.code, "body %q", res.body)
				require.Equal(t, "2", res.header.Get("Retry-After"))
				st := errorStatus(t, res)
				require.Equal(t, int32(codes.ResourceExhausted), st.GetCode())
				require.Contains(t, st.GetMessage(), "too many export requests in flight")

				_, _, err = export(cc, signal, 2)
				require.Equal(t, codes.ResourceExhausted, status.Code(err), "error %v", err)
				d, ok := grpcRetryDelay(t, err)
				require.True(t, ok, "RetryInfo detail")
				require.Equal(t, 1500*time.Millisecond, d)
				require.Less(t, time.Since(start), 2*time.Second, "refusals are immediate")

				refused := lbl("signal", signal, "outcome", "refused")
				refused["transport"] = "http"
				require.Equal(t, 1.0, tr.metric(t, "cartograph_receiver_requests_total", refused))
				refused["transport"] = "grpc"
				require.Equal(t, 1.0, tr.metric(t, "cartograph_receiver_requests_total", refused))
				// Both refuse before reading the message (gRPC in its tap handle).
				require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_items_total", lbl("transport", "grpc", "signal", signal, "result", "refused")))
				require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_items_total", lbl("transport", "http", "signal", signal, "result", "refused")))
			}
			spans, points := tr.sink.counts()
			require.Zero(t, spans+points, "refused requests never reach the consumer")

			unblock()
			require.NoError(t, <-held)
			require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_in_flight_requests", nil))

			res, err := postOTLP(tr.httpURL(pathTraces), contentTypeProto, "", body)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.code)
			_, _, err = export(cc, signalMetrics, 2)
			require.NoError(t, err)
			spans, points = tr.sink.counts()
			require.Equal(t, 2, spans)
			require.Equal(t, 2, points)
		})
	}
}
