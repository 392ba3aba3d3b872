package graph

import (
	"cmp"
	"errors"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
)

// Limits at which the graph refuses to record a span (see refusal).
var (
	errNodeLimit = errors.New("node limit reached")
	errEdgeLimit = errors.New("edge limit reached")
)

// recorder is the Graph as its pairing store sees it: the callbacks that
// record on the graph's edges what pairs and what expires
// (pairing.Recorder), and the graph's table of peer candidates
// (pairing.Peers). Its methods run under Graph.mu, called from
// Graph.store's Consume and Expire, and record in epoch Graph.ep.
type recorder Graph

var (
	_ pairing.Recorder = (*recorder)(nil)
	_ pairing.Peers    = (*recorder)(nil)
)

// Pair records the call c -> sv, and the further attempts that answered
// the same client span, as retries.
func (r *recorder) Pair(c, sv pairing.Half, attempts, errs uint8) error {
	g := (*Graph)(r)
	err := g.pairSync(&c, &sv)
	if attempts > 0 && err == nil {
		g.addAttempts(c.Node, &sv, cmp.Or(Protocol(sv.Proto), Protocol(c.Proto)), attempts, errs)
	}
	return err
}

// Hop records a call from node from answered by h, and its further
// attempts.
func (r *recorder) Hop(from int32, h pairing.Half, clientSide bool, attempts, errs uint8) error {
	g := (*Graph)(r)
	err := g.observeHop(from, &h, clientSide)
	if attempts > 0 {
		g.addAttempts(from, &h, cmp.Or(Protocol(h.Proto), ProtocolInternal), attempts, errs)
	}
	return err
}

// Uncalled records a call to h from the virtual client node, and its
// further attempts.
func (r *recorder) Uncalled(h pairing.Half, clientSide bool, attempts, errs uint8) error {
	g := (*Graph)(r)
	err := g.observeUncalled(&h, clientSide)
	if attempts > 0 {
		if cl := g.node(clientNodeKey, g.ep); cl >= 0 {
			g.addAttempts(cl, &h, Protocol(h.Proto), attempts, errs)
		}
	}
	return err
}

// Attempt records sv as one more attempt of a call from node from.
func (r *recorder) Attempt(from int32, sv pairing.Half) error {
	return (*Graph)(r).observeAttempt(from, &sv)
}

// Unpaired records call c to the node of its peer candidate.
func (r *recorder) Unpaired(c pairing.Half) error {
	g := (*Graph)(r)
	n := g.peerNodeOf(c.Peer, g.ep)
	if n < 0 {
		return errNodeLimit
	}
	return g.observeUnpaired(&c, n)
}

// Unanswered records call c, given up at its TTL, on the edge to callee.
func (r *recorder) Unanswered(c pairing.Half, callee int32, sampledOut bool) {
	g := (*Graph)(r)
	e := g.edge(c.Node, callee, Protocol(c.Proto), "")
	if e == nil {
		return
	}
	st := e.ring.at(g.ep)
	st.call(c.N, c.Err, c.Retry)
	if sampledOut {
		// A sampled call whose server span was most likely sampled out,
		// not missing: the samplers along this hop do not agree.
		g.latency(&st.Client, duration(&c))
		return
	}
	// The call never reached the callee (refused, timed out, or failed
	// fast by a breaker).
	st.Unanswered += uint64(c.N)
	switch Failure(c.Fail) {
	case FailureUnreachable:
		st.Refused += uint64(c.N)
	case FailureRejected:
		st.Rejected += uint64(c.N)
	}
	g.latency(&st.UnansweredLatency, duration(&c))
}

// Message records the hop of a message from producer p to consumer w.
func (r *recorder) Message(p pairing.Half, w pairing.Waiter) {
	(*Graph)(r).pairAsync(&p, &w)
}

// LateMessage records the delay of a message whose producer's half-edge
// expired before its consumer w came.
func (r *recorder) LateMessage(w pairing.Waiter, end int64) {
	g := (*Graph)(r)
	g.m.pairs.WithLabelValues("async_late").Inc()
	if d := w.Start - end; d >= 0 {
		g.latency(&g.edgeIx[w.Edge].ring.at(g.ep).Delay, d)
	}
}

