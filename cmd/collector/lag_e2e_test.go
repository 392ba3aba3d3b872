package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// kafkaLagMetrics is what the OpenTelemetry Collector's kafkametrics
// receiver sends for one group on one partition.
func kafkaLagMetrics(at time.Time, lagMsgs, committed int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kafkametricsreceiver")
	gauge := func(name string, v int64, attrs map[string]any) {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetIntValue(v)
		_ = dp.Attributes().FromRaw(attrs)
	}
	part := map[string]any{"group": "billing", "topic": "orders", "partition": int64(0)}
	gauge("kafka.consumer_group.lag", lagMsgs, part)
	gauge("kafka.consumer_group.offset", committed, part)
	gauge("kafka.partition.current_offset", committed+lagMsgs, map[string]any{"topic": "orders", "partition": int64(0)})
	gauge("kafka.consumer_group.members", 1, map[string]any{"group": "billing"})
	return md
}

// TestE2EConsumerLagFromOTLPMetrics sends the kafkametrics receiver's
// metrics for a group that falls behind, over OTLP/gRPC, and checks the lag
// lands on the traced consumer edge, consumer_lag fires within three
// evaluation intervals of the lag starting to grow, and resolves once the
// group catches up.
func TestE2EConsumerLagFromOTLPMetrics(t *testing.T) {
	const interval = time.Second
	// Lag is judged once it has grown over half the window (see
	// graph/lag): a 2s window keeps the test short.
	col := startCollector(t, "--eval-interval=1s", "--window=2s", "--bucket=500ms")

	// The async edge, from traces.
	tp := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "shop", "")
	billing := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "billing", "")
	ctx := context.Background()
	sendTraces := func() {
		pctx, p := tp.Tracer("e2e").Start(ctx, "publish orders", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "orders")))
		p.End()
		_, c := billing.Tracer("e2e").Start(ctx, "process orders", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.Link{SpanContext: trace.SpanContextFromContext(pctx)}),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "orders"),
				attribute.String("messaging.consumer.group.name", "billing")))
		c.End()
		require.NoError(t, tp.ForceFlush(ctx))
		require.NoError(t, billing.ForceFlush(ctx))
	}

	conn, err := grpc.NewClient(col.OTLPGRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	metrics := pmetricotlp.NewGRPCClient(conn)
	send := func(lagMsgs, committed int64) {
		resp, err := metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(kafkaLagMetrics(time.Now(), lagMsgs, committed)))
		require.NoError(t, err)
		require.Zero(t, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())
	}

	firing := func() *wireFinding {
		for _, f := range getFindings(t, col, "firing") {
			if f.Kind == "consumer_lag" {
				return &f
			}
		}
		return nil
	}
	// Healthy first: the group keeps up.
	for i := range 3 {
		sendTraces()
		send(0, int64(100*i))
		time.Sleep(300 * time.Millisecond)
	}
	require.Nil(t, firing())

	// The group falls behind: lag grows on every reading.
	onset := time.Now()
	var found *wireFinding
	for i := int64(1); found == nil && time.Since(onset) < 10*time.Second; i++ {
		sendTraces()
		send(50*i, 300+10*i)
		time.Sleep(250 * time.Millisecond)
		found = firing()
	}
	require.NotNil(t, found, "consumer_lag did not fire")
	latency := time.Since(onset)
	t.Logf("consumer_lag fired %v after the lag started growing (eval interval %v)", latency, interval)
	// Growth must span half the window (1s) before it is judged, then the
	// finding is pending for one interval: at most three intervals more,
	// plus one loop of this test (it sends traces and metrics and polls,
	// slow under -race on a loaded machine).
	require.LessOrEqual(t, latency, time.Second+3*interval+time.Second)
	require.Equal(t, "warning", found.Severity)
	require.Equal(t, map[string]string{"source": "orders", "target": "billing", "edge_id": "topic:kafka/orders->service:billing kafka @billing"}, found.Subject)
	require.Equal(t, "broker_metrics", found.Evidence["source"])

	g := getGraph(t, col)
	e := g.edge("topic:kafka/orders", "service:billing")
	require.NotNil(t, e, g.String())
	require.NotNil(t, e.Lag, "lag on the traced consumer edge")

	// It catches up: lag back to 0, and the finding resolves.
	require.Eventually(t, func() bool {
		send(0, 10_000)
		for _, f := range getFindings(t, col, "resolved") {
			if f.ID == found.ID {
				return true
			}
		}
		return false
	}, 15*time.Second, 250*time.Millisecond, "consumer_lag never resolved")
}
