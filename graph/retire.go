package graph

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Nodes, edges and peer candidates leave memory once unseen for
// Options.IdleExpiry: addresses that change all the time (ip:port peers, pod
// names, per-request queues) would otherwise fill the node and edge limits
// for good, and every new real service after them would fold into an
// overflow node until a restart. What leaves memory stays in storage: the
// persister wrote its buckets while they were live.
//
// Everything in the graph refers to nodes, edges and peer candidates by
// index (pending half-edges, the span table, aliases, caches), so retiring
// compacts the three tables and rewrites every index through a remap, all
// under Graph.mu between two batches. Anything still referenced (a pending
// half-edge or a consumer waiting for its producer) is kept, however old.

// retired counts what left memory, by kind.
type retired struct{ nodes, edges, peers prometheus.Counter }

func newRetiredMetrics(reg prometheus.Registerer) retired {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartograph_graph_retired_total",
		Help: "Nodes, edges and peer addresses that left memory after being unseen for --idle-expiry, by kind (node, edge, peer); their history stays in storage.",
	}, []string{"kind"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return retired{nodes: c.WithLabelValues("node"), edges: c.WithLabelValues("edge"), peers: c.WithLabelValues("peer")}
}

// retireEvery is how often, in buckets, the graph looks for what to
// retire: an eighth of the idle horizon, at least every bucket.
func (g *Graph) retireEvery() int64 { return max(int64(g.opts.IdleExpiry)/g.bucketN/8, 1) }

// retireLocked retires the nodes, edges and peer candidates unseen since
// before ep minus the idle horizon, at most once per retireEvery buckets.
// Caller holds mu, outside any batch (no index is held on the stack).
func (g *Graph) retireLocked(ep int64) {
	if ep < g.retireAt {
		return
	}
	g.retireAt = ep + g.retireEvery()
	cutoff := ep - int64(g.opts.IdleExpiry)/g.bucketN
	if !g.anyIdle(cutoff) {
		return
	}

	keepNode := make([]bool, len(g.nodeIx))
	keepEdge := make([]bool, len(g.edgeIx))
	keepPeer := make([]bool, len(g.peerIx))
	for i := range g.nodeIx {
		keepNode[i] = g.nodeIx[i].lastSeen >= cutoff
	}
	for i, e := range g.edgeIx {
		keepEdge[i] = e.lastSeen >= cutoff
	}
	for i := range g.peerIx {
		keepPeer[i] = g.peerSeen[i] >= cutoff
	}
	// Whatever a pending half-edge or a waiting consumer refers to stays.
	g.store.Referenced(keepNode, keepEdge, keepPeer)
	// An edge keeps its endpoints.
	for i, e := range g.edgeIx {
		if keepEdge[i] {
			keepNode[e.key.src], keepNode[e.key.dst] = true, true
		}
	}

	nodeMap := remapOf(keepNode)
	edgeMap := g.compactEdges(keepEdge, nodeMap) // reads the old node table
	peerMap := g.compactPeers(keepPeer, nodeMap)
	g.compactNodes(nodeMap)
	g.remapReferences(nodeMap, edgeMap, peerMap)
}

// anyIdle reports whether anything was unseen since before cutoff.
func (g *Graph) anyIdle(cutoff int64) bool {
	for i := range g.nodeIx {
		if g.nodeIx[i].lastSeen < cutoff {
			return true
		}
	}
	for _, e := range g.edgeIx {
		if e.lastSeen < cutoff {
			return true
		}
	}
	for _, at := range g.peerSeen {
		if at < cutoff {
			return true
		}
	}
	return false
}

// remapOf returns the remap from old index to new of a table compacted to
// the kept entries (-1: retired).
func remapOf(keep []bool) []int32 {
	remap := make([]int32, len(keep))
	n := int32(0)
	for i, k := range keep {
		if !k {
			remap[i] = -1
			continue
		}
		remap[i] = n
		n++
	}
	return remap
}