// unplacedReasons are the graph's reasons for the pairing store's.
var unplacedReasons = [...]UnplacedReason{
	pairing.ReasonClientNoPeer:  ReasonClientNoPeer,
	pairing.ReasonParentNotSeen: ReasonParentNotSeen,
	pairing.ReasonSampledOut:    ReasonSampledOut,
}

// Unplaced counts a span of node unplaced for reason.
func (r *recorder) Unplaced(node int32, reason pairing.Reason) {
	g := (*Graph)(r)
	g.unplaced.count(g.nodeIx[node].key, unplacedReasons[reason], g.ep)
}

// Example remembers the name of span ref of the batch being consumed as an
// example of a span of node that may end unplaced for reason.
func (r *recorder) Example(ref, node int32, reason pairing.Reason) {
	g := (*Graph)(r)
	g.unplaced.example(g.nodeIx[node].key, unplacedReasons[reason], g.batch[ref].Operation)
}

// Peer returns the peer candidate of span ref of the batch being consumed.
func (r *recorder) Peer(ref int32) int32 {
	g := (*Graph)(r)
	return g.peerCandidate(g.batch[ref].Peer)
}

// ManyPeers reports whether peer candidate p is an overflow peer.
func (r *recorder) ManyPeers(p int32) bool { return r.peerIx[p].IsOverflow() }

func duration(h *pairing.Half) int64 { return h.End - h.Start }

// pairSync records one call c -> sv. Caller holds mu.
func (g *Graph) pairSync(c, sv *pairing.Half) error {
	proto := Protocol(sv.Proto)
	if proto == ProtocolUnknown {
		proto = Protocol(c.Proto)
	}
	e := g.edge(c.Node, sv.Node, proto, "")
	if e == nil {
		return errEdgeLimit
	}
	g.m.pairCounter(&g.m.syncPairs, "sync").Inc()
	st := e.ring.at(g.ep)
	// The caller's weight: kept client spans, paired or not, then sum to
	// an unbiased estimate of the calls whatever the callee's sampler.
	st.call(c.N, c.Err || sv.Err, c.Retry)
	g.latency(&st.Server, duration(sv))
	g.latency(&st.Client, duration(c))
	return nil
}

// pairAsync records the hop from producer p to consumer w. Caller holds mu.
func (g *Graph) pairAsync(p *pairing.Half, w *pairing.Waiter) {
	g.m.pairCounter(&g.m.asyncPairs, "async").Inc()
	var e *edgeState
	if w.Edge >= 0 {
		e = g.edgeIx[w.Edge]
	} else {
		if p.Peer < 0 {
			g.m.dropped.WithLabelValues("no_destination").Inc()
			return
		}
		// The consumer named no destination: it reads the producer's.
		if e = g.edge(p.Peer, w.Node, Protocol(w.Proto), w.Group); e == nil {
			return
		}
		e.ring.at(g.ep).call(p.N, false, false)
	}
	if d := w.Start - p.End; d >= 0 {
		g.latency(&e.ring.at(g.ep).Delay, d)
	} else {
		g.m.dropped.WithLabelValues("negative_delay").Inc()
	}
}

// observeUnpaired records a call c that no server span answers, to the
// database or external node n. Caller holds mu.
func (g *Graph) observeUnpaired(c *pairing.Half, n int32) error {
	e := g.edge(c.Node, n, Protocol(c.Proto), "")
	if e == nil {
		return errEdgeLimit
	}
	st := e.ring.at(g.ep)
	st.call(c.N, c.Err, c.Retry)
	g.latency(&st.Client, duration(c))
	return nil
}

// observeUncalled records a span nobody instrumented called: an edge from
// the virtual client node. With clientSide, sv is a client span naming its
// own service, and its duration is the caller's view. Caller holds mu.
func (g *Graph) observeUncalled(sv *pairing.Half, clientSide bool) error {
	cl := g.node(clientNodeKey, g.ep)
	if cl < 0 {
		return errNodeLimit
	}
	return g.observeHop(cl, sv, clientSide)
}

