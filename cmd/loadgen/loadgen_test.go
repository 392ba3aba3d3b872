package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
	"github.com/seed-a49a8342/cartograph/ingest/otlp"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// receiver is the collector's ingest path, in process: the real OTLP
// receiver on free loopback ports, semconv into a graph, broker metrics into
// a lag store.
type receiver struct {
	g    *graph.Graph
	lags *lag.Store
	r    *otlp.Receiver
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	lags, err := lag.New(lag.Options{})
	require.NoError(t, err)
	judged, err := detect.NewLagJudge(lags, detect.LagJudgeOptions{})
	require.NoError(t, err)
	g, err := graph.New(graph.Options{Lag: judged, PairTTL: time.Second})
	require.NoError(t, err)
	traces, err := semconv.NewPipeline(semconv.Options{Sink: g})
	require.NoError(t, err)
	metrics, err := brokermetrics.New(brokermetrics.Options{Lag: lags})
	require.NoError(t, err)
	r, err := otlp.New(otlp.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Traces: traces, Metrics: metrics})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
	})
	return &receiver{g: g, lags: lags, r: r}
}

func TestLoadgenScenario(t *testing.T) {
	rc := startReceiver(t)
	for _, tc := range []struct {
		protocol, client, endpoint string
	}{
		{"grpc", "raw", rc.r.GRPCAddr().String()},
		{"grpc", "pdata", rc.r.GRPCAddr().String()},
		{"http", "raw", rc.r.HTTPAddr().String()},
	} {
		t.Run(tc.protocol+"/"+tc.client, func(t *testing.T) {
			cfg, err := parseFlags([]string{"--endpoint", tc.endpoint, "--protocol", tc.protocol, "--grpc-client", tc.client,
				"--services", "30", "--fault", "retry_storm,consumer_lag", "--duration", "1500ms", "--rate", "20000",
				"--traces-per-request", "20", "--pool", "8", "--metrics-interval", "200ms"}, &bytes.Buffer{})
			require.NoError(t, err)
			var out bytes.Buffer
			st, err := run(context.Background(), cfg, &out)
			require.NoError(t, err)
			t.Log(out.String())
			require.Zero(t, st.failed.Load(), out.String())
			require.Zero(t, st.rejected.Load(), "the receiver took every span: %s", out.String())
			require.Positive(t, st.accepted.Load())
			require.Equal(t, st.sent.Load(), st.accepted.Load())
			require.GreaterOrEqual(t, st.metricReqs.Load(), int64(5))
			require.Zero(t, st.metricFailed.Load(), out.String())
			require.Contains(t, out.String(), "system: scenario: 30 services")
		})
	}
	// Replayed passes get fresh trace ids, links included: batch consumers
	// pair with their producers (a delay on their edges), and the retry
	// storm shows on its edge.
	time.Sleep(1200 * time.Millisecond)
	rc.g.Expire()
	s, err := rc.g.Snapshot(0)
	require.NoError(t, err)
	var batch, retried, lagged int
	for _, e := range s.Edges {
		if strings.HasSuffix(e.ConsumerGroup, "-batch") && e.Delay != nil {
			batch++
		}
		if e.Source == "service:edge/gateway" && e.Target == "service:shop/checkout" && e.RetryRatio > 0.5 {
			retried++
		}
		if e.Lag != nil {
			lagged++
		}
	}
	require.Positive(t, batch, "batch consumers paired by span link")
	require.Equal(t, 1, retried, "the retry storm edge: %v", edgeIDs(s))
	require.Positive(t, lagged, "broker metrics joined to consumer edges")
}

// TestPasses: --passes 1 sends the pool exactly once, so that two runs send
// the same traffic.
func TestPasses(t *testing.T) {
	rc := startReceiver(t)
	cfg, err := parseFlags([]string{"--endpoint", rc.r.GRPCAddr().String(), "--services", "12", "--pool", "6", "--workers", "2",
		"--passes", "1", "--duration", "1m", "--metrics-interval", "0", "--traces-per-request", "10"}, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	st, err := run(context.Background(), cfg, &out)
	require.NoError(t, err)
	require.Equal(t, int64(6), st.requests.Load(), out.String())
	require.Equal(t, st.sent.Load(), st.accepted.Load())
	require.Zero(t, st.metricReqs.Load())
}

// TestShapeTelemetrygen: --shape telemetrygen sends 2-span client/server
// traces in one service, which pair into one call each.
func TestShapeTelemetrygen(t *testing.T) {
	rc := startReceiver(t)
	cfg, err := parseFlags([]string{"--endpoint", rc.r.GRPCAddr().String(), "--shape", "telemetrygen", "--pool", "4", "--workers", "2",
		"--passes", "1", "--duration", "1m", "--traces-per-request", "25"}, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	st, err := run(context.Background(), cfg, &out)
	require.NoError(t, err)
	require.Contains(t, out.String(), "telemetrygen-shaped")
	require.Equal(t, int64(4*25*2), st.accepted.Load(), out.String())
	require.Zero(t, st.metricReqs.Load(), "no broker metrics without a generated system")
	s, err := rc.g.Snapshot(0)
	require.NoError(t, err)
	var calls uint64
	for _, e := range s.Edges {
		calls += e.Requests
	}
	require.Equal(t, uint64(4*25), calls, "one call per trace: %v", edgeIDs(s))
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--fault", "meltdown"},
		{"--services", "3"},
		{"--services", "0", "--fault", "bottleneck"},
		{"--metrics-interval", "-1s"},
		{"--passes", "-1"},
		{"--shape", "tidy"},
		{"--shape", "telemetrygen", "--fault", "bottleneck"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, err := parseFlags(args, &bytes.Buffer{})
			require.Error(t, err)
		})
	}
}

func edgeIDs(s *graph.Snapshot) string {
	var b strings.Builder
	for _, e := range s.Edges {
		fmt.Fprintf(&b, "%s %.2f\n", e.ID, e.RetryRatio)
	}
	return b.String()
}
