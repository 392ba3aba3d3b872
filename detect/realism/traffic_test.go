package realism

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// simulate runs c with setup's hooks installed.
func simulate(t *testing.T, c Case, setup func(*sim)) *sim {
	t.Helper()
	c.Seed = c.seed()
	sys, _ := c.system()
	s, err := newSim(c, sys)
	require.NoError(t, err)
	if setup != nil {
		setup(s)
	}
	require.NoError(t, s.run(context.Background()))
	return s
}

// TestTrafficExportShape checks the SDK model end to end: one resource per
// request, each replica exporting on its own 5s phase, traces split across
// requests (the root after some of its descendants: each replica exports
// on its own phase, so the root is in the very last request only about
// once in as many replicas as the trace crosses), a share of requests
// re-sent.
func TestTrafficExportShape(t *testing.T) {
	type seen struct {
		first, last time.Time
		requests    int
	}
	spans := map[[8]byte]time.Time{} // first delivery of each span
	traces := map[[16]byte]*seen{}
	roots := map[[16]byte]time.Time{}
	lastExport := map[string]time.Time{}
	lastEnd := map[string]time.Time{}
	instances := map[string]string{}
	var gaps []time.Duration
	maxDelay := time.Duration(0)
	resent := 0
	s := simulate(t, Case{Shape: SyncChain, Rate: 10, Duration: 6 * time.Minute}, func(s *sim) {
		s.resendShare = 0.02 // more than production's, to see some in a short run
		s.onDeliver = func(x *Export, at time.Time) {
			if at.Sub(x.At) > time.Second {
				resent++
				return
			}
			instances[x.Resource.Instance] = x.Resource.Service
			if prev, ok := lastExport[x.Resource.Instance]; ok {
				gaps = append(gaps, x.At.Sub(prev))
			}
			lastExport[x.Resource.Instance] = x.At
			for i := 1; i < len(x.Spans); i++ {
				require.False(t, x.Spans[i].End.Before(x.Spans[i-1].End), "a request lists spans in the order they ended")
			}
			if end, ok := lastEnd[x.Resource.Instance]; ok && len(x.Spans) > 0 {
				require.False(t, x.Spans[0].End.Before(end), "a replica exports its spans in the order they ended")
			}
			if len(x.Spans) > 0 {
				lastEnd[x.Resource.Instance] = x.Spans[len(x.Spans)-1].End
			}
			inReq := map[[16]byte]bool{}
			for _, sp := range x.Spans {
				require.Equal(t, x.Resource, sp.replica.res, "a request carries one resource's spans")
				maxDelay = max(maxDelay, at.Sub(sp.End))
				spans[sp.ID] = at
				tr := traces[sp.Trace]
				if tr == nil {
					tr = &seen{first: at}
					traces[sp.Trace] = tr
				}
				if !inReq[sp.Trace] {
					inReq[sp.Trace] = true
					tr.requests++
				}
				tr.last = at
				if sp.Parent == ([8]byte{}) {
					roots[sp.Trace] = at
				}
			}
		}
	})
	require.Len(t, instances, 2+3+3, "one service.instance.id per replica")
	for _, g := range gaps {
		require.Equal(t, ScheduledDelay, g, "at 10 req/s every export is the timer's")
	}
	require.LessOrEqual(t, maxDelay, ScheduledDelay+21*time.Millisecond, "a span waits at most the scheduled delay (plus the network)")
	split, rootLast, rootNotFirst := 0, 0, 0
	for id, tr := range traces {
		root, ok := roots[id]
		if !ok {
			continue
		}
		if tr.requests > 1 {
			split++
		}
		if !root.Before(tr.last) {
			rootLast++
		}
		if root.After(tr.first) {
			rootNotFirst++
		}
	}
	n := len(roots)
	t.Logf("%d traces: %d split across requests, root after a descendant in %d, in the last request in %d; %d requests re-sent, %d spans refused as duplicates",
		n, split, rootNotFirst, rootLast, s.stats.Resent, s.stats.Refused)
	require.Greater(t, n, 3000)
	require.GreaterOrEqual(t, split, n*99/100, "every trace crosses replicas, so requests (but those cut by the end of the run)")
	require.Greater(t, float64(rootNotFirst)/float64(n), 0.3, "roots often arrive after their descendants")
	require.Greater(t, float64(rootLast)/float64(n), 0.1, "and last of all")
	require.Less(t, float64(rootLast)/float64(n), 1.0, "but not always: exporters tick at their own phases")
	require.Positive(t, s.stats.Resent)
	require.Equal(t, s.stats.Resent, resent, "re-sent requests reach the collector twice")
}

// TestTrafficFullBatches checks that at 1,000 req/s the SDK exports per 512
// spans, before the timer.
func TestTrafficFullBatches(t *testing.T) {
	biggest := 0
	s := simulate(t, Case{Shape: SyncChain, Rate: 1000, Duration: 4 * time.Second}, func(s *sim) {
		s.onDeliver = func(x *Export, _ time.Time) { biggest = max(biggest, len(x.Spans)) }
	})
	require.Positive(t, s.stats.FullExports)
	require.Equal(t, MaxExportBatchSize, biggest)
	require.Zero(t, s.stats.Dropped)
}

