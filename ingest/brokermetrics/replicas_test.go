package brokermetrics

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// replica is one instance of a service exporting its Envoy counters and
// resilience4j breaker state every 15 s, at its own phase.
type replica struct {
	id                 string // service.instance.id; "" when not sent
	host               string // host.name
	phase              time.Duration
	retries, total     float64 // cumulative since the replica started
	open               bool
	rate, retryPerCall float64
}

// export is one OTLP request from r at t.
func (r *replica) export(t time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "edge")
	if r.id != "" {
		rm.Resource().Attributes().PutStr("service.instance.id", r.id)
	}
	if r.host != "" {
		rm.Resource().Attributes().PutStr("host.name", r.host)
	}
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.NewTimestampFromTime(t)
	sum := func(name string, v float64) {
		m := ms.AppendEmpty()
		m.SetName(name)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		p := s.DataPoints().AppendEmpty()
		p.SetTimestamp(ts)
		p.SetDoubleValue(v)
		p.Attributes().PutStr("envoy_cluster_name", "payment")
	}
	sum("envoy_cluster_upstream_rq_retry", r.retries)
	sum("envoy_cluster_upstream_rq_total", r.total)
	g := ms.AppendEmpty()
	g.SetName("resilience4j.circuitbreaker.state")
	gp := g.SetEmptyGauge().DataPoints()
	for _, st := range []string{"closed", "open", "half_open"} {
		p := gp.AppendEmpty()
		p.SetTimestamp(ts)
		p.Attributes().PutStr("name", "payment")
		p.Attributes().PutStr("state", st)
		p.SetIntValue(0)
		if (st == "open" && r.open) || (st == "closed" && !r.open) {
			p.SetIntValue(1)
		}
	}
	return md
}

// TestReplicasKeptApart: several replicas of one service report the same
// retry counters and breaker, each its own cumulative values (they started
// at different times). Defect 4: merged into one history, a drop from one
// replica's counter to another's read as a reset, a 3% retry ratio came out
// many times higher, and one open breaker among closed ones flapped the
// state at every export.
func TestReplicasKeptApart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas []*replica
	}{
		{"service.instance.id", []*replica{
			{id: "edge-0", phase: 0, retries: 9_000, total: 300_000, rate: 40},
			{id: "edge-1", phase: 4 * time.Second, retries: 30, total: 1_000, rate: 40, open: true},
			{id: "edge-2", phase: 11 * time.Second, retries: 600, total: 20_000, rate: 40},
		}},
		{"host.name when the instance id is absent", []*replica{
			{host: "node-a", phase: 2 * time.Second, retries: 90_000, total: 3_000_000, rate: 10},
			{host: "node-b", phase: 9 * time.Second, retries: 3, total: 100, rate: 10, open: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := t0
			store, err := resilience.New(resilience.Options{Now: func() time.Time { return now }})
			require.NoError(t, err)
			c, err := New(Options{Resilience: store, Now: func() time.Time { return now }})
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(4, 15))
			n := len(tc.replicas)
			for step := time.Duration(0); step < 5*time.Minute; step += time.Second {
				now = t0.Add(step)
				for _, r := range tc.replicas {
					// Poisson-ish arrivals, 3% of attempts are retries.
					calls := poisson(rng, r.rate)
					r.total += calls
					for range int(calls) {
						if rng.Float64() < 0.03 {
							r.retries++
						}
					}
					if (step-r.phase)%(15*time.Second) == 0 && step >= r.phase {
						require.NoError(t, c.ConsumeMetrics(context.Background(), r.export(now)))
					}
				}
				if step < time.Minute || step%(5*time.Second) != 0 {
					continue
				}
				cs := store.Circuits()
				require.Len(t, cs, 1, "at %v", step)
				require.Truef(t, cs[0].State.IsOpen(), "at %v: one replica's breaker is open, the others closed: open, steadily", step)
				require.Equal(t, 1, cs[0].Open, "at %v", step)
				require.Equal(t, n, cs[0].Instances, "at %v", step)
				rr := store.RetryRates(time.Minute)
				require.Len(t, rr, 1, "at %v", step)
				require.InDeltaf(t, 0.03, rr[0].Retries/rr[0].Calls, 0.012, "at %v: %+v", step, rr[0])
				require.Equal(t, n, rr[0].Instances, "at %v", step)
				require.InDeltaf(t, 45, rr[0].Seconds, 15, "at %v", step)
				wantCalls := 0.0
				for _, r := range tc.replicas {
					wantCalls += r.rate * 45
				}
				require.InDeltaf(t, wantCalls, rr[0].Calls, wantCalls/2, "at %v: rates of the replicas add up", step)
			}
		})
	}
}

// poisson draws from a Poisson distribution of mean lambda (Knuth).
func poisson(rng *rand.Rand, lambda float64) float64 {
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
