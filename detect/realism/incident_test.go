package realism

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Issue #20's cascades, each at least two findings deep, run through the
// real pipeline at the collector's default settings with production-shaped
// traffic (Poisson arrivals with the daily drift, replicas with their own
// batch span processors, background errors, re-sent exports, Kafka groups
// polled every 15 s): the incident tracker must group the findings of one
// fault into one incident, name the fault's node first, and say what the
// entry points' users feel.

// cascade is one fault and what its incident must say.
type cascade struct {
	name   string
	system func(after func(time.Time) bool) System
	// incidents are the incidents expected (two faults: two), each by its
	// first root cause, with the findings ("kind source -> target" or
	// "kind node") it must hold and the entry whose users feel it ("":
	// none: no entry's error ratio or p95 moved).
	incidents []wantIncident
}

type wantIncident struct {
	cause    string
	findings []string
	entry    string
	// noOwn: the cause raised no finding of its own.
	noOwn bool
}

// chainSystem: gateway -> api (retried once by the gateway) -> orders
// (gRPC, retried twice by api) -> the orders-db database, which orders
// gives up on after 80 ms.
func chainSystem(prefix string) []Service {
	return []Service{
		{Name: prefix + "gateway", Replicas: 2, Serve: HTTP, Route: "/api/orders", Self: time.Millisecond, ErrRate: 0.002,
			Calls: []Call{{To: prefix + "api", Proto: HTTP, Op: "/v1/orders", Retries: 1, Backoff: 50 * time.Millisecond, ResendCount: true}}, Language: "java"},
		{Name: prefix + "api", Replicas: 3, Serve: HTTP, Route: "/v1/orders", Self: 2 * time.Millisecond, ErrRate: 0.003,
			Calls: []Call{{To: prefix + "orders", Proto: GRPC, Op: "shop.v1.Orders/Get", Retries: 2, Backoff: 20 * time.Millisecond}}},
		{Name: prefix + "orders", Replicas: 3, Serve: GRPC, Route: "shop.v1.Orders/Get", Self: 3 * time.Millisecond, ErrRate: 0.002,
			Calls: []Call{{To: prefix + "orders-db", Proto: DB, Op: "SELECT orders", Latency: 2 * time.Millisecond, Timeout: 80 * time.Millisecond}}},
	}
}

// consumerSystem: orders-api and refunds-api publish to order-events and
// refund-events, both consumed by billing-worker (two groups).
func consumerSystem() System {
	return System{
		Services: []Service{
			{Name: "orders-api", Replicas: 3, Serve: HTTP, Route: "/api/orders", Self: 3 * time.Millisecond, ErrRate: 0.004,
				Calls: []Call{{To: "orders", Proto: DB, Op: "INSERT orders", Latency: 3 * time.Millisecond}, {To: "order-events", Proto: Kafka, Latency: 2 * time.Millisecond}}},
			{Name: "refunds-api", Replicas: 2, Serve: HTTP, Route: "/api/refunds", Self: 3 * time.Millisecond, ErrRate: 0.004,
				Calls: []Call{{To: "refund-events", Proto: Kafka, Latency: 2 * time.Millisecond}}},
			{Name: "billing-worker", Replicas: 3, Serve: HTTP, Language: "java"},
		},
		Topics: []Topic{{Name: "order-events", Background: 5}, {Name: "refund-events"}},
		Groups: []Group{
			{Name: "billing", Service: "billing-worker", Topic: "order-events", PerMessage: time.Millisecond,
				Calls: []Call{{To: "billing", Proto: DB, Op: "INSERT invoices", Latency: 4 * time.Millisecond}}},
			{Name: "billing-refunds", Service: "billing-worker", Topic: "refund-events", PerMessage: time.Millisecond},
		},
		Entries: []string{"orders-api", "refunds-api"},
	}
}

