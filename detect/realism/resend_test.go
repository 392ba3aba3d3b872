package realism

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
)

// TestResentBatchesAt1000rps: at 1,000 requests/s an exporter's re-sent
// batch (arriving 5-6 s after the first, once the trace was analysed) must
// not start partial traces in the critical-path sampler. Its memory of
// the traces it completed is direct-mapped and forgot one in twenty by
// then: the re-sent spans of api became traces whose entry was api's
// SERVER span and whose call to pricing, with no SERVER span to answer it,
// was charged to the peer pricing:8080, and a bottleneck fired on
// "pricing:8080" next to the right one (the full matrix's
// bottleneck/1000rps/onset=30m0s); the re-sent spans of a replica warming
// up in a rolling restart made a 22-trace entry of catalog alone that was
// 1.9x its usual, and a bottleneck fired on a healthy system
// (rolling-restart/1000rps/20m0s). Re-sends are 10x production's share
// here, so that a short run holds many.
func TestResentBatchesAt1000rps(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("simulates 3 minutes at 1,000 requests/s")
	}
	c := Case{Shape: BottleneckFault, Rate: 1000, Onset: 2 * time.Minute, Duration: 3 * time.Minute}
	c.Seed = c.seed()
	sys, exp := c.system()
	s, err := newSim(c, sys)
	require.NoError(t, err)
	s.resendShare = 10 * ResendShare
	// The most traces an entry other than the gateway's held in a window.
	stray := map[string]int{}
	s.onEval = func(_ time.Time, snap *graph.Snapshot) {
		for _, p := range snap.Paths {
			if k := p.Node + " " + p.Operation; p.Node != "service:shop/gateway" {
				stray[k] = max(stray[k], p.Traces)
			}
		}
	}
	require.NoError(t, s.run(context.Background()))
	require.Greater(t, s.stats.Resent, 50, "re-sent export requests")
	r := Result{Case: c, Settings: s.opts, Visible: s.faultVisible, Stats: s.stats}
	r.score(s.obs.list(), exp)
	t.Log(r.Verdict())
	// A re-sent span the graph's memory of spans forgot (it is bounded,
	// and evicts some young spans while it grows to the load) still
	// reaches the sampler: a handful of partial traces, too few for an
	// entry to be judged.
	for k, n := range stray {
		require.Less(t, n, detect.DefaultBottleneckMinTraces, "entry %s made of partial traces started by re-sent spans (all: %v)", k, stray)
	}
	require.Empty(t, r.FalsePositives, r.Verdict())
	require.True(t, r.TruePositive, r.Verdict())
}
