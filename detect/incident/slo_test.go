package incident

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// sloBurn is a firing slo_burn finding on entry point entry, with the
// evidence detect.SLOBurn gives.
func sloBurn(started time.Time, entry string) finding.Finding {
	f := firing(finding.KindSLOBurn, started, entry)
	f.Severity = finding.SeverityCritical
	f.Evidence = map[string]any{"objectives": []any{map[string]any{
		"name": "gateway-availability", "sli": "availability", "target": 99.9,
		"windows": "1h/5m", "severity": "critical", "burn_rate": 31.5, "burn_rate_short": 98.0, "budget_remaining": 0.94,
	}}}
	return f
}

func TestSLOBurnJoinsIncidents(t *testing.T) {
	fail := func(s *system) {
		s.set("s:orders", "d:orders", func(f *flow) { f.errRatio = 0.4 })
		s.set("s:api", "s:orders", func(f *flow) { f.errRatio = 0.4 })
		s.set("s:gateway", "s:api", func(f *flow) { f.errRatio = 0.1 })
		s.set("c:client", "s:gateway", func(f *flow) { f.errRatio = 0.1 })
	}
	t.Run("a burn alone is an incident whose cause is still ranked", func(t *testing.T) {
		sys := chain()
		r := newRun(t, Options{})
		r.learn(sys, 30)
		fail(sys)
		burn := sloBurn(r.now.Add(5*time.Second), "s:gateway")
		r.tick(sys, burn)
		incs := r.tick(sys, burn)
		require.Len(t, incs, 1)
		inc := incs[0]
		require.Equal(t, []string{burn.ID}, inc.Findings)
		require.Equal(t, nodeOf("d:orders").ID, top(t, inc).NodeID, "the failing database, though no finding names it: %+v", inc.RootCauses)
		require.NotEmpty(t, inc.Impact)
		im := inc.Impact[0]
		require.Equal(t, "gateway", im.Entry)
		require.Equal(t, 1.0, im.Share)
		require.Len(t, im.SLOs, 1)
		require.Equal(t, finding.SLOImpact{FindingID: burn.ID, Objective: "gateway-availability", SLI: "availability", Target: 99.9,
			Severity: finding.SeverityCritical, Windows: "1h/5m", BurnRate: 31.5, BurnRateShort: 98, BudgetRemaining: 0.94}, im.SLOs[0])
		for _, c := range inc.RootCauses {
			if c.Node == "gateway" {
				require.Less(t, c.Score, top(t, inc).Score, "the burning entry is where users feel it, not the cause")
			}
		}
	})
	t.Run("a burn joins the incident on its entry's path", func(t *testing.T) {
		sys := chain()
		r := newRun(t, Options{})
		r.learn(sys, 30)
		fail(sys)
		storm := firing(finding.KindRetryStorm, r.now.Add(5*time.Second), "s:api", "s:orders")
		incs := r.tick(sys, storm)
		require.Len(t, incs, 1)
		burn := sloBurn(r.now.Add(5*time.Second), "s:gateway")
		incs = r.tick(sys, storm, burn)
		require.Len(t, incs, 1, "%+v", incs)
		require.Equal(t, "inc-"+storm.ID, incs[0].ID)
		require.ElementsMatch(t, []string{storm.ID, burn.ID}, incs[0].Findings)
		i := slices.IndexFunc(incs[0].Impact, func(x finding.Impact) bool { return x.Entry == "gateway" })
		require.GreaterOrEqual(t, i, 0, "%+v", incs[0].Impact)
		require.Len(t, incs[0].Impact[i].SLOs, 1)
		require.Equal(t, nodeOf("d:orders").ID, top(t, incs[0]).NodeID)
	})
	t.Run("a burn does not join two unrelated faults behind one entry", func(t *testing.T) {
		sys := &system{rng: rand.New(rand.NewPCG(5, 6)), flows: []flow{
			{"c:client", "s:gateway", 30, 0.002, 20},
			{"s:gateway", "s:checkout", 10, 0.002, 15},
			{"s:gateway", "s:profile", 10, 0.002, 15},
			{"s:checkout", "d:checkout", 10, 0.001, 3},
			{"s:profile", "d:profiles", 10, 0.001, 3},
		}}
		r := newRun(t, Options{})
		r.learn(sys, 20)
		sys.set("s:gateway", "s:checkout", func(f *flow) { f.errRatio = 0.5 })
		sys.set("s:gateway", "s:profile", func(f *flow) { f.errRatio = 0.5 })
		a := firing(finding.KindRetryStorm, r.now, "s:gateway", "s:checkout")
		b := firing(finding.KindRetryStorm, r.now.Add(time.Second), "s:gateway", "s:profile")
		burn := sloBurn(r.now.Add(2*time.Second), "s:gateway")
		r.tick(sys, a, b, burn)
		incs := r.tick(sys, a, b, burn)
		require.Len(t, incs, 2, "%+v", incs)
		var holding []string
		for _, inc := range incs {
			if slices.Contains(inc.Findings, burn.ID) {
				holding = append(holding, inc.ID)
			}
		}
		require.Equal(t, []string{"inc-" + a.ID}, holding, "the burn joins the oldest incident on its path, and only it")
	})
}