// compactNodes drops the nodes that remap retires.
func (g *Graph) compactNodes(remap []int32) {
	n, overflow := 0, int64(0)
	for i := range g.nodeIx {
		if remap[i] < 0 {
			delete(g.nodes, g.nodeIx[i].key)
			g.retired.nodes.Inc()
			continue
		}
		g.nodeIx[n] = g.nodeIx[i]
		g.nodes[g.nodeIx[n].key] = int32(n)
		if g.nodeIx[n].key.IsOverflow() {
			overflow++
		}
		n++
	}
	clear(g.nodeIx[n:]) // drop the strings
	g.nodeIx = g.nodeIx[:n]
	g.nOverflow.Store(overflow)
}

// compactEdges drops the edges not kept, remembering the consumer edges
// among them for lag (see dormant), renumbers the others' endpoints
// through nodeMap and returns the remap of edge indices.
func (g *Graph) compactEdges(keep []bool, nodeMap []int32) []int32 {
	remap := make([]int32, len(g.edgeIx))
	n := 0
	for i, e := range g.edgeIx {
		delete(g.edges, e.key)
		if !keep[i] {
			remap[i] = -1
			g.rememberDormant(e)
			g.retired.edges.Inc()
			continue
		}
		remap[i] = int32(n)
		e.idx = int32(n)
		e.key.src, e.key.dst = nodeMap[e.key.src], nodeMap[e.key.dst]
		g.edgeIx[n] = e
		n++
	}
	clear(g.edgeIx[n:])
	g.edgeIx = g.edgeIx[:n]
	for i, e := range g.edgeIx {
		g.edges[e.key] = int32(i)
	}
	return remap
}

// compactPeers drops the peer candidates not kept, with their cached
// nodes, and returns the remap of peer indices.
func (g *Graph) compactPeers(keep []bool, nodeMap []int32) []int32 {
	remap := make([]int32, len(g.peerIx))
	n := 0
	for i := range g.peerIx {
		if !keep[i] {
			remap[i] = -1
			delete(g.peers, g.peerIx[i])
			g.retired.peers.Inc()
			continue
		}
		remap[i] = int32(n)
		g.peerIx[n], g.peerSeen[n] = g.peerIx[i], g.peerSeen[i]
		g.peers[g.peerIx[n]] = int32(n)
		n++
	}
	clear(g.peerIx[n:])
	g.peerIx, g.peerSeen = g.peerIx[:n], g.peerSeen[:n]

	cached := g.peerNode
	g.peerNode = g.peerNode[:0:0]
	for old, node := range cached {
		if p := remap[old]; p >= 0 {
			for len(g.peerNode) <= int(p) {
				g.peerNode = append(g.peerNode, -1)
			}
			g.peerNode[p] = remapIndex(nodeMap, node)
		}
	}
	return remap
}

// remapReferences rewrites every node, edge and peer index held outside
// the three tables: the pairing store's (pending half-edges and their
// waiters, aliases, the span table).
func (g *Graph) remapReferences(nodeMap, edgeMap, peerMap []int32) {
	g.store.Remap(nodeMap, edgeMap, peerMap)
}

// remapIndex returns the new index of i (-1 stays -1).
func remapIndex(remap []int32, i int32) int32 {
	if i < 0 || int(i) >= len(remap) {
		return -1
	}
	return remap[i]
}

// rememberDormant keeps a retiring destination -> consumer edge among the
// dormant edges, so that a consumer stalled for longer than the idle
// horizon still has its lag on its own edge. The set is bounded by
// MaxEdges (the oldest goes first) and costs nothing while no lag source
// reports the group. Caller holds mu.
func (g *Graph) rememberDormant(e *edgeState) {
	if e.kind != EdgeAsync {
		return
	}
	src, dst := g.nodeIx[e.key.src].key, g.nodeIx[e.key.dst].key
	if src.Kind != NodeTopic && src.Kind != NodeQueue || dst.Kind != NodeService {
		return
	}
	if len(g.dormant) >= g.opts.MaxEdges {
		var oldest dormantEdge
		at := int64(1<<63 - 1)
		for d, seen := range g.dormant {
			if seen < at {
				oldest, at = d, seen
			}
		}
		delete(g.dormant, oldest)
	}
	g.dormant[dormantEdge{dest: src, consumer: dst, proto: e.key.proto, group: e.key.group}] = e.lastSeen
}
