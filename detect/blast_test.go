package detect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

func blastSnapshot() *graph.Snapshot {
	svc := func(n string) graph.Node { return graph.Node{ID: "service:" + n, Kind: graph.NodeService, Name: n} }
	e := func(src, dst string, rate float64) graph.Edge {
		return graph.Edge{ID: src + "->" + dst, Source: src, Target: dst, Kind: graph.EdgeSync, RatePerS: rate}
	}
	return graph.NewSnapshot(time.Unix(0, 0), time.Minute,
		[]graph.Node{{ID: "client:client", Kind: graph.NodeClient, Name: "client"}, svc("gateway"), svc("checkout"), svc("catalog"), svc("payment"), svc("admin")},
		[]graph.Edge{
			e("client:client", "service:gateway", 100),
			e("service:gateway", "service:checkout", 50),
			e("service:gateway", "service:catalog", 50),
			e("service:checkout", "service:payment", 50),
			e("service:admin", "service:payment", 1),    // a batch job nobody calls
			e("service:payment", "service:checkout", 5), // a cycle back
		})
}

func TestBlastRadius(t *testing.T) {
	b := newBlaster(blastSnapshot())
	t.Run("edge", func(t *testing.T) {
		r := b.radius(finding.Subject{EdgeID: "service:checkout->service:payment"})
		// checkout takes 55/s (50 from gateway, 5 back from payment) and
		// sends 50/s to payment; half of gateway's traffic goes to checkout.
		require.Equal(t, []finding.Affected{
			{Node: "checkout", NodeID: "service:checkout", Share: 0.9091, Hops: 0},
			{Node: "gateway", NodeID: "service:gateway", Share: 0.4545, Hops: 1},
			{Node: "payment", NodeID: "service:payment", Share: 0.0891, Hops: 1},
			{Node: "admin", NodeID: "service:admin", Share: 0.0891, Hops: 2},
		}, r.Upstream)
		require.Equal(t, []finding.Affected{
			{Node: "gateway", NodeID: "service:gateway", Share: 0.4545, Hops: 1},
			{Node: "admin", NodeID: "service:admin", Share: 0.0891, Hops: 2},
		}, r.EntryPoints)
	})
	t.Run("node", func(t *testing.T) {
		r := b.radius(finding.Subject{NodeID: "service:payment"})
		ids := []string{}
		for _, a := range r.Upstream {
			ids = append(ids, a.NodeID)
		}
		require.Equal(t, []string{"service:admin", "service:checkout", "service:gateway"}, ids, "all of admin's calls go to payment")
		require.Len(t, r.EntryPoints, 2, "gateway (called by clients) and admin (called by nobody)")
	})
	t.Run("unknown subject", func(t *testing.T) {
		require.Nil(t, b.radius(finding.Subject{EdgeID: "nope"}))
	})
}
