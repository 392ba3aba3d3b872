package graph

import (
	"github.com/DataDog/sketches-go/ddsketch"
	"hash/maphash"
	"strings"
)

// Pairing follows the shape of Tempo's servicegraphs store: half-edges wait in
// a map keyed by fixed-size ids, in an insertion-ordered expiry list (the TTL
// is constant, so insertion order is expiry order), under a size cap.
//
//   - CLIENT span S and SERVER span whose parent is S meet at key (trace, S).
//   - A PRODUCER span P waits at key (trace, P) for the CONSUMER spans that
//     name it as parent or by span link; it stays until it expires, so every
//     consumer group reading the message pairs with it.
//   - A consumer that arrives before its producer leaves a waiter there.

type pendKey struct {
	trace TraceID
	span  SpanID
}

// link is the intrusive expiry-list linkage of E.
type link[E any] struct {
	prev, next E
	expireAt   int64
}

type listElem[E any] interface {
	comparable
	lnk() *link[E]
}

// list is an intrusive doubly linked list ordered by insertion.
type list[E listElem[E]] struct{ head, tail E }

func (l *list[E]) pushBack(e E) {
	var zero E
	ln := e.lnk()
	ln.prev, ln.next = l.tail, zero
	if l.tail != zero {
		l.tail.lnk().next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *list[E]) remove(e E) {
	var zero E
	ln := e.lnk()
	if ln.prev != zero {
		ln.prev.lnk().next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != zero {
		ln.next.lnk().prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	ln.prev, ln.next = zero, zero
}

// half is one side of an edge waiting for the other.
type half struct {
	node       int32 // the span's service node
	peer       int32 // client: peer candidate index (-1 none); producer: destination node (-1 none)
	start, end int64
	proto      Protocol
	err, retry bool
}

func (h *half) duration() int64 { return h.end - h.start }

// waiter is a consumer that arrived before its producer.
type waiter struct {
	edge  int32  // the destination->consumer edge, or -1 when the consumer named no destination
	node  int32  // consumer service node
	group string // consumer group (copied), used only when edge == -1
	start int64
	proto Protocol
}

const (
	hasClient uint8 = 1 << iota
	hasServer
	hasProducer
)

// entry is one pending half-edge. It holds no pointers, so the slab it
// lives in is never scanned by the garbage collector.
type entry struct {
	key      pendKey
	expireAt int64
	// h is the one waiting half: the client or producer span whose id is
	// key.span, or the server span whose parent it is (has says which). A
	// client and its server never wait together: the second pairs at once.
	h          half
	prev, next int32 // expiry list (insertion order), or free list (next)
	self       int32 // the entry's own slot
	waiters    int32 // consumers waiting on this producer: waitLists[waiters-1]; 0 none
	has        uint8
}

// Pending half-edges live in a slab of fixed-size chunks, addressed by
// int32 slot: entries never move (pointers into a chunk stay valid while the
// entry is live), the map from key to slot and the chunks hold no pointers
// (the garbage collector skips them), and freed slots are reused through a
// free list threaded by index. The slab keeps its high-water mark of chunks,
// bounded by MaxPending.
const (
	chunkShift = 12
	chunkSize  = 1 << chunkShift
	noSlot     = -1
)

// pendStore is the half-edge store. Caller holds Graph.mu.
type pendStore struct {
	idx        map[pendKey]int32
	chunks     []*[chunkSize]entry
	used       int32 // slots ever handed out (all chunks below are full)
	head, tail int32 // expiry list
	free       int32 // free list
	// waitLists are consumers waiting for their producer, by list; a
	// freed list keeps its capacity for reuse (freeWait).
	waitLists [][]waiter
	freeWait  []int32
}

func newPendStore() pendStore {
	return pendStore{idx: make(map[pendKey]int32), head: noSlot, tail: noSlot, free: noSlot}
}

func (p *pendStore) len() int { return len(p.idx) }

func (p *pendStore) at(i int32) *entry { return &p.chunks[i>>chunkShift][i&(chunkSize-1)] }

// get returns the entry for k, or nil.
func (p *pendStore) get(k pendKey) *entry {
	i, ok := p.idx[k]
	if !ok {
		return nil
	}
	return p.at(i)
}

// add returns a fresh entry for k, at the back of the expiry list.
func (p *pendStore) add(k pendKey, expireAt int64) *entry {
	var i int32
	if p.free != noSlot {
		i = p.free
		p.free = p.at(i).next
	} else {
		if p.used>>chunkShift == int32(len(p.chunks)) {
			p.chunks = append(p.chunks, new([chunkSize]entry))
		}
		i = p.used
		p.used++
	}
	en := p.at(i)
	*en = entry{key: k, expireAt: expireAt, self: i, prev: p.tail, next: noSlot}
	if p.tail != noSlot {
		p.at(p.tail).next = i
	} else {
		p.head = i
	}
	p.tail = i
	p.idx[k] = i
	return en
}

// remove frees en's slot and its waiter list.
func (p *pendStore) remove(en *entry) {
	delete(p.idx, en.key)
	if en.prev != noSlot {
		p.at(en.prev).next = en.next
	} else {
		p.head = en.next
	}
	if en.next != noSlot {
		p.at(en.next).prev = en.prev
	} else {
		p.tail = en.prev
	}
	if en.waiters != 0 {
		p.dropWaiters(en)
	}
	i := en.self
	*en = entry{next: p.free, self: i}
	p.free = i
}

// oldest returns the entry at the front of the expiry list, or nil.
func (p *pendStore) oldest() *entry {
	if p.head == noSlot {
		return nil
	}
	return p.at(p.head)
}

// waitList returns en's waiters, creating the list if needed.
func (p *pendStore) waitList(en *entry) *[]waiter {
	if en.waiters == 0 {
		if n := len(p.freeWait); n > 0 {
			en.waiters, p.freeWait = p.freeWait[n-1]+1, p.freeWait[:n-1]
		} else {
			p.waitLists = append(p.waitLists, nil)
			en.waiters = int32(len(p.waitLists))
		}
	}
	return &p.waitLists[en.waiters-1]
}

// waiting returns en's waiters without creating a list.
func (p *pendStore) waiting(en *entry) []waiter {
	if en.waiters == 0 {
		return nil
	}
	return p.waitLists[en.waiters-1]
}

// dropWaiters frees en's waiter list, keeping a small one's capacity.
func (p *pendStore) dropWaiters(en *entry) {
	w := &p.waitLists[en.waiters-1]
	clear(*w) // drop the group strings
	if cap(*w) > maxWaiters {
		*w = nil
	} else {
		*w = (*w)[:0]
	}
	p.freeWait = append(p.freeWait, en.waiters-1)
	en.waiters = 0
}

// maxWaiters bounds the consumers that may wait on one producer span.
const maxWaiters = 64

type retryKey struct {
	trace  TraceID
	parent SpanID
	op     uint64
}

type failedCall struct {
	id  SpanID
	end int64
}

// retryGroup remembers failed client calls from one parent span to one callee
// operation; a later call in the group is a retry.
type retryGroup struct {
	link[*retryGroup]
	key    retryKey
	failed [4]failedCall
	n      uint8
}

func (r *retryGroup) lnk() *link[*retryGroup] { return &r.link }

type role uint8

const (
	roleNone role = iota
	roleClient
	roleServer
	roleProducer
	roleConsumer
)

func roleOf(s *Span) role {
	if s.Messaging == MessagingReceive && len(s.Links) == 0 && s.Parent.IsZero() {
		// A poll that names no message (kafkajs eachBatch, for one): the
		// process spans it is followed by carry the messages; counting it
		// too would count a batch as one more message.
		return roleNone
	}
	switch s.Kind {
	case SpanServer:
		return roleServer
	case SpanClient:
		switch s.Messaging {
		case MessagingPublish:
			return roleProducer
		case MessagingReceive:
			return roleConsumer
		case MessagingSettle:
			return roleNone
		}
		return roleClient
	case SpanProducer:
		return roleProducer
	case SpanConsumer:
		if s.Messaging == MessagingSettle || s.Messaging == MessagingPublish {
			return roleNone
		}
		return roleConsumer
	}
	return roleNone
}

// refusal is why a span could not be taken.
type refusal uint8

const (
	accepted refusal = iota
	refusedPendingFull
	refusedNodeLimit
	refusedEdgeLimit
	refusedDuplicate
	refusedNoDestination
	numRefusals
)

var refusalText = [numRefusals]string{"", "half-edge store full", "node limit reached", "edge limit reached", "duplicate span id", "messaging span without destination"}
var refusalLabel = [numRefusals]string{"", "pending_full", "node_limit", "edge_limit", "duplicate", "no_destination"}

// ConsumeSpans adds spans to the graph. It returns how many spans were
// refused and why (half-edge store full, node or edge limit, duplicate span
// id); refused spans are also counted in metrics. It copies what it keeps and
// does not retain spans. Safe for concurrent use.
func (g *Graph) ConsumeSpans(spans []Span) (rejected int, reason string) {
	now := g.opts.Now()
	nowN := now.UnixNano()
	ep := g.epoch(now)
	var counts [numRefusals]int

	g.mu.Lock()
	g.expireLocked(nowN, ep)
	// Failed calls first, so that a retry is recognised whatever the order
	// of the attempts within one request.
	for i := range spans {
		if s := &spans[i]; s.Error && !s.Parent.IsZero() && roleOf(s) == roleClient {
			g.noteFailure(s, nowN)
		}
	}
	var last svcMemo
	for i := range spans {
		if r := g.consume(&spans[i], &last, nowN, ep); r != accepted {
			counts[r]++
		}
	}
	g.publishSizes()
	g.mu.Unlock()

	g.m.spans.Add(float64(len(spans)))
	if g.opts.Paths != nil {
		g.opts.Paths.ObserveSpans(spans)
	}
	var b strings.Builder
	for r := refusal(1); r < numRefusals; r++ {
		if counts[r] == 0 {
			continue
		}
		rejected += counts[r]
		g.m.refused.WithLabelValues(refusalLabel[r]).Add(float64(counts[r]))
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(refusalText[r])
	}
	return rejected, b.String()
}

// Expire ages out half-edges past their TTL, inferring virtual nodes for
// them. ConsumeSpans does this too; call Expire on a ticker so edges of idle
// senders still appear.
func (g *Graph) Expire() {
	now := g.opts.Now()
	g.mu.Lock()
	g.expireLocked(now.UnixNano(), g.epoch(now))
	g.publishSizes()
	g.mu.Unlock()
}

// svcMemo remembers the service node of the previous span of a batch:
// exporters group spans by resource, so runs of spans share a service and
// skip the string-keyed node map.
type svcMemo struct {
	name, ns string
	node     int32
	ok       bool
}

func (g *Graph) consume(s *Span, last *svcMemo, nowN, ep int64) refusal {
	var svc int32
	if last.ok && last.name == s.Service && last.ns == s.Namespace {
		svc = last.node // marked seen in ep by the lookup that filled last
	} else {
		k := NodeKey{Kind: NodeService, Group: s.Namespace, Name: s.Service}
		if svc = g.node(k, ep); svc < 0 {
			return refusedNodeLimit
		}
		// An overflow node is not remembered: each observation folded into
		// it is counted by node.
		*last = svcMemo{name: s.Service, ns: s.Namespace, node: svc, ok: g.nodeIx[svc].key == k}
	}
	switch roleOf(s) {
	case roleServer:
		return g.consumeServer(s, svc, nowN, ep)
	case roleClient:
		return g.consumeClient(s, svc, nowN, ep)
	case roleProducer:
		return g.consumeProducer(s, svc, nowN, ep)
	case roleConsumer:
		return g.consumeConsumer(s, svc, nowN, ep)
	}
	return accepted
}

func halfOf(s *Span, node int32) half {
	return half{node: node, peer: -1, start: s.Start, end: s.End, proto: s.Protocol, err: s.Error}
}

func (g *Graph) consumeServer(s *Span, svc int32, nowN, ep int64) refusal {
	sv := halfOf(s, svc)
	if s.Parent.IsZero() {
		return g.observeUncalled(&sv, ep)
	}
	k := pendKey{trace: s.Trace, span: s.Parent}
	en := g.pend.get(k)
	if en != nil && en.has&hasClient != 0 {
		g.learnAlias(en.h.peer, svc)
		r := g.pairSync(&en.h, &sv, ep)
		en.has &^= hasClient
		g.releaseIfEmpty(en)
		return r
	}
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			return refusedPendingFull
		}
	}
	switch {
	case en.has&hasServer != 0:
		// A second server span for one client span (a broken or hostile
		// sender): keep the first.
		return refusedDuplicate
	case en.has&hasProducer != 0:
		// Called by a producer span (an HTTP push from a broker, say): no
		// client will come.
		return g.observeUncalled(&sv, ep)
	}
	en.h = sv
	en.has |= hasServer
	return accepted
}

func (g *Graph) consumeClient(s *Span, svc int32, nowN, ep int64) refusal {
	c := halfOf(s, svc)
	c.retry = s.ResendCount > 0 || g.isRetry(s)
	k := pendKey{trace: s.Trace, span: s.ID}
	en := g.pend.get(k)
	if en != nil && en.has&hasServer != 0 {
		g.learnAlias(g.peerCandidate(s.Peer), en.h.node)
		r := g.pairSync(&c, &en.h, ep)
		en.has &^= hasServer
		g.releaseIfEmpty(en)
		return r
	}
	if en == nil && s.Peer.Kind == NodeDatabase {
		if p := g.peerCandidate(s.Peer); p >= 0 && g.peerAlias[p] < 0 {
			// Databases answer without a span of their own: record the
			// call now rather than hold it for the pair TTL (most of the
			// pending half-edges of a typical system, and the edge shows at
			// once). A database seen answering with a server span is
			// paired like a service.
			if n := g.peerNodeOf(p, ep); n >= 0 {
				return g.observeUnpaired(&c, n, ep)
			}
			return refusedNodeLimit
		}
	}
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			return refusedPendingFull
		}
	}
	if en.has&(hasClient|hasProducer) != 0 {
		return refusedDuplicate
	}
	c.peer = g.peerCandidate(s.Peer)
	en.h = c
	en.has |= hasClient
	return accepted
}