// observeHop records one call from node src answered by h, a span of
// another service that no client span of src pairs with: its parent is a
// span of src (or src is the virtual client). The protocol is h's, or
// internal when h names none; with clientSide, h's duration is the
// caller's view of the call, else the callee's. Caller holds mu.
func (g *Graph) observeHop(src int32, h *pairing.Half, clientSide bool) error {
	proto := Protocol(h.Proto)
	if proto == ProtocolUnknown && g.nodeIx[src].key != clientNodeKey {
		proto = ProtocolInternal
	}
	e := g.edge(src, h.Node, proto, "")
	if e == nil {
		return errEdgeLimit
	}
	st := e.ring.at(g.ep)
	st.call(h.N, h.Err, false)
	if clientSide {
		g.latency(&st.Client, duration(h))
	} else {
		g.latency(&st.Server, duration(h))
	}
	return nil
}

// observeAttempt records a further server span sv answering a client span
// of node src that already paired with another: one more attempt of the
// same call, so a retry. Caller holds mu.
func (g *Graph) observeAttempt(src int32, sv *pairing.Half) error {
	errs := uint8(0)
	if sv.Err {
		errs = 1
	}
	return g.addAttempts(src, sv, Protocol(sv.Proto), 1, errs)
}

// addAttempts records n further attempts (errs of them failed) of a call
// from src answered by server span sv, as requests that are retries.
// Caller holds mu.
func (g *Graph) addAttempts(src int32, sv *pairing.Half, proto Protocol, n, errs uint8) error {
	e := g.edge(src, sv.Node, proto, "")
	if e == nil {
		return errEdgeLimit
	}
	st := e.ring.at(g.ep)
	for i := range n {
		st.call(sv.N, i < errs, true)
	}
	if n == 1 {
		g.latency(&st.Server, duration(sv))
	}
	return nil
}

func (g *Graph) latency(sk **ddsketch.DDSketch, nanos int64) {
	if !addLatency(sk, g.latIx, nanos) {
		g.m.dropped.WithLabelValues("invalid_duration").Inc()
	}
}

// peerCandidate interns the node a client span would call if unanswered.
// Candidates are not nodes until a span expires unanswered. Caller holds
// mu.
func (g *Graph) peerCandidate(k NodeKey) int32 {
	if k.Kind == 0 || k.Name == "" {
		return -1
	}
	h := nodeCacheHash(&k)
	if i := g.peerCache.get(h); i >= 0 && int(i) < len(g.peerIx) && g.peerIx[i] == k {
		g.peerSeen[i] = g.ep
		return i
	}
	if i, ok := g.peers[k]; ok {
		g.peerCache.put(h, i)
		g.peerSeen[i] = g.ep
		return i
	}
	if len(g.peerIx) >= g.opts.MaxNodes {
		return g.overflowPeer(k.Kind)
	}
	k.Group = strings.Clone(k.Group)
	k.Name = strings.Clone(k.Name)
	i := int32(len(g.peerIx))
	g.peerIx = append(g.peerIx, k)
	g.peerSeen = append(g.peerSeen, g.ep)
	g.peers[k] = i
	return i
}

// peerNodeOf returns the node of peer candidate p, marked seen in epoch ep,
// remembering it so that the next call skips the string-keyed node map
// (retiring a node rewrites the cache). Overflow nodes are
// not remembered: each observation folded into one is counted by node.
func (g *Graph) peerNodeOf(p int32, ep int64) int32 {
	if int(p) < len(g.peerNode) {
		if n := g.peerNode[p]; n >= 0 {
			g.nodeIx[n].lastSeen = ep
			return n
		}
	}
	k := g.peerIx[p]
	n := g.node(k, ep)
	if n < 0 || k.IsOverflow() || g.nodeIx[n].key != k {
		return n
	}
	for len(g.peerNode) < len(g.peerIx) {
		g.peerNode = append(g.peerNode, -1)
	}
	g.peerNode[p] = n
	return n
}
