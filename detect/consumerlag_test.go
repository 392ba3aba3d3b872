package detect

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// lagScenario builds a graph with a kafka topic "orders" consumed by group
// "billing" (seen in traces) and a lag store fed with one reading every 10s
// for the last minute, lag and committed offsets given per reading.
func lagScenario(t *testing.T, lags, committed []float64, consumers float64, age time.Duration) *graph.Snapshot {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := lag.New(lag.Options{Now: clock})
	require.NoError(t, err)
	var samples []lag.Sample
	for i := range lags {
		at := now.Add(-age).Add(time.Duration(i-len(lags)+1) * 10 * time.Second)
		samples = append(samples, lag.Sample{Time: at, Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: 0},
			Lag: lags[i], Committed: committed[i], End: committed[i] + lags[i], Consumers: consumers,
			Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka"})
	}
	require.Zero(t, store.Add(samples))
	g, err := graph.New(graph.Options{Now: clock, Lag: store})
	require.NoError(t, err)
	orders := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}
	rej, why := g.ConsumeSpans([]graph.Span{
		{Trace: graph.TraceID{1}, ID: graph.SpanID{1}, Kind: graph.SpanProducer, Service: "shop", End: 1e6, Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: orders},
		{Trace: graph.TraceID{1}, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanConsumer, Service: "billing", Start: 2e6, End: 3e6, Protocol: graph.ProtocolKafka, Destination: orders, ConsumerGroup: "billing"},
	})
	require.Zero(t, rej, why)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	return s
}

func TestConsumerLagFromBrokerMetrics(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lags      []float64
		committed []float64
		consumers float64
		age       time.Duration
		want      Severity // 0: no finding
		status    string
	}{
		{name: "falling behind", lags: []float64{100, 200, 300, 400, 500, 600, 700}, committed: []float64{1000, 1100, 1200, 1300, 1400, 1500, 1600}, consumers: 1, want: SeverityWarning, status: "warning"},
		{name: "stalled", lags: []float64{100, 150, 200, 250, 300, 350, 400}, committed: []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000}, consumers: 1, want: SeverityCritical, status: "stalled"},
		{name: "stopped", lags: []float64{100, 150, 200, 250, 300, 350, 400}, committed: []float64{1000, 1010, 1020, 1030, 1040, 1050, 1060}, consumers: 0, want: SeverityCritical, status: "stopped"},
		{name: "behind but catching up", lags: []float64{700, 600, 500, 400, 300, 200, 100}, committed: []float64{1000, 1200, 1400, 1600, 1800, 2000, 2200}, consumers: 1},
		{name: "idle topic", lags: []float64{0, 0, 0, 0, 0, 0, 0}, committed: []float64{50, 50, 50, 50, 50, 50, 50}, consumers: 1},
		{name: "recently caught up", lags: []float64{10, 0, 20, 0, 0, 10, 20}, committed: []float64{40, 50, 50, 70, 70, 70, 70}, consumers: 1},
		{name: "batch committer saw-tooth", lags: []float64{0, 40, 80, 0, 40, 80, 0}, committed: []float64{0, 0, 0, 80, 80, 80, 160}, consumers: 1},
		{name: "poller down: stale, not judged", lags: []float64{100, 200, 300, 400, 500, 600, 700}, committed: []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000}, consumers: 1, age: 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := lagScenario(t, tc.lags, tc.committed, tc.consumers, tc.age)
			obs := NewConsumerLag(ConsumerLagOptions{}).Detect(context.Background(), s)
			if tc.want == 0 {
				require.Empty(t, obs)
				return
			}
			require.Len(t, obs, 1)
			o := obs[0]
			require.Equal(t, KindConsumerLag, o.Kind)
			require.Equal(t, tc.want, o.Severity)
			require.Equal(t, Subject{Source: "orders", Target: "billing", EdgeID: "topic:kafka/orders->service:billing kafka @billing"}, o.Subject)
			require.Equal(t, tc.status, o.Evidence["status"])
			require.Equal(t, tc.lags[len(tc.lags)-1], o.Evidence["lag_messages"])
			require.Contains(t, o.Summary, "billing")
			require.Contains(t, o.Summary, "orders")
		})
	}
}

func TestConsumerLagThresholds(t *testing.T) {
	secs, drain := 400.0, 50.0
	msgs := 10.0
	s := &graph.Snapshot{}
	e := graph.Edge{ID: "topic:kafka/orders->service:billing kafka @billing", Source: "topic:kafka/orders", Target: "service:billing",
		Kind: graph.EdgeAsync, ConsumerGroup: "billing", Lag: &graph.Lag{Status: lag.StateOK, Messages: &msgs, Seconds: &secs, DrainSeconds: &drain}}
	s = snapshotOf(t, []graph.Node{{ID: "topic:kafka/orders", Kind: graph.NodeTopic, Name: "orders"}, {ID: "service:billing", Kind: graph.NodeService, Name: "billing"}}, e)
	obs := NewConsumerLag(ConsumerLagOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 1, "400s behind is over the 300s default even if not growing")
	require.Equal(t, 300.0, obs[0].Evidence["max_seconds"])
	obs = NewConsumerLag(ConsumerLagOptions{MaxSeconds: 600}).Detect(context.Background(), s)
	require.Empty(t, obs)
}

// snapshotOf builds a snapshot from nodes and edges through JSON, the way
// a remote reader sees it, so thresholds can be tested on exact numbers.
func snapshotOf(t *testing.T, nodes []graph.Node, edges ...graph.Edge) *graph.Snapshot {
	t.Helper()
	return graph.NewSnapshot(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, nodes, edges)
}

func TestConsumerLagFromTraces(t *testing.T) {
	d := NewConsumerLag(ConsumerLagOptions{})
	mk := func(delayP95, consumeRate float64) *graph.Snapshot {
		nodes := []graph.Node{{ID: "service:shop", Kind: graph.NodeService, Name: "shop"}, {ID: "topic:kafka/orders", Kind: graph.NodeTopic, Name: "orders"}, {ID: "service:billing", Kind: graph.NodeService, Name: "billing"}}
		return snapshotOf(t, nodes,
			graph.Edge{ID: "service:shop->topic:kafka/orders kafka", Source: "service:shop", Target: "topic:kafka/orders", Kind: graph.EdgeAsync, RatePerS: 100},
			graph.Edge{ID: "topic:kafka/orders->service:billing kafka @billing", Source: "topic:kafka/orders", Target: "service:billing", Kind: graph.EdgeAsync, ConsumerGroup: "billing",
				RatePerS: consumeRate, Delay: &graph.Quantiles{P50: delayP95 / 2, P95: delayP95, P99: delayP95}})
	}
	ctx := context.Background()
	// A look-alike first: a long but steady delay, consuming as fast as produced.
	for range 5 {
		require.Empty(t, d.Detect(ctx, mk(20_000, 100)))
	}
	// Then the consumer slows and the delay grows tick after tick.
	var obs []Observation
	for i, delay := range []float64{21_000, 30_000, 45_000, 60_000} {
		obs = d.Detect(ctx, mk(delay, 60))
		if i < 2 {
			require.Empty(t, obs, "growth must hold for three ticks")
		}
	}
	require.Len(t, obs, 1)
	require.Equal(t, "traces", obs[0].Evidence["source"])
	require.Equal(t, 60_000.0, obs[0].Evidence["delay_p95_ms"])
	require.Equal(t, SeverityWarning, obs[0].Severity)
}
