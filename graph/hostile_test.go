package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
)

// TestHostileSpans: spans no tracer sends but a hostile or broken sender
// can. Every one is taken, refused with a reason or counted as dropped;
// every structure stays within its bound and the snapshot stays valid.
func TestHostileSpans(t *testing.T) {
	const maxPending, maxRetry = 1000, 100
	cases := []struct {
		name  string
		spans func() []Span
		check func(t *testing.T, g *Graph, rejected int, why string)
	}{
		{"a consumer linking to 100k producers", func() []Span {
			links := make([]SpanRef, 100_000)
			for i := range links {
				links[i] = SpanRef{Trace: uniqueTrace(i), Span: uniqueSpan(i)}
			}
			return []Span{{Trace: uniqueTrace(0), ID: uniqueSpan(1 << 40), Kind: SpanConsumer, Service: "c", Start: 0, End: ms,
				Protocol: ProtocolKafka, Messaging: MessagingProcess, Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: "t"}, Links: links}}
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.Zero(t, rejected, why)
			require.LessOrEqual(t, g.store.Len(), maxPending)
			require.Positive(t, testutil.ToFloat64(g.m.dropped.WithLabelValues("pending_full")))
		}},
		{"10k consumers waiting on one producer", func() []Span {
			var out []Span
			for i := range 10_000 {
				out = append(out, Span{Trace: uniqueTrace(0), ID: uniqueSpan(i + 10), Parent: uniqueSpan(1), Kind: SpanConsumer, Service: "c",
					Start: 0, End: ms, Protocol: ProtocolKafka, Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: "t"}})
			}
			return out
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.Zero(t, rejected, why)
			require.LessOrEqual(t, g.store.Waiting(SpanRef{Trace: uniqueTrace(0), Span: uniqueSpan(1)}), pairing.MaxWaiters)
			require.Positive(t, testutil.ToFloat64(g.m.dropped.WithLabelValues("waiters_full")))
		}},
		{"100k failed calls from distinct parents", func() []Span {
			var out []Span
			for i := range 100_000 {
				c := client(uniqueTrace(i), uniqueSpan(i), uniqueSpan(1_000_000+i), "a", 0, ms)
				c.Error = true
				out = append(out, c)
			}
			return out
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.Equal(t, 100_000-maxPending, rejected, why)
			require.LessOrEqual(t, len(g.retries), maxRetry)
			require.Positive(t, testutil.ToFloat64(g.m.dropped.WithLabelValues("retry_groups_full")))
		}},
		{"one span id a thousand times", func() []Span {
			out := make([]Span, 1000)
			for i := range out {
				out[i] = client(uniqueTrace(1), uniqueSpan(1), uniqueSpan(2), "a", 0, ms)
			}
			return out
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.Zero(t, rejected, why)
			require.EqualValues(t, 999, testutil.ToFloat64(g.m.dropped.WithLabelValues("resent_span")), "the same span re-sent is counted once")
		}},
		{"timestamps at the ends of int64", func() []Span {
			var out []Span
			for i, se := range [][2]int64{{math.MinInt64, math.MaxInt64}, {math.MaxInt64, math.MinInt64}, {0, math.MaxInt64}, {math.MinInt64, 0}, {5, 5}} {
				out = append(out, client(uniqueTrace(i), uniqueSpan(2*i), uniqueSpan(999), "a", se[0], 0), server(uniqueTrace(i), uniqueSpan(2*i+1), uniqueSpan(2*i), "b", se[0], 0))
				out[len(out)-2].End, out[len(out)-1].End = se[1], se[1]
			}
			return out
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.Zero(t, rejected, why)
			require.Positive(t, testutil.ToFloat64(g.m.dropped.WithLabelValues("invalid_duration")))
		}},
		{"a span that links to itself and names itself as parent", func() []Span {
			s := Span{Trace: uniqueTrace(3), ID: uniqueSpan(3), Parent: uniqueSpan(3), Kind: SpanConsumer, Service: "c", Start: 0, End: ms,
				Protocol: ProtocolKafka, Destination: NodeKey{Kind: NodeTopic, Group: "kafka", Name: "t"},
				Links: []SpanRef{{Trace: uniqueTrace(3), Span: uniqueSpan(3)}}}
			p := s
			p.Kind, p.Messaging, p.Links = SpanProducer, MessagingPublish, nil
			sv := server(uniqueTrace(3), uniqueSpan(3), uniqueSpan(3), "c", 0, ms)
			return []Span{s, p, sv}
		}, func(t *testing.T, g *Graph, rejected int, why string) {
			require.LessOrEqual(t, rejected, 1, why)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, _ := newTestGraph(t, Options{MaxPending: maxPending, MaxRetryGroups: maxRetry, PairTTL: time.Second})
			spans := tc.spans()
			t0 := time.Now()
			rej, why := g.ConsumeSpans(spans)
			require.Less(t, time.Since(t0), 20*time.Second)
			tc.check(t, g, rej, why)
			clk.advance(2 * time.Second)
			g.Expire()
			require.Zero(t, g.store.Len(), "everything expires")
			require.Zero(t, len(g.retries))
			s, err := g.Snapshot(0)
			require.NoError(t, err)
			b, err := json.Marshal(s)
			require.NoError(t, err, "the snapshot encodes (no NaN or Inf): %v", fmt.Sprint(s.Edges))
			require.True(t, json.Valid(b))
		})
	}
}
