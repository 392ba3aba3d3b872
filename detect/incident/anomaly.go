package incident

import (
	"fmt"
	"math"

	"github.com/seed-a49a8342/cartograph/graph"
)

// Bounds of what counts as a change rather than noise.
const (
	// latencyFloorMs is the least usual latency a rise is measured
	// against: a 0.3 ms call taking 1 ms is no incident's cause.
	latencyFloorMs = 10
	// minRiseMs is the least rise of own latency or self time judged.
	minRiseMs = 2
	// errScale is the rise of own error ratio that scores half.
	errScale = 0.05
	// errSigmas is how many binomial standard deviations of the usual
	// error ratio a rise must exceed to count.
	errSigmas = 3
	// minErrBase is the least usual error ratio the noise is judged at.
	minErrBase = 0.005
	// minRate is the least rate (per second) a producer's or consumer's
	// change is judged at.
	minRate = 0.2
	// rateSigmas is how many Poisson standard deviations of the usual
	// count a rate's change must exceed to count.
	rateSigmas = 3
)

// aspect is one way a node's own behaviour moved: a score in [0, 1] and
// the reason, in words.
type aspect struct {
	score  float64
	reason string
}

// anomaly is how far a node's own behaviour moved from its baseline: the
// largest of its aspects, all of them listed.
type anomaly struct {
	score   float64
	aspects []aspect // largest first, those above reasonFloor
}

// reasonFloor is the aspect score from which it is given as a reason.
const reasonFloor = 0.15

// sat maps a relative change r >= 0 to [0, 1): r/(1+r), 0.5 at r = 1.
func sat(r float64) float64 {
	if !(r > 0) {
		return 0
	}
	return r / (1 + r)
}

