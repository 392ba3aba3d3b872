package detect

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
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
	g, err := graph.New(graph.Options{Now: clock, Lag: judgedLag(t, store)})
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
		want      finding.Severity // 0: no finding
		status    string
	}{
		{name: "falling behind", lags: []float64{100, 200, 300, 400, 500, 600, 700}, committed: []float64{1000, 1100, 1200, 1300, 1400, 1500, 1600}, consumers: 1, want: finding.SeverityWarning, status: "warning"},
		{name: "stalled", lags: []float64{100, 150, 200, 250, 300, 350, 400}, committed: []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000}, consumers: 1, want: finding.SeverityCritical, status: "stalled"},
		{name: "stopped", lags: []float64{100, 150, 200, 250, 300, 350, 400}, committed: []float64{1000, 1010, 1020, 1030, 1040, 1050, 1060}, consumers: 0, want: finding.SeverityCritical, status: "stopped"},
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
			require.Equal(t, finding.KindConsumerLag, o.Kind)
			require.Equal(t, tc.want, o.Severity)
			require.Equal(t, finding.Subject{Source: "orders", Target: "billing", EdgeID: "topic:kafka/orders->service:billing kafka @billing"}, o.Subject)
			require.Equal(t, tc.status, o.Evidence["status"])
			require.Equal(t, tc.lags[len(tc.lags)-1], o.Evidence["lag_messages"])
			require.Contains(t, o.Summary, "billing")
			require.Contains(t, o.Summary, "orders")
		})
	}
}

// TestConsumerLagKeepingPaceIsNotDraining is issue #15 1a: a group that
// keeps pace (produce = consume = 10/s on each of 12 partitions) with a lag
// of about 2 per partition has no backlog to drain. A net rate of one
// message a minute is noise, not a drain rate: dividing the lag by it gave
// "needs more than 900 s to drain" while the status said ok.
func TestConsumerLagKeepingPaceIsNotDraining(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := lag.New(lag.Options{Now: clock})
	require.NoError(t, err)
	var samples []lag.Sample
	for p := range 12 {
		for i := range 5 { // one poll every 15 s over the last minute
			l := 2.0
			if p == 0 && i == 0 {
				l = 3 // one message more a minute ago: a net gain of 1/60 per second
			}
			end := 1e6 + 150*float64(i)
			samples = append(samples, lag.Sample{Time: now.Add(time.Duration(i-4) * 15 * time.Second),
				Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: int32(p)},
				Lag: l, Committed: end - l, End: end, Consumers: 3, Produced: lag.Unknown, Consumed: lag.Unknown})
		}
	}
	require.Zero(t, store.Add(samples))
	g, err := graph.New(graph.Options{Now: clock, Lag: judgedLag(t, store)})
	require.NoError(t, err)
	s, err := g.Snapshot(0)
	require.NoError(t, err)
	var e *graph.Edge
	for i := range s.Edges {
		if s.Edges[i].Lag != nil {
			e = &s.Edges[i]
		}
	}
	require.NotNil(t, e)
	require.Equal(t, lag.StateOK, e.Lag.Status)
	require.Equal(t, 24.0, *e.Lag.Messages)
	require.Nil(t, e.Lag.DrainSeconds, "no drain time from a net rate that is noise")
	require.Equal(t, "keeping pace, 24 messages behind", e.Lag.Reason)
	require.Empty(t, NewConsumerLag(ConsumerLagOptions{}).Detect(context.Background(), s))
}

