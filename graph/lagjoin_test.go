package graph

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// lagMsgs returns a lag in messages for a lag.Status.
func lagMsgs(v float64) *float64 { return &v }

// TestLagJoinsConsumersTracesNameNoGroupFor is issue #15 1d: when the
// consumer spans carry no messaging.consumer.group.name but the broker
// reports the group, the lag belongs on the real consumer's edge, not on a
// service node invented from the group's name.
func TestLagJoinsConsumersTracesNameNoGroupFor(t *testing.T) {
	orders := NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}
	consumer := func(tr byte, svc string, group string) Span {
		return Span{Trace: tid(tr), ID: sid(1), Kind: SpanConsumer, Service: svc, End: ms, Protocol: ProtocolKafka, Destination: orders, ConsumerGroup: group}
	}
	status := func(group string, state lag.State) lag.Status {
		return lag.Status{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: group}, Messages: lagMsgs(120)}, State: state}
	}
	type want struct {
		edge  string
		state lag.State
		group string
	}
	for _, tc := range []struct {
		name     string
		spans    []Span
		statuses []lag.Status
		quiet    bool // the consumers sent nothing in the window
		want     []want
		noNode   []string // nodes that must not be invented
	}{{
		name:     "the only consumer, the only group",
		spans:    []Span{consumer(1, "billing", "")},
		statuses: []lag.Status{status("payments-prod", lag.StateStalled)},
		want:     []want{{"topic:kafka/orders->service:billing kafka", lag.StateStalled, "payments-prod"}},
		noNode:   []string{"service:payments-prod"},
	}, {
		name:     "the only consumer, quiet since it stalled",
		spans:    []Span{consumer(1, "billing", "")},
		statuses: []lag.Status{status("payments-prod", lag.StateStalled)},
		quiet:    true,
		want:     []want{{"topic:kafka/orders->service:billing kafka", lag.StateStalled, "payments-prod"}},
		noNode:   []string{"service:payments-prod"},
	}, {
		name:     "two consumers, groups named after them",
		spans:    []Span{consumer(1, "billing", ""), consumer(2, "audit", "")},
		statuses: []lag.Status{status("audit", lag.StateOK), status("billing-consumer", lag.StateWarning)},
		want: []want{
			{"topic:kafka/orders->service:billing kafka", lag.StateWarning, "billing-consumer"},
			{"topic:kafka/orders->service:audit kafka", lag.StateOK, "audit"},
		},
		noNode: []string{"service:billing-consumer"},
	}, {
		name:     "one consumer traced with its group, one without",
		spans:    []Span{consumer(1, "billing", "billing"), consumer(2, "audit", "")},
		statuses: []lag.Status{status("billing", lag.StateOK), status("cg-7", lag.StateStopped)},
		want: []want{
			{"topic:kafka/orders->service:billing kafka @billing", lag.StateOK, ""},
			{"topic:kafka/orders->service:audit kafka", lag.StateStopped, "cg-7"},
		},
		noNode: []string{"service:cg-7"},
	}, {
		name:     "one consumer, its group and a group no trace shows",
		spans:    []Span{consumer(1, "billing", "")},
		statuses: []lag.Status{status("analytics", lag.StateStopped), status("billing-cg", lag.StateWarning)},
		want: []want{
			{"topic:kafka/orders->service:billing kafka", lag.StateWarning, "billing-cg"},
			{"topic:kafka/orders->service:analytics kafka @analytics", lag.StateStopped, ""},
		},
	}, {
		name:     "two consumers, a group named after neither: not guessed",
		spans:    []Span{consumer(1, "billing", ""), consumer(2, "audit", "")},
		statuses: []lag.Status{status("cg-7", lag.StateStopped)},
		want:     []want{{"topic:kafka/orders->service:cg-7 kafka @cg-7", lag.StateStopped, ""}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, _ := newTestGraph(t, Options{Lag: staticLag(tc.statuses)})
			rej, why := g.ConsumeSpans(tc.spans)
			require.Zero(t, rej, why)
			if tc.quiet {
				clk.advance(5 * time.Minute)
			}
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			withLag := 0
			for _, e := range snap.Edges {
				if e.Lag != nil {
					withLag++
				}
			}
			require.Equal(t, len(tc.want), withLag, "lag on exactly the expected edges")
			for _, w := range tc.want {
				e := edgeByID(t, snap, w.edge)
				require.NotNil(t, e.Lag, w.edge)
				require.Equal(t, w.state, e.Lag.Status, w.edge)
				require.Equal(t, w.group, e.Lag.Group, "the broker's group name is kept when the edge has none")
			}
			for _, id := range tc.noNode {
				_, ok := snap.Node(id)
				require.False(t, ok, "invented node %s", id)
			}
		})
	}
}

// TestLagMessagesOmittedWhenUnknown is issue #15 8 (part): a group whose
// readings carry no lag shows no lag.messages, rather than 0.
func TestLagMessagesOmittedWhenUnknown(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{Lag: staticLag{
		{Summary: lag.Summary{GroupKey: lag.GroupKey{System: "kafka", Destination: "orders", Group: "billing"}}, State: lag.StateOK},
	}})
	rej, why := g.ConsumeSpans([]Span{{Trace: tid(1), ID: sid(1), Kind: SpanConsumer, Service: "billing", End: ms, Protocol: ProtocolKafka,
		Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: "orders"}, ConsumerGroup: "billing"}})
	require.Zero(t, rej, why)
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	e := edgeByID(t, snap, "topic:kafka/orders->service:billing kafka @billing")
	require.NotNil(t, e.Lag)
	require.Nil(t, e.Lag.Messages)
	b, err := json.Marshal(e.Lag)
	require.NoError(t, err)
	require.NotContains(t, string(b), "messages")
}

// TestLagMessagesFromTheStore checks the store's end of the same contract:
// readings without a lag or offsets make a summary without Messages (its
// verdict, "no lag reported", is detect's: TestJudgeLagUnknownLag).
func TestLagMessagesFromTheStore(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := lag.New(lag.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Zero(t, st.Add([]lag.Sample{{Time: now, Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: 0},
		Lag: lag.Unknown, Committed: lag.Unknown, End: lag.Unknown, Consumers: 2, Produced: lag.Unknown, Consumed: lag.Unknown}}))
	got := st.Summarise(lag.Query{Window: time.Minute})
	require.Len(t, got, 1)
	require.Nil(t, got[0].Messages)
	require.Nil(t, got[0].DrainSeconds)
}