func (g *Graph) consumeProducer(s *Span, svc int32, nowN, ep int64) refusal {
	p := halfOf(s, svc)
	if s.Destination.Name != "" {
		if p.peer = g.node(s.Destination, ep); p.peer < 0 {
			return refusedNodeLimit
		}
		e := g.edge(svc, p.peer, s.Protocol, "")
		if e == nil {
			return refusedEdgeLimit
		}
		st := e.ring.at(ep)
		st.Requests++
		if p.err {
			st.Errors++
		}
		g.latency(&st.Client, p.duration())
	}
	k := pendKey{trace: s.Trace, span: s.ID}
	en := g.pend.get(k)
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			if p.peer < 0 {
				return refusedPendingFull
			}
			g.m.dropped.WithLabelValues("pending_full").Inc() // only the delay is lost
			return accepted
		}
	} else if en.has&(hasClient|hasProducer) != 0 {
		return refusedDuplicate
	} else if en.has&hasServer != 0 {
		g.observeUncalled(&en.h, ep) // see consumeServer
		en.has &^= hasServer
	}
	en.h = p
	en.has |= hasProducer
	if en.waiters != 0 {
		for _, w := range g.pend.waiting(en) {
			g.pairAsync(&p, &w, ep)
		}
		g.pend.dropWaiters(en)
	}
	return accepted
}