func cascades() []cascade {
	slowDB := func(prefix string, after func(time.Time) bool) func(string, time.Time) (float64, float64, bool) {
		return func(db string, t time.Time) (float64, float64, bool) {
			if db == prefix+"orders-db" && after(t) {
				return 50, 0.001, true // 100 ms: most calls time out at 80 ms
			}
			return 1, 0, false
		}
	}
	stall := func(after func(time.Time) bool) func(string, time.Time) (float64, bool) {
		return func(group string, t time.Time) (float64, bool) {
			if (group == "billing" || group == "billing-refunds") && after(t) {
				return 0, true
			}
			return 1, false
		}
	}
	return []cascade{
		{
			name: "slow database under a service",
			system: func(after func(time.Time) bool) System {
				s := System{Services: chainSystem(""), Entries: []string{"gateway"}}
				s.Dynamics.DB = slowDB("", after)
				return s
			},
			incidents: []wantIncident{{cause: "orders-db", entry: "gateway",
				findings: []string{"retry_storm api -> orders", "retry_storm gateway -> api"}}},
		},
		{
			name: "failing database only its callers' findings point to",
			system: func(after func(time.Time) bool) System {
				s := System{Services: chainSystem(""), Entries: []string{"gateway"}}
				s.Dynamics.DB = func(db string, t time.Time) (float64, float64, bool) {
					if db == "orders-db" && after(t) {
						return 1, 0.8, true
					}
					return 1, 0, false
				}
				return s
			},
			incidents: []wantIncident{{cause: "orders-db", entry: "gateway", noOwn: true,
				findings: []string{"retry_storm api -> orders", "retry_storm gateway -> api"}}},
		},
		{
			name: "failing dependency its callers retry",
			system: func(after func(time.Time) bool) System {
				s := System{Entries: []string{"gateway"}, Services: []Service{
					{Name: "gateway", Replicas: 2, Serve: HTTP, Route: "/api/checkout", Self: time.Millisecond, ErrRate: 0.002, Language: "java",
						Calls: []Call{{To: "checkout", Proto: HTTP, Op: "/v1/checkout", Retries: 1, Backoff: 50 * time.Millisecond, ResendCount: true}}},
					{Name: "checkout", Replicas: 3, Serve: HTTP, Route: "/v1/checkout", Self: 3 * time.Millisecond, ErrRate: 0.002,
						Calls: []Call{{To: "payments", Proto: HTTP, Op: "/v1/charge", Retries: 3, Backoff: 10 * time.Millisecond}}},
					{Name: "payments", Replicas: 3, Serve: HTTP, Route: "/v1/charge", Self: 4 * time.Millisecond, ErrRate: 0.003,
						Calls: []Call{{To: "payments-db", Proto: DB, Op: "INSERT charges", Latency: 3 * time.Millisecond}}},
				}}
				s.Dynamics.ErrRate = func(svc string, t time.Time) (float64, bool, bool) {
					if svc == "payments" && after(t) {
						return 0.8, true, true
					}
					return 0, false, false
				}
				return s
			},
			incidents: []wantIncident{{cause: "payments", entry: "gateway",
				findings: []string{"retry_storm checkout -> payments", "retry_storm gateway -> checkout"}}},
		},
		{
			name: "stalled consumer",
			system: func(after func(time.Time) bool) System {
				s := consumerSystem()
				s.Dynamics.ConsumeFactor = stall(after)
				return s
			},
			incidents: []wantIncident{{cause: "billing-worker",
				findings: []string{"consumer_lag order-events -> billing-worker", "consumer_lag refund-events -> billing-worker"}}},
		},
		{
			name: "flood from a producer",
			system: func(after func(time.Time) bool) System {
				s := System{
					Services: []Service{
						{Name: "orders-api", Replicas: 3, Serve: HTTP, Route: "/api/orders", Self: 3 * time.Millisecond, ErrRate: 0.004,
							Calls: []Call{{To: "orders", Proto: DB, Op: "INSERT orders", Latency: 3 * time.Millisecond}, {To: "order-events", Proto: Kafka, Latency: 2 * time.Millisecond}}},
						{Name: "billing-worker", Replicas: 3, Serve: HTTP, Language: "java"},
						{Name: "shipping-worker", Replicas: 3, Serve: HTTP},
					},
					Topics: []Topic{{Name: "order-events", Background: 5}},
					Groups: []Group{
						{Name: "billing", Service: "billing-worker", Topic: "order-events", PerMessage: 150 * time.Millisecond},
						{Name: "shipping", Service: "shipping-worker", Topic: "order-events", PerMessage: 150 * time.Millisecond},
					},
					Entries: []string{"orders-api"},
				}
				s.Dynamics.RatePeak = 8
				s.Dynamics.RateFactor = func(entry string, t time.Time) float64 {
					if after(t) {
						return 8
					}
					return 1
				}
				return s
			},
			incidents: []wantIncident{{cause: "orders-api", noOwn: true,
				findings: []string{"consumer_lag order-events -> billing-worker", "consumer_lag order-events -> shipping-worker", "bottleneck billing-worker"}}},
		},
		{
			name: "two unrelated faults at once",
			system: func(after func(time.Time) bool) System {
				s := consumerSystem()
				s.Services = append(s.Services, chainSystem("web-")...)
				s.Entries = append(s.Entries, "web-gateway")
				s.Dynamics.DB = slowDB("web-", after)
				s.Dynamics.ConsumeFactor = stall(after)
				return s
			},
			incidents: []wantIncident{
				{cause: "web-orders-db", entry: "web-gateway", findings: []string{"retry_storm web-api -> web-orders", "retry_storm web-gateway -> web-api"}},
				{cause: "billing-worker", findings: []string{"consumer_lag order-events -> billing-worker", "consumer_lag refund-events -> billing-worker"}},
			},
		},
	}
}

