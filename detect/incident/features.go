package incident

import (
	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/seed-a49a8342/cartograph/graph"
)

// topo is one snapshot's graph as indices: its nodes (idle ones too, so a
// stalled consumer or a callee no call reaches any more still has a place)
// and its edges with their ends, in and out.
type topo struct {
	s     *graph.Snapshot
	nodes []graph.Node
	byID  map[string]int32
	edges []*graph.Edge
	src   []int32
	dst   []int32
	out   [][]int32 // node -> edges out of it
	in    [][]int32 // node -> edges into it
	byEID map[string]int32
}

func newTopo(s *graph.Snapshot) *topo {
	t := &topo{s: s, byID: make(map[string]int32, len(s.Nodes)+len(s.IdleNodes)), byEID: make(map[string]int32, len(s.Edges)+len(s.IdleEdges))}
	t.nodes = append(append(make([]graph.Node, 0, len(s.Nodes)+len(s.IdleNodes)), s.Nodes...), s.IdleNodes...)
	for i, n := range t.nodes {
		t.byID[n.ID] = int32(i)
	}
	t.out, t.in = make([][]int32, len(t.nodes)), make([][]int32, len(t.nodes))
	add := func(e *graph.Edge) {
		si, ok1 := t.byID[e.Source]
		di, ok2 := t.byID[e.Target]
		if !ok1 || !ok2 {
			return
		}
		i := int32(len(t.edges))
		t.edges = append(t.edges, e)
		t.src, t.dst = append(t.src, si), append(t.dst, di)
		t.out[si] = append(t.out[si], i)
		t.in[di] = append(t.in[di], i)
		t.byEID[e.ID] = i
	}
	for i := range s.Edges {
		add(&s.Edges[i])
	}
	for i := range s.IdleEdges {
		add(&s.IdleEdges[i])
	}
	return t
}

func (t *topo) kind(n int32) graph.NodeKind { return t.nodes[n].Kind }

func (t *topo) destination(n int32) bool {
	k := t.kind(n)
	return k == graph.NodeTopic || k == graph.NodeQueue
}

// nodeFeat are a node's figures in one snapshot.
type nodeFeat struct {
	inReq    float64 // calls into it in the window (sync and async)
	inErr    float64 // of which failed
	inRate   float64 // sync calls into it per second
	inMean   float64 // mean latency of the sync calls into it, ms (callee side where seen)
	hasMean  bool
	self     float64 // mean critical-path self time per trace, ms
	hasSelf  bool
	produce  float64 // messages per second it sends to destinations
	producer bool
	consume  float64 // messages per second it takes from destinations
	consumer bool
}

// edgeFeat are an edge's figures in one snapshot.
type edgeFeat struct {
	req     float64
	err     float64
	mean    float64 // ms, as the caller waits where seen
	hasMean bool
	p95     float64
	hasP95  bool
}

// features reads every node's and edge's figures from a snapshot. Rates
// are over the newest buckets (Edge.Recent) where the snapshot has them,
// so that a flood or a stall shows within an evaluation or two; latencies
// and error ratios over the window, where there are enough calls to tell
// a change from noise.
func features(t *topo) ([]nodeFeat, []edgeFeat) {
	nf := make([]nodeFeat, len(t.nodes))
	ef := make([]edgeFeat, len(t.edges))
	recent := t.s.RecentSeconds
	rate := func(e *graph.Edge) float64 {
		if recent > 0 {
			if e.Recent == nil {
				return 0
			}
			return float64(e.Recent.Requests) / recent
		}
		return e.RatePerS
	}
	for i, e := range t.edges {
		f := &ef[i]
		f.req, f.err = float64(e.Requests), float64(e.Errors)
		if m, ok := mean(e.Stats.Client); ok {
			f.mean, f.hasMean = m, true
		} else if m, ok := mean(e.Stats.Server); ok {
			f.mean, f.hasMean = m, true
		}
		if e.Latency != nil {
			f.p95, f.hasP95 = e.Latency.P95, true
		}
		src, dst := &nf[t.src[i]], &nf[t.dst[i]]
		dst.inReq += f.req
		dst.inErr += f.err
		switch {
		case e.Kind == graph.EdgeSync:
			dst.inRate += rate(e)
		case t.destination(t.dst[i]):
			src.producer = true
			src.produce += rate(e)
		case t.destination(t.src[i]):
			dst.consumer = true
			r := rate(e)
			if r == 0 && e.Idle && e.Lag != nil && e.Lag.ConsumeRate != nil {
				r = *e.Lag.ConsumeRate
			}
			dst.consume += r
		}
	}
	// Mean latency into each node: the callee's own measurement where a
	// server span answered, else what its callers waited.
	sum := make([]float64, len(t.nodes))
	cnt := make([]float64, len(t.nodes))
	for i, e := range t.edges {
		if e.Kind != graph.EdgeSync || e.Requests == 0 {
			continue
		}
		m, ok := mean(e.Stats.Server)
		if !ok {
			m, ok = mean(e.Stats.Client)
		}
		if !ok {
			continue
		}
		w := float64(e.Requests)
		sum[t.dst[i]] += m * w
		cnt[t.dst[i]] += w
	}
	for i := range nf {
		if cnt[i] > 0 {
			nf[i].inMean, nf[i].hasMean = sum[i]/cnt[i], true
		}
	}
	// Self time on the critical paths of the entry operations, weighted by
	// their traces.
	clear(sum)
	clear(cnt)
	for _, p := range t.s.Paths {
		for _, sh := range p.Shares {
			if n, ok := t.byID[sh.Node]; ok && p.Traces > 0 {
				sum[n] += sh.SelfMs * float64(p.Traces)
				cnt[n] += float64(p.Traces)
			}
		}
	}
	for i := range nf {
		if cnt[i] > 0 {
			nf[i].self, nf[i].hasSelf = sum[i]/cnt[i], true
		}
	}
	return nf, ef
}

// mean is a latency sketch's mean (ms).
func mean(sk *ddsketch.DDSketch) (float64, bool) {
	if sk == nil || sk.IsEmpty() {
		return 0, false
	}
	c := sk.GetCount()
	if c <= 0 {
		return 0, false
	}
	return sk.GetSum() / c, true
}