func (g *Graph) consumeConsumer(s *Span, svc int32, nowN, ep int64) refusal {
	msgs := uint64(max(1, len(s.Links)))
	ce := int32(-1)
	if s.Destination.Name != "" {
		dest := g.node(s.Destination, ep)
		if dest < 0 {
			return refusedNodeLimit
		}
		e := g.edge(dest, svc, s.Protocol, s.ConsumerGroup)
		if e == nil {
			return refusedEdgeLimit
		}
		ce = e.idx
		st := e.ring.at(ep)
		st.Requests += msgs
		if s.Error {
			st.Errors += msgs
		}
		g.latency(&st.Server, s.End-s.Start)
	}
	w := waiter{edge: ce, node: svc, start: s.Start, proto: s.Protocol}
	paired := false
	visit := func(ref SpanRef) {
		k := pendKey{trace: ref.Trace, span: ref.Span}
		en := g.pend.get(k)
		if en != nil && en.has&hasProducer != 0 {
			paired = true
			w.group = s.ConsumerGroup
			g.pairAsync(&en.h, &w, ep)
			return
		}
		if en == nil {
			if en = g.alloc(k, nowN); en == nil {
				g.m.dropped.WithLabelValues("pending_full").Inc()
				return
			}
		}
		if len(g.pend.waiting(en)) >= maxWaiters {
			g.m.dropped.WithLabelValues("waiters_full").Inc()
			return
		}
		ww := w
		if ce < 0 {
			ww.group = strings.Clone(s.ConsumerGroup)
		}
		list := g.pend.waitList(en)
		*list = append(*list, ww)
		paired = true // it will pair or expire
	}
	if len(s.Links) > 0 {
		for _, l := range s.Links {
			visit(l)
		}
	} else if !s.Parent.IsZero() {
		visit(SpanRef{Trace: s.Trace, Span: s.Parent})
	}
	if ce < 0 && !paired {
		return refusedNoDestination
	}
	return accepted
}