// judge measures node n's anomaly against its baseline. "Own" means net
// of its callees: the rise of the latency (or error ratio) of the calls
// into n, less the rise of the latency (errors) of the sync calls n
// makes, each counted as often as n makes it per request. A caller that
// waits on a slow callee, or fails because its callee fails, is not
// anomalous itself; the callee is (SPEC.md: causes sit downstream of their
// symptoms on sync paths).
func (tr *Tracker) judge(t *topo, nf []nodeFeat, ef []edgeFeat, n int32) anomaly {
	f := &nf[n]
	b := tr.base.peek(nodeKey(t.nodes[n].ID))
	if b == nil {
		return anomaly{}
	}
	ms := tr.o.MinSamples
	var as []aspect
	work := f.inRate + f.consume
	// Latency, net of the sync calls made.
	if usual, ok := b.usual(mInMean, ms); ok && f.hasMean {
		rise := f.inMean - usual
		explained := 0.0
		for _, e := range t.out[n] {
			if t.edges[e].Kind == graph.EdgeSync && ef[e].hasMean && work > 0 {
				eb := tr.base.peek(edgeKey(t.edges[e].ID))
				if eu, ok := eb.usualOf(mEdgeMean, ms); ok {
					k := edgeRate(t, e) / work
					ku, ok := eb.usualOf(mEdgeK, ms)
					if !ok {
						ku = k
					}
					// The time spent in the calls made per request, now
					// against usually: slower calls, and more of them
					// (retries).
					explained += k*ef[e].mean - ku*eu
				}
			}
		}
		own := rise - max(explained, 0)
		// What is subtracted is itself measured to about a tenth.
		if own >= max(minRiseMs, 0.1*explained) {
			s := sat(own / max(usual, latencyFloorMs))
			r := fmt.Sprintf("latency of the calls into it rose from %s to %s", fmtMs(usual), fmtMs(f.inMean))
			if explained > minRiseMs {
				r += fmt.Sprintf(", %s of it its own (net of the calls it makes)", fmtMs(own))
			}
			as = append(as, aspect{s, r})
		}
	}
	// Self time on critical paths.
	if usual, ok := b.usual(mSelf, ms); ok && f.hasSelf {
		if rise := f.self - usual; rise >= minRiseMs {
			as = append(as, aspect{sat(rise / max(usual, latencyFloorMs)),
				fmt.Sprintf("its own time on the critical path rose from %s to %s a request", fmtMs(usual), fmtMs(f.self))})
		}
	}
	// Error ratio, net of the callees' errors, beyond the noise of the
	// calls counted.
	if usual, ok := b.usual(mInErr, ms); ok && f.inReq > 0 {
		now := f.inErr / f.inReq
		rise := now - usual
		explained := 0.0
		for _, e := range t.out[n] {
			if t.edges[e].Kind == graph.EdgeSync && ef[e].req > 0 && work > 0 {
				eb := tr.base.peek(edgeKey(t.edges[e].ID))
				if eu, ok := eb.usualOf(mEdgeErr, ms); ok {
					k := edgeRate(t, e) / work
					ku, ok := eb.usualOf(mEdgeK, ms)
					if !ok {
						ku = k
					}
					explained += k*ef[e].err/ef[e].req - ku*eu
				}
			}
		}
		p := max(usual, minErrBase)
		noise := errSigmas * math.Sqrt(p*(1-p)/f.inReq)
		own := rise - max(explained, 0) - noise
		if own > 0.1*explained {
			r := fmt.Sprintf("error ratio of the calls into it rose from %s to %s", fmtPct(usual), fmtPct(now))
			if explained > 0.005 {
				r += fmt.Sprintf(", more than its callees' errors explain (%s)", fmtPct(explained))
			}
			as = append(as, aspect{own / (own + errScale), r})
		}
	}
	// Messages produced: a flood (upstream on async paths); consumed: a
	// stall. Rates are judged as counts over the time they were counted
	// in, beyond the Poisson noise of the usual count.
	span := t.s.RecentSeconds
	if span <= 0 {
		span = t.s.WindowSeconds
	}
	if usual, ok := b.usual(mProduce, ms); ok && f.producer && usual >= minRate {
		if excess := (f.produce-usual)*span - rateSigmas*math.Sqrt(usual*span); excess > 0 {
			as = append(as, aspect{sat(excess / (usual * span) / 2), fmt.Sprintf("produces %.1fx its usual rate (%s, usually %s)", f.produce/usual, fmtRate(f.produce), fmtRate(usual))})
		}
	}
	if usual, ok := b.usual(mConsume, ms); ok && f.consumer && usual >= minRate {
		if deficit := (usual-f.consume)*span - rateSigmas*math.Sqrt(usual*span); deficit > 0 {
			as = append(as, aspect{min(deficit/(usual*span), 1),
				fmt.Sprintf("consumes %s of its usual rate (%s, usually %s)", fmtPct(max(f.consume/usual, 0)), fmtRate(f.consume), fmtRate(usual))})
		}
	}
	var a anomaly
	for _, x := range as {
		a.score = max(a.score, x.score)
		if x.score >= reasonFloor {
			a.aspects = append(a.aspects, x)
		}
	}
	sortAspects(a.aspects)
	return a
}

func sortAspects(as []aspect) {
	for i := 1; i < len(as); i++ {
		for j := i; j > 0 && as[j].score > as[j-1].score; j-- {
			as[j], as[j-1] = as[j-1], as[j]
		}
	}
}

// usualOf is usual on a baseline that may be nil.
func (b *baseline) usualOf(m metric, minSamples uint32) (float64, bool) {
	if b == nil {
		return 0, false
	}
	return b.usual(m, minSamples)
}

// edgeRate is edge e's rate as features counts it.
func edgeRate(t *topo, e int32) float64 {
	ed := t.edges[e]
	if t.s.RecentSeconds > 0 {
		if ed.Recent == nil {
			return 0
		}
		return float64(ed.Recent.Requests) / t.s.RecentSeconds
	}
	return ed.RatePerS
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func fmtPct(v float64) string {
	p := v * 100
	switch {
	case p == 0:
		return "0%"
	case p >= 10:
		return fmt.Sprintf("%.0f%%", p)
	case p >= 1:
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.2f%%", p)
}

func fmtRate(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.0f/s", v)
	}
	return fmt.Sprintf("%.2g/s", v)
}