// TestConsumerLagNamesTheBrokersGroup: when traces name no group and the
// lag was joined to the consumer's edge by the broker's group name, the
// finding names that group, not the service.
func TestConsumerLagNamesTheBrokersGroup(t *testing.T) {
	msgs := 500.0
	s := snapshotOf(t, []graph.Node{{ID: "topic:kafka/orders", Kind: graph.NodeTopic, Name: "orders"}, {ID: "service:billing", Kind: graph.NodeService, Name: "billing"}},
		graph.Edge{ID: "topic:kafka/orders->service:billing kafka", Source: "topic:kafka/orders", Target: "service:billing", Kind: graph.EdgeAsync,
			Lag: &graph.Lag{Status: lag.StateStalled, Messages: &msgs, Group: "payments-prod"}})
	obs := NewConsumerLag(ConsumerLagOptions{}).Detect(context.Background(), s)
	require.Len(t, obs, 1)
	require.Equal(t, finding.Subject{Source: "orders", Target: "billing", EdgeID: "topic:kafka/orders->service:billing kafka"}, obs[0].Subject)
	require.Contains(t, obs[0].Summary, "consumer group payments-prod on orders")
	require.Equal(t, "payments-prod", obs[0].Evidence["group"])
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

// judgedLag is the store's lag with its verdict, as the collector hands
// it to the graph.
func judgedLag(t *testing.T, store *lag.Store) *LagJudge {
	t.Helper()
	j, err := NewLagJudge(store, LagJudgeOptions{})
	require.NoError(t, err)
	return j
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
	require.Equal(t, finding.SeverityWarning, obs[0].Severity)
}

// simGroup is a Kafka consumer group simulated second by second, the way
// the broker poller sees it: Poisson arrivals per partition, a consumer that
// takes a message `pipeline` seconds after it is produced, holds `inflight`
// messages it fetched but has not committed, processes at most a Poisson
// draw of its capacity per second and commits every `commitEvery` seconds.
// Each second, at tells the group what the world does.
type simGroup struct {
	parts       int
	rate        float64 // messages/s produced per partition
	capacity    float64 // messages/s the consumer can process per partition
	pipeline    int     // seconds between production and processing
	inflight    float64 // messages fetched but not committed
	commitEvery int     // seconds between commits
	pollEvery   int     // seconds between broker polls (0: 15)
	at          func(sec int, rng *rand.Rand) simAt
}

// simAt is what happens in one second of a simulation.
type simAt struct {
	rateMul   float64 // multiplier of the produce rate (bursts)
	extra     float64 // messages produced on top, per partition (a cron job)
	capMul    float64 // multiplier of the capacity (0: not consuming)
	frozen    int     // partitions 0..frozen-1 are neither processed nor committed (stalled)
	consumers float64 // group members the broker reports
}

func normal(sec int, _ *rand.Rand) simAt { return simAt{rateMul: 1, capMul: 1, consumers: 3} }

// simPartition is one partition's offsets.
type simPartition struct {
	end, processed, committed float64
	endAt                     []float64 // end offset at the last pipeline+1 seconds, ring
}

// poisson draws from a Poisson distribution of mean m (normal
// approximation above 30).
func poisson(rng *rand.Rand, m float64) float64 {
	if m <= 0 {
		return 0
	}
	if m > 30 {
		return max(0, math.Round(m+math.Sqrt(m)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-m), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// simRun drives a lag store, a graph and a detect engine, all at their
// default settings (1m window, 5s evaluations, one-interval hold, 15m
// retention, 2m stale-after) on one injected clock, from start-up for
// `seconds` of simulated time. The poller reads the group every 15 s (7 s
// past each quarter minute); traces show one message through every 5 s
// while the consumer works. After every evaluation, check sees the time,
// the engine and the readings taken so far.
func simRun(t *testing.T, g simGroup, seed uint64, seconds int, check func(now time.Time, e *Engine, last []lag.Sample) bool) {
	t.Helper()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	store, err := lag.New(lag.Options{Now: clock})
	require.NoError(t, err)
	gr, err := graph.New(graph.Options{Now: clock, Lag: judgedLag(t, store)})
	require.NoError(t, err)
	eng, err := NewEngine(EngineOptions{Detectors: []Detector{NewConsumerLag(ConsumerLagOptions{})}, Now: clock})
	require.NoError(t, err)
	world := newSimWorld(g, seed)
	orders := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}
	var last []lag.Sample
	var trace byte
	for sec := 1; sec <= seconds; sec++ {
		now = start.Add(time.Duration(sec) * time.Second)
		w, polled := world.step(sec, now)
		if polled != nil {
			last = polled
			require.Zero(t, store.Add(last))
		}
		if sec%5 == 3 {
			trace++
			tr := graph.TraceID{trace, byte(sec), byte(sec >> 8), byte(sec >> 16)}
			at := now.UnixNano()
			spans := []graph.Span{{Trace: tr, ID: graph.SpanID{1}, Kind: graph.SpanProducer, Service: "shop", Start: at - 2e6, End: at - 1e6,
				Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: orders}}
			if w.frozen < g.parts && w.capMul > 0 && w.consumers > 0 {
				spans = append(spans, graph.Span{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanConsumer, Service: "billing",
					Start: at, End: at + 3e6, Protocol: graph.ProtocolKafka, Destination: orders, ConsumerGroup: "billing"})
			}
			rej, why := gr.ConsumeSpans(spans)
			require.Zero(t, rej, why)
		}
		if sec%5 == 0 {
			s, err := gr.Snapshot(0)
			require.NoError(t, err)
			eng.Eval(context.Background(), s)
			if !check(now, eng, last) {
				return
			}
		}
	}
}

// simWorld is a simGroup's partitions as simulated time runs. It is used
// by one goroutine.
type simWorld struct {
	g         simGroup
	rng       *rand.Rand
	parts     []simPartition
	pollEvery int
	polled    []lag.Sample
}

func newSimWorld(g simGroup, seed uint64) *simWorld {
	s := &simWorld{g: g, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), parts: make([]simPartition, g.parts), pollEvery: cmp.Or(g.pollEvery, 15)}
	for i := range s.parts {
		// A topic with history: offsets far from zero.
		off := 1e6 + float64(i)*1e4
		s.parts[i] = simPartition{end: off, processed: off - g.inflight, committed: off - g.inflight, endAt: make([]float64, g.pipeline+1)}
		for j := range s.parts[i].endAt {
			s.parts[i].endAt[j] = off
		}
	}
	return s
}

// step runs second sec, ending at now: it returns what the world did and,
// when the poller read the group then (every pollEvery seconds, 7 s past),
// its readings, valid until the next step.
func (s *simWorld) step(sec int, now time.Time) (simAt, []lag.Sample) {
	g := s.g
	w := g.at(sec, s.rng)
	for i := range s.parts {
		p := &s.parts[i]
		p.end += poisson(s.rng, g.rate*w.rateMul) + w.extra
		p.endAt[sec%len(p.endAt)] = p.end
		if i < w.frozen {
			continue
		}
		ready := p.endAt[(sec+1)%len(p.endAt)] - g.inflight // produced pipeline seconds ago
		p.processed += max(0, min(ready-p.processed, poisson(s.rng, g.capacity*w.capMul)))
		if (sec+i)%g.commitEvery == 0 {
			p.committed = p.processed
		}
	}
	if sec%s.pollEvery != 7 {
		return w, nil
	}
	s.polled = s.polled[:0]
	for i := range s.parts {
		p := &s.parts[i]
		s.polled = append(s.polled, lag.Sample{Time: now, Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: int32(i)},
			Lag: p.end - p.committed, Committed: p.committed, End: p.end, Consumers: w.consumers,
			Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller"})
	}
	return w, s.polled
}

// jitter is a healthy group whose lag jitters between about 30 and 70 on
// each of 12 partitions and never returns to zero: 20 messages/s each,
// consumed 2 s after production, committed every second.
var jitter = simGroup{parts: 12, rate: 20, capacity: 40, pipeline: 2, commitEvery: 1, at: normal}

var simSeed uint64 = 15

// slowParts is a healthy group whose partitions each see a message every
// 2 s (6/s over the group), consumed a second after production by a
// consumer that could take four times as many and commits every 5 s: the
// lag of each partition is 0 to a few messages, the group's 5 to 20.
var slowParts = simGroup{parts: 12, rate: 0.5, capacity: 2, pipeline: 1, commitEvery: 5, at: normal}

// TestConsumerLagSlowPartitionsWithinThreePolls: a group whose partitions
// each get a message every 2 s starts consuming at half the produce rate
// after an hour: each partition's lag grows by about 4 messages a poll,
// within its own jitter for a few polls, while the group's grows by about
// 45. It fires within three polls (45 s) of the first poll showing it.
// (Before, it took the three rises a partition needs, and fired about a
// poll late.)
func TestConsumerLagSlowPartitionsWithinThreePolls(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated time")
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, at := range []int{3600 + 8, 3600 + 15, 3600 + 21} {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("at %ds seed %d", at, seed), func(t *testing.T) {
				g := slowParts
				g.at = func(sec int, rng *rand.Rand) simAt {
					w := normal(sec, rng)
					if sec > at {
						w.capMul = 0.5 * slowParts.rate / slowParts.capacity
					}
					return w
				}
				poll := at + 1
				for poll%15 != 7 {
					poll++
				}
				visible := start.Add(time.Duration(poll) * time.Second)
				var fired *finding.Finding
				simRun(t, g, seed, at+120, func(now time.Time, e *Engine, _ []lag.Sample) bool {
					fs := e.Findings(0)
					if now.Before(visible) {
						require.Empty(t, fs, "raised before the fault")
						return true
					}
					for i := range fs {
						if fs[i].State == finding.StateFiring && fired == nil {
							fired = &fs[i]
						}
					}
					return fired == nil
				})
				require.NotNil(t, fired, "never fired")
				latency := fired.FiredAt.Sub(visible)
				t.Logf("fired %v after the first poll showing it: %s", latency, fired.Summary)
				require.LessOrEqual(t, latency, 45*time.Second, "three polls")
				require.Equal(t, "warning", fired.Evidence["status"])
			})
		}
	}
}

func TestConsumerLagHealthyGroupsRaiseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("hours of simulated time")
	}
	const hours = 3
	withJitter := func(f func(sec int, rng *rand.Rand, w *simAt)) simGroup {
		g := jitter
		g.at = func(sec int, rng *rand.Rand) simAt {
			w := normal(sec, rng)
			f(sec, rng, &w)
			return w
		}
		return g
	}
	burstOn, burstUntil := false, 0
	for _, tc := range []struct {
		name string
		g    simGroup
	}{
		// Issue #15 1a: produce = consume = 10/s, a lag of about 2.
		{name: "steady small lag", g: simGroup{parts: 12, rate: 10, capacity: 12, pipeline: 0, inflight: 2, commitEvery: 1, at: normal}},
		// The kafkametrics receiver's default: one reading a minute.
		{name: "lag jittering, polled once a minute", g: func() simGroup { g := jitter; g.pollEvery = 60; return g }()},
		// Low rates (0.3/s a partition, 3.6/s over the group): the lag is
		// 0 to 3, committed every 5 s.
		{name: "low rate", g: simGroup{parts: 12, rate: 0.3, capacity: 5, pipeline: 1, commitEvery: 5, at: normal}},
		{name: "slow partitions, the group's lag jittering", g: slowParts},
		// Issue #15 1b.
		{name: "lag jittering on 12 partitions, never zero", g: jitter},
		// Bursts of 2-8 s at 3x the rate, 5-20 s apart, over a consumer
		// that can take 45/s: the lag piles up in each burst and drains
		// before the next, and no 45 s holds more than the consumer can
		// take. (A producer that outruns its consumer for 45 s or more
		// right after start-up, before 5 minutes of history show how
		// bursty it is, is reported as falling behind.)
		{name: "bursty producers whose lag drains", g: simGroup{parts: 12, rate: 20, capacity: 45, pipeline: 1, commitEvery: 5,
			at: func(sec int, rng *rand.Rand) simAt {
				if sec >= burstUntil {
					burstOn = !burstOn
					if burstUntil = sec + 5 + rng.IntN(16); burstOn {
						burstUntil = sec + 2 + rng.IntN(7)
					}
				}
				w := normal(sec, rng)
				if w.rateMul = 0.5; burstOn {
					w.rateMul = 3
				}
				return w
			}}},
		{name: "cron burst every 10 minutes that drains within a few polls", g: withJitter(func(sec int, _ *rand.Rand, w *simAt) {
			if m := sec % 600; m >= 300 && m < 303 {
				w.extra = 300 // 900 per partition in 3 s, 10,800 over the group
			}
		})},
		{name: "group rebalancing once", g: withJitter(func(sec int, _ *rand.Rand, w *simAt) {
			if sec >= 3600+4 && sec < 3600+24 { // a 20 s stop-the-world rebalance
				w.capMul, w.consumers = 0, 0
			}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var minLag, maxLag = math.Inf(1), 0.0
			simRun(t, tc.g, simSeed, hours*3600, func(now time.Time, e *Engine, last []lag.Sample) bool {
				for _, s := range last {
					minLag, maxLag = min(minLag, s.Lag), max(maxLag, s.Lag)
				}
				if f := e.Findings(0); len(f) > 0 {
					t.Fatalf("%v after start-up: %s %s: %s (evidence %v)", now.Sub(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)), f[0].State, f[0].Kind, f[0].Summary, f[0].Evidence)
				}
				return true
			})
			t.Logf("partition lag ranged %v..%v", minLag, maxLag)
		})
	}
}