// pairSync records one call c -> sv. Caller holds mu.
func (g *Graph) pairSync(c, sv *half, ep int64) refusal {
	proto := sv.proto
	if proto == ProtocolUnknown {
		proto = c.proto
	}
	e := g.edge(c.node, sv.node, proto, "")
	if e == nil {
		return refusedEdgeLimit
	}
	g.m.pairs.WithLabelValues("sync").Inc()
	st := e.ring.at(ep)
	st.Requests++
	if c.err || sv.err {
		st.Errors++
	}
	if c.retry {
		st.Retries++
	}
	g.latency(&st.Server, sv.duration())
	g.latency(&st.Client, c.duration())
	return accepted
}

// pairAsync records the hop from producer p to consumer w. Caller holds mu.
func (g *Graph) pairAsync(p *half, w *waiter, ep int64) {
	g.m.pairs.WithLabelValues("async").Inc()
	var e *edgeState
	if w.edge >= 0 {
		e = g.edgeIx[w.edge]
	} else {
		if p.peer < 0 {
			g.m.dropped.WithLabelValues("no_destination").Inc()
			return
		}
		// The consumer named no destination: it reads the producer's.
		if e = g.edge(p.peer, w.node, w.proto, w.group); e == nil {
			return
		}
		e.ring.at(ep).Requests++
	}
	if d := w.start - p.end; d >= 0 {
		g.latency(&e.ring.at(ep).Delay, d)
	} else {
		g.m.dropped.WithLabelValues("negative_delay").Inc()
	}
}