// TestTrafficKafka checks the consumer model: 12 partitions whose total
// lag jitters and never returns to 0, batch spans linking at most 128
// producer spans, and a throttled group consuming half of what is produced.
func TestTrafficKafka(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		var polls []float64
		parts := map[int32]bool{}
		maxLinks := 0
		simulate(t, Case{Shape: BatchConsumer, Rate: 10, Duration: 10 * time.Minute}, func(s *sim) {
			s.onLag = func(ss []lag.Sample) {
				total := 0.0
				for _, x := range ss {
					total += x.Lag
					parts[x.Partition] = true
				}
				polls = append(polls, total)
			}
			s.onDeliver = func(x *Export, _ time.Time) {
				for _, sp := range x.Spans {
					maxLinks = max(maxLinks, len(sp.Links))
				}
			}
		})
		require.Len(t, parts, 12)
		require.Len(t, polls, 40, "a broker poll every 15s")
		for i, l := range polls {
			require.Positive(t, l, "poll %d: total lag returned to 0", i)
		}
		require.NotEqual(t, polls[len(polls)-1], polls[len(polls)-2], "lag jitters")
		require.Positive(t, maxLinks)
		require.LessOrEqual(t, maxLinks, LinkLimit)
	})
	t.Run("throttled to half", func(t *testing.T) {
		type reading struct{ end, committed float64 }
		var at []reading
		c := Case{Shape: ConsumerLagFault, Rate: 30, Onset: 2 * time.Minute, Duration: 6 * time.Minute}
		simulate(t, c, func(s *sim) {
			s.onLag = func(ss []lag.Sample) {
				var r reading
				for _, x := range ss {
					r.end += x.End
					r.committed += x.Committed
				}
				at = append(at, r)
			}
		})
		// From the 10th poll (+2m18s) to the last (+5m48s).
		a, b := at[9], at[len(at)-1]
		ratio := (b.committed - a.committed) / (b.end - a.end)
		require.InDelta(t, 0.5, ratio, 0.05, "consumed / produced after the onset")
	})
}

// TestSettingsAreTheCollectorDefaults pins the settings a run reads from
// the components to the collector's documented defaults (docs/configuration.md):
// the matrix judges what ships.
func TestSettingsAreTheCollectorDefaults(t *testing.T) {
	c := Case{Shape: SyncChain, Rate: 1, Duration: time.Second}
	c.Seed = c.seed()
	sys, _ := c.system()
	s, err := newSim(c, sys)
	require.NoError(t, err)
	require.Equal(t, Settings{Window: time.Minute, Bucket: 5 * time.Second, PairTTL: 10 * time.Second, EvalInterval: 5 * time.Second,
		Hold: 5 * time.Second, KeepFiring: 10 * time.Second, TraceIdle: 5 * time.Second, SampleOneIn: 1, BrokerPoll: 15 * time.Second}, s.opts)
}

// TestFaultVisibleIsAFaultShapedSpan: a fault becomes visible with the
// first export request carrying a span it shaped, as Result.Visible says: a
// failing span for an error fault (the callee's failing server span, or
// its caller's failing client span), never a call to the faulty service
// that succeeded; a slow server span for a slowdown.
func TestFaultVisibleIsAFaultShapedSpan(t *testing.T) {
	for _, tc := range []struct {
		shape  Shape
		rate   float64
		shaped func(sp *Span) bool // what a span the fault shaped looks like
	}{
		{RetryStormFault, 1, func(sp *Span) bool { return sp.Error }},
		{RetryStormFault, 10, func(sp *Span) bool { return sp.Error }},
		{BottleneckFault, 1, func(sp *Span) bool { return sp.End.Sub(sp.Start) > 100*time.Millisecond }},
	} {
		c := Case{Shape: tc.shape, Rate: tc.rate, Onset: 30 * time.Second, Duration: 90 * time.Second}
		t.Run(c.Name(), func(t *testing.T) {
			onset := Start.Add(c.Onset)
			var first time.Time // first delivery of a span the fault shaped
			marked := 0
			s := simulate(t, c, func(s *sim) {
				s.onDeliver = func(x *Export, at time.Time) {
					for _, sp := range x.Spans {
						if !sp.Fault {
							continue
						}
						marked++
						require.True(t, tc.shaped(sp), "%s span %s of %s at +%v marked as the fault's", sp.Kind, sp.Name, x.Resource.Service, sp.Start.Sub(onset))
						require.False(t, sp.Start.Before(onset.Add(-time.Second)), "a span of before the onset marked as the fault's")
						if first.IsZero() {
							first = at
						}
					}
				}
			})
			require.Positive(t, marked)
			require.Equal(t, first, s.faultVisible)
		})
	}
}