// TestConsumerLagFaultsFireWithinThreePolls drives real faults through the
// engine at default settings, right after start-up and an hour into a
// healthy run, and asserts the finding fires on the destination -> consumer
// edge within three broker polls (45 s at the pollers' 15 s; also with the
// kafkametrics receiver's one reading a minute) of the first poll that
// shows the fault, that nothing was raised before it, and that it keeps firing as
// long as the fault lasts.
func TestConsumerLagFaultsFireWithinThreePolls(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated time")
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	subject := finding.Subject{Source: "orders", Target: "billing", EdgeID: "topic:kafka/orders->service:billing kafka @billing"}
	for _, fault := range []struct {
		name     string
		apply    func(w *simAt)
		severity finding.Severity
		status   string
	}{
		// The consumer slows to 60% of the produce rate. (The fault
		// begins 12 s or 2 s before a poll.)
		{name: "falling behind", apply: func(w *simAt) { w.capMul = 0.6 * 20 / 40 }, severity: finding.SeverityWarning, status: "warning"},
		// Stuck on a poison message: members stay, the position stops.
		{name: "stalled", apply: func(w *simAt) { w.frozen = 12 }, severity: finding.SeverityCritical, status: "stalled"},
		// One partition stuck (a poison message), eleven healthy.
		{name: "one partition stalled", apply: func(w *simAt) { w.frozen = 1 }, severity: finding.SeverityCritical, status: "stalled"},
		// Every member gone.
		{name: "stopped", apply: func(w *simAt) { w.capMul, w.consumers = 0, 0 }, severity: finding.SeverityCritical, status: "stopped"},
	} {
		for _, run := range []struct{ every, at int }{{15, 10}, {15, 20}, {15, 3600 + 10}, {15, 3600 + 20}, {60, 10}, {60, 3600 + 10}} {
			at, every := run.at, run.every
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("%s at %ds seed %d polled every %ds", fault.name, at, seed, every), func(t *testing.T) {
					g := jitter
					g.pollEvery = every
					g.at = func(sec int, rng *rand.Rand) simAt {
						w := normal(sec, rng)
						if sec > at {
							fault.apply(&w)
						}
						return w
					}
					// The first poll after the fault began shows it.
					poll := at + 1
					for poll%every != 7 {
						poll++
					}
					visible := start.Add(time.Duration(poll) * time.Second)
					var fired *finding.Finding
					simRun(t, g, seed, at+900, func(now time.Time, e *Engine, _ []lag.Sample) bool {
						fs := e.Findings(0)
						if now.Before(visible) {
							require.Empty(t, fs, "raised before the fault")
							return true
						}
						if fired != nil {
							// The fault goes on: so does the page, for
							// 15 minutes, without resolving and refiring.
							require.Len(t, fs, 1, "at %v", now)
							require.Equal(t, finding.StateFiring, fs[0].State, "at %v", now)
							require.Equal(t, fired.ID, fs[0].ID)
							return true
						}
						for i := range fs {
							if fs[i].State == finding.StateFiring {
								fired = &fs[i]
							}
						}
						return true
					})
					require.NotNil(t, fired, "never fired")
					latency := fired.FiredAt.Sub(visible)
					t.Logf("%s, polls every %ds: fired %v after the first poll showing it: %s", fault.name, every, latency, fired.Summary)
					require.LessOrEqual(t, latency, 3*time.Duration(every)*time.Second, "three polls")
					require.Equal(t, finding.KindConsumerLag, fired.Kind)
					require.Equal(t, subject, fired.Subject)
					require.Equal(t, fault.severity, fired.Severity)
					require.Equal(t, fault.status, fired.Evidence["status"])
				})
			}
		}
	}
}