// observeUnpaired records a call c that no server span answers, to the
// database or external node n. Caller holds mu.
func (g *Graph) observeUnpaired(c *half, n int32, ep int64) refusal {
	e := g.edge(c.node, n, c.proto, "")
	if e == nil {
		return refusedEdgeLimit
	}
	st := e.ring.at(ep)
	st.Requests++
	if c.err {
		st.Errors++
	}
	if c.retry {
		st.Retries++
	}
	g.latency(&st.Client, c.duration())
	return accepted
}

// observeUncalled records a server span nobody instrumented called: an edge
// from the virtual client node.
func (g *Graph) observeUncalled(sv *half, ep int64) refusal {
	cl := g.node(clientNodeKey, ep)
	if cl < 0 {
		return refusedNodeLimit
	}
	e := g.edge(cl, sv.node, sv.proto, "")
	if e == nil {
		return refusedEdgeLimit
	}
	st := e.ring.at(ep)
	st.Requests++
	if sv.err {
		st.Errors++
	}
	g.latency(&st.Server, sv.duration())
	return accepted
}

func (g *Graph) latency(sk **ddsketch.DDSketch, nanos int64) {
	if !addLatency(sk, g.mapping, nanos) {
		g.m.dropped.WithLabelValues("invalid_duration").Inc()
	}
}

// peerCandidate interns the node a client span would call if unanswered.
// Candidates are not nodes until a span expires unanswered.
func (g *Graph) peerCandidate(k NodeKey) int32 {
	if k.Kind == 0 || k.Name == "" {
		return -1
	}
	if i, ok := g.peers[k]; ok {
		return i
	}
	if len(g.peerIx) >= g.opts.MaxNodes {
		return g.overflowPeer(k.Kind)
	}
	k.Group = strings.Clone(k.Group)
	k.Name = strings.Clone(k.Name)
	i := int32(len(g.peerIx))
	g.peerIx = append(g.peerIx, k)
	g.peerAlias = append(g.peerAlias, -1)
	g.peers[k] = i
	return i
}

func (g *Graph) alloc(k pendKey, nowN int64) *entry {
	if g.pend.len() >= g.opts.MaxPending {
		return nil
	}
	return g.pend.add(k, nowN+int64(g.opts.PairTTL))
}

