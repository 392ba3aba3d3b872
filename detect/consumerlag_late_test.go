package detect

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestConsumerLagFromTracesPastThePairTTL: a consumer without broker
// metrics falls further and further behind, until its messages wait far
// longer than the pair TTL (whose producer half-edges are long gone when
// they are consumed). The trace-based judgement must keep seeing the delay
// grow and keep the finding, not go blind and resolve as it gets worse.
func TestConsumerLagFromTracesPastThePairTTL(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	g, err := graph.New(graph.Options{Now: func() time.Time { return now }}) // default window 1m, pair TTL 10s
	require.NoError(t, err)
	d := NewConsumerLag(ConsumerLagOptions{})
	orders := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}

	const produceRate, consumeRate = 10, 6 // per second
	type msg struct {
		tr  graph.TraceID
		end int64
	}
	var queue []msg
	var n uint32
	fired := time.Duration(0)
	for sec := 1; sec <= 240; sec++ {
		now = t0.Add(time.Duration(sec) * time.Second)
		var spans []graph.Span
		for i := range produceRate {
			n++
			tr := graph.TraceID{byte(n), byte(n >> 8), byte(n >> 16), 1}
			end := now.Add(time.Duration(i) * 100 * time.Millisecond).UnixNano()
			spans = append(spans, graph.Span{Trace: tr, ID: graph.SpanID{1}, Kind: graph.SpanProducer, Service: "shop",
				Start: end - 1e6, End: end, Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: orders})
			queue = append(queue, msg{tr, end})
		}
		for i := 0; i < consumeRate && len(queue) > 0; i++ {
			m := queue[0]
			queue = queue[1:]
			start := now.Add(time.Duration(i) * 150 * time.Millisecond).UnixNano()
			spans = append(spans, graph.Span{Trace: m.tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanConsumer, Service: "billing",
				Start: start, End: start + 5e6, Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: orders, ConsumerGroup: "billing"})
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		if sec%5 != 0 {
			continue
		}
		s, err := g.Snapshot(0)
		require.NoError(t, err)
		obs := d.Detect(context.Background(), s)
		at := time.Duration(sec) * time.Second
		if fired == 0 && len(obs) > 0 {
			fired = at
		}
		if fired > 0 && at > fired {
			require.Len(t, obs, 1, "at %v (delay %.0fs): the finding must hold while the consumer falls further behind", at,
				float64(now.UnixNano()-queue[0].end)/1e9)
			require.Equal(t, "traces", obs[0].Evidence["source"])
		}
	}
	require.NotZero(t, fired, "falling behind by minutes is seen from traces")
	require.Greater(t, float64(now.UnixNano()-queue[0].end)/1e9, 60.0, "the messages waited far past the pair TTL")
}