// TestIncidentCascades runs every cascade at 10 requests/s per entry: 10
// healthy minutes (5 under -race or -short; no incident may open), then
// the fault for 3 minutes.
func TestIncidentCascades(t *testing.T) {
	onset, after := 10*time.Minute, 3*time.Minute
	if raceEnabled || testing.Short() {
		onset = 5 * time.Minute
	}
	for i, cc := range cascades() {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			c := Case{Shape: SyncChain, Rate: 10, Onset: onset, Duration: onset + after, Seed: uint64(1000 + i)}
			at := Start.Add(onset)
			c.Modify = func(s *System) {
				*s = cc.system(func(t time.Time) bool { return !t.Before(at) })
				s.Namespace = "shop"
			}
			checkCascade(t, cc, simulate(t, c, nil), at)
		})
	}
}

// checkCascade asserts what the incidents of a cascade's run say.
func checkCascade(t *testing.T, cc cascade, s *sim, onset time.Time) {
	t.Helper()
	findings := map[string]finding.Finding{}
	for _, f := range s.engine.Findings(0) {
		findings[f.ID] = f
	}
	incs := s.incidents.Incidents(0)
	describe := func() string {
		var b strings.Builder
		for _, inc := range incs {
			fmt.Fprintf(&b, "\n%s %s from +%v:", inc.ID, inc.State, inc.StartedAt.Sub(onset))
			for _, id := range inc.Findings {
				f := findings[id]
				fmt.Fprintf(&b, "\n  finding %s (%s, +%v)", name(f), f.State, f.StartedAt.Sub(onset))
			}
			for _, c := range inc.RootCauses {
				fmt.Fprintf(&b, "\n  cause %s %.3f (anomaly %.3f, explains %.2f, onset %.2f): %s", c.Name(), c.Score, c.Anomaly, c.Explains, c.Onset, strings.Join(c.Reasons, "; "))
			}
			for _, im := range inc.Impact {
				fmt.Fprintf(&b, "\n  impact %s: errors %.4f -> %.4f, p95 %.1f -> %.1f ms, share %.3f", im.Entry, im.ErrorRatio.Before, im.ErrorRatio.Now, im.P95Ms.Before, im.P95Ms.Now, im.Share)
			}
		}
		return b.String()
	}
	t.Logf("incidents:%s", describe())
	require.Len(t, incs, len(cc.incidents), "incidents:%s", describe())
	for _, want := range cc.incidents {
		i := slices.IndexFunc(incs, func(inc finding.Incident) bool {
			c, ok := inc.TopCause()
			return ok && c.Name() == want.cause
		})
		require.GreaterOrEqual(t, i, 0, "no incident names %s first:%s", want.cause, describe())
		inc := incs[i]
		require.False(t, inc.StartedAt.Before(onset), "an incident opened on the healthy system before the fault:%s", describe())
		var names []string
		for _, id := range inc.Findings {
			names = append(names, name(findings[id]))
		}
		for _, f := range want.findings {
			require.Contains(t, names, f, "incident %s:%s", inc.ID, describe())
		}
		require.GreaterOrEqual(t, len(inc.Findings), 2, "at least two findings deep")
		top, _ := inc.TopCause()
		if len(inc.RootCauses) > 1 {
			require.Greater(t, top.Score, inc.RootCauses[1].Score, "a first, not a tie")
		}
		require.Equal(t, want.noOwn, strings.Contains(strings.Join(top.Reasons, "\n"), "raised no finding of its own"), "%q", top.Reasons)
		if want.noOwn {
			for _, n := range names {
				require.NotContains(t, n, want.cause, "the cause raised no finding itself")
			}
		}
		if want.entry == "" {
			require.Empty(t, inc.Impact, "no entry point's users feel it: %+v", inc.Impact)
			continue
		}
		require.Len(t, inc.Impact, 1, "%+v", inc.Impact)
		im := inc.Impact[0]
		require.Equal(t, want.entry, im.Entry)
		require.Greater(t, im.Share, 0.99, "every request into %s reaches %s", want.entry, want.cause)
		require.Less(t, im.ErrorRatio.Before, 0.02, "the gateway's usual errors")
		require.Greater(t, im.ErrorRatio.Now, im.ErrorRatio.Before+0.05, "its errors now")
	}
}

// name renders a finding as the cascades list them.
func name(f finding.Finding) string {
	if f.Subject.Node != "" {
		return f.Kind.String() + " " + f.Subject.Node
	}
	return f.Kind.String() + " " + f.Subject.Source + " -> " + f.Subject.Target
}