func (g *Graph) releaseIfEmpty(en *entry) {
	if en.has != 0 || en.waiters != 0 {
		return
	}
	g.pend.remove(en)
}

// expireLocked ages out half-edges and retry groups. Caller holds mu.
func (g *Graph) expireLocked(nowN, ep int64) {
	for en := g.pend.oldest(); en != nil && en.expireAt <= nowN; en = g.pend.oldest() {
		g.expireEntry(en, ep)
		g.pend.remove(en)
	}
	for r := g.retryL.head; r != nil && r.expireAt <= nowN; r = g.retryL.head {
		g.retryL.remove(r)
		delete(g.retries, r.key)
	}
}

func (g *Graph) expireEntry(en *entry, ep int64) {
	if en.has&hasClient != 0 {
		c := &en.h
		if c.peer < 0 {
			g.m.expired.WithLabelValues("client_no_peer").Inc()
		} else if callee := g.peerAlias[c.peer]; callee >= 0 {
			// The peer is a service we have seen answer: the call never
			// reached it (refused, timed out, or failed fast by a breaker).
			g.m.expired.WithLabelValues("client_unanswered").Inc()
			if e := g.edge(c.node, callee, c.proto, ""); e != nil {
				st := e.ring.at(ep)
				st.Requests++
				st.Unanswered++
				if c.err {
					st.Errors++
				}
				if c.retry {
					st.Retries++
				}
				g.latency(&st.UnansweredLatency, c.duration())
			}
		} else {
			g.m.expired.WithLabelValues("client").Inc()
			if n := g.peerNodeOf(c.peer, ep); n >= 0 {
				g.observeUnpaired(c, n, ep)
			}
		}
	}
	if en.has&hasServer != 0 {
		g.m.expired.WithLabelValues("server").Inc()
		g.observeUncalled(&en.h, ep)
	}
	if en.has&hasProducer != 0 {
		g.m.expired.WithLabelValues("producer").Inc()
	}
	if en.waiters != 0 {
		for _, w := range g.pend.waiting(en) {
			g.m.expired.WithLabelValues("consumer").Inc()
			if w.edge < 0 {
				g.m.dropped.WithLabelValues("no_destination").Inc()
			}
		}
	}
}

func (g *Graph) opHash(s *Span) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(s.Operation)
	h.WriteByte(0)
	h.WriteString(s.Peer.Name)
	return h.Sum64()
}

// noteFailure remembers a failed client call for retry recognition.
func (g *Graph) noteFailure(s *Span, nowN int64) {
	k := retryKey{trace: s.Trace, parent: s.Parent, op: g.opHash(s)}
	r := g.retries[k]
	if r == nil {
		if len(g.retries) >= g.opts.MaxRetryGroups {
			g.m.dropped.WithLabelValues("retry_groups_full").Inc()
			return
		}
		r = &retryGroup{key: k}
		r.expireAt = nowN + int64(g.opts.PairTTL)
		g.retries[k] = r
		g.retryL.pushBack(r)
	}
	for i := range r.n {
		if r.failed[i].id == s.ID {
			return
		}
	}
	if int(r.n) < len(r.failed) {
		r.failed[r.n] = failedCall{id: s.ID, end: s.End}
		r.n++
	}
}

// isRetry reports whether an earlier call from s's parent to the same
// operation failed before s started.
func (g *Graph) isRetry(s *Span) bool {
	if len(g.retries) == 0 || s.Parent.IsZero() {
		return false
	}
	r := g.retries[retryKey{trace: s.Trace, parent: s.Parent, op: g.opHash(s)}]
	if r == nil {
		return false
	}
	for i := range r.n {
		if f := r.failed[i]; f.id != s.ID && f.end <= s.Start {
			return true
		}
	}
	return false
}

// peerNodeOf returns the node of peer candidate p, marked seen in epoch ep,
// remembering it so that the next call skips the string-keyed node map
// (nodes are never removed, so the index stays valid). Overflow nodes are
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

// learnAlias records that calls addressed to peer candidate p were answered
// by service node svc.
func (g *Graph) learnAlias(p, svc int32) {
	if p >= 0 && !g.peerIx[p].IsOverflow() { // the overflow peer stands for many
		g.peerAlias[p] = svc
	}
}
