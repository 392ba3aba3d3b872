package graph

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
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
	n          uint32 // calls of the real traffic the span stands for (callCount)
	proto      Protocol
	err, retry bool
	fail       Failure // why a failed client call failed, when its error says
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
	// hasChild: the span whose id is key.span (h) waits to learn its
	// parent's service (the parent was not seen when it arrived): if the
	// parent belongs to another service and no pair accounts for the hop,
	// it is a call from that service.
	hasChild
	// childClient: the waiting child is a client span naming its own
	// service as its peer (the instrumentation of that peer), so its
	// duration is the caller's view of the call.
	childClient
	// childPlaced: the waiting child is placed on an edge of its own
	// anyway (a client or producer span): not knowing its parent leaves
	// nothing unplaced.
	childPlaced
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
	// attempts and attemptErrs count further server spans that answered
	// the same client span (gRPC retry attempts, hedged requests) while
	// a server waits for it; they are recorded as retries when it pairs.
	attempts, attemptErrs uint8
	// parent is the parent of the span waiting with hasChild.
	parent SpanID
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
	case SpanInternal, SpanUnspecified:
		// Messaging spans whose instrumentation set no kind (older
		// libraries, OpenTracing bridges) play the part their operation
		// and destination name.
		if s.Destination.Name != "" {
			switch s.Messaging {
			case MessagingPublish:
				return roleProducer
			case MessagingProcess, MessagingReceive:
				return roleConsumer
			}
		}
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

// spanNote is what the first pass over a batch learnt of one span: its
// service node (-1 when refused) and what was known of its id.
type spanNote struct {
	svc  int32
	note pairing.Note
}

// ConsumeSpans adds spans to the graph. It returns how many spans were
// refused and why (half-edge store full, node or edge limit, duplicate span
// id); refused spans are also counted in metrics. A span seen before (the
// same id, kind and service: an exporter re-sending a batch) is counted
// once and not refused, and is not handed to the PathSource again. It
// copies what it keeps and does not retain spans. Safe for concurrent use.
func (g *Graph) ConsumeSpans(spans []Span) (rejected int, reason string) {
	now := g.opts.Now()
	nowN := now.UnixNano()
	ep := g.epoch(now)
	var counts [numRefusals]int
	resent := 0

	g.mu.Lock()
	g.expireLocked(nowN, ep)
	// First every span's service and what was known of its id: the whole
	// batch is remembered before any span looks for its parent, so that a
	// parent later in the same request is found.
	notes := g.notesFor(len(spans))
	for i := range spans {
		g.seen.Touch(&spans[i].Trace, spans[i].ID)
	}
	var last svcMemo
	for i := range spans {
		s := &spans[i]
		svc := g.serviceNode(s, &last, ep)
		if svc < 0 {
			notes[i] = spanNote{svc: -1}
			counts[refusedNodeLimit]++
			continue
		}
		n := g.seen.Remember(&s.Trace, s.ID, pairingKind(s.Kind), svc, roleOf(s) == roleProducer, s.End, nowN)
		if n == pairing.NoteDuplicate {
			resent++
			svc = -1
		}
		notes[i] = spanNote{svc: svc, note: n}
	}
	// Failed calls next, so that a retry is recognised whatever the order
	// of the attempts within one request.
	for i := range spans {
		if s := &spans[i]; notes[i].svc >= 0 && (s.Error || s.Throttled) && !s.Parent.IsZero() && roleOf(s) == roleClient {
			g.noteFailure(s, nowN)
		}
	}
	// Callers before callees: a server span, or a span whose parent is a
	// client of another service, then finds its caller already waiting
	// when both came in this request.
	for pass := range 2 {
		for i := range spans {
			n := notes[i]
			if n.svc < 0 {
				continue
			}
			s := &spans[i]
			r := roleOf(s)
			if (r == roleClient || r == roleProducer) != (pass == 0) {
				continue
			}
			if rr := g.consume(s, r, n, nowN, ep); rr != accepted {
				counts[rr]++
			}
		}
	}
	// The path source sees each span once: a re-sent span arriving after
	// its trace was analysed would start a partial trace of its own there.
	paths := spans
	if resent > 0 && g.opts.Paths != nil {
		paths = make([]Span, 0, len(spans)-resent)
		for i := range spans {
			if notes[i].note != pairing.NoteDuplicate {
				paths = append(paths, spans[i])
			}
		}
	}
	g.publishSizes()
	g.mu.Unlock()

	g.m.spans.Add(float64(len(spans)))
	if resent > 0 {
		g.m.dropped.WithLabelValues("resent_span").Add(float64(resent))
	}
	if g.opts.Paths != nil {
		g.opts.Paths.ObserveSpans(paths)
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

// maxPooledNotes bounds the notes kept between batches.
const maxPooledNotes = 1 << 16

// notesFor returns g's scratch notes with room for n spans. Caller holds mu.
func (g *Graph) notesFor(n int) []spanNote {
	if cap(g.notes) < n || cap(g.notes) > maxPooledNotes && n <= maxPooledNotes {
		g.notes = make([]spanNote, n)
	}
	return g.notes[:n]
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

// serviceNode returns the node of s's service, -1 at the node limit.
// Caller holds mu.
func (g *Graph) serviceNode(s *Span, last *svcMemo, ep int64) int32 {
	if last.ok && last.name == s.Service && last.ns == s.Namespace {
		return last.node // marked seen in ep by the lookup that filled last
	}
	k := NodeKey{Kind: NodeService, Group: s.Namespace, Name: s.Service}
	svc := g.node(k, ep)
	if svc < 0 {
		return -1
	}
	// An overflow node is not remembered: each observation folded into
	// it is counted by node.
	*last = svcMemo{name: s.Service, ns: s.Namespace, node: svc, ok: g.nodeIx[svc].key == k}
	return svc
}

func (g *Graph) consume(s *Span, r role, n spanNote, nowN, ep int64) refusal {
	switch r {
	case roleServer:
		return g.consumeServer(s, n, nowN, ep)
	case roleClient:
		if s.SelfPeer {
			// The instrumentation of the peer it names, reporting under
			// the peer's own service.name: the call is its parent's.
			return g.consumeChild(s, n.svc, childClient, nowN, ep)
		}
		return g.consumeClient(s, n, nowN, ep)
	case roleProducer:
		return g.consumeProducer(s, n.svc, nowN, ep)
	case roleConsumer:
		return g.consumeConsumer(s, n.svc, nowN, ep)
	}
	if s.Parent.IsZero() {
		return accepted
	}
	return g.consumeChild(s, n.svc, 0, nowN, ep)
}

func halfOf(s *Span, node int32) half {
	return half{node: node, peer: -1, n: callCount(s), start: s.Start, end: s.End, proto: s.Protocol, err: s.Error, fail: s.Failure}
}

// maxWeight bounds the calls one span may stand for (a threshold of
// 1 in 2^20), so a hostile weight cannot overflow a count.
const maxWeight = 1 << 20

// callCount returns the whole number of calls span s stands for: 1 when
// not sampled, else its weight, rounded up or down at random so that the
// counts stay unbiased. The coin is the span id, so a span re-sent or seen
// by another collector counts the same.
func callCount(s *Span) uint32 {
	w := s.Weight
	if !(w > 1) {
		return 1
	}
	if w > maxWeight {
		w = maxWeight
	}
	n := math.Floor(w)
	if frac := w - n; frac > 0 && float64(mix64(binary.LittleEndian.Uint64(s.ID[:]))>>11)/(1<<53) < frac {
		n++
	}
	return uint32(n)
}

func (g *Graph) consumeServer(s *Span, n spanNote, nowN, ep int64) refusal {
	svc := n.svc
	sv := halfOf(s, svc)
	k := pendKey{trace: s.Trace, span: s.Parent}
	if n.note == pairing.NoteShared {
		// Zipkin's shared span: client and server carry one id, and the
		// client waits under it.
		k.span = s.ID
	} else if s.Parent.IsZero() {
		return g.observeUncalled(&sv, 0, ep)
	}
	en := g.pend.get(k)
	if en != nil && en.has&hasClient != 0 {
		g.learnAlias(en.h.node, en.h.peer, svc, en.h.n != sv.n)
		r := g.pairSync(&en.h, &sv, ep)
		en.has &^= hasClient
		g.releaseIfEmpty(en)
		return r
	}
	if en != nil && en.has&hasServer != 0 {
		// A further server span for the same client span: a retry
		// attempt (gRPC retries, hedged requests) answering one call. It
		// is recorded with the first when the client arrives.
		if en.attempts < 0xff {
			en.attempts++
			if sv.err {
				en.attemptErrs++
			}
		}
		return accepted
	}
	if n.note != pairing.NoteShared {
		if p := g.seen.Find(&s.Trace, s.Parent, svc); p != nil && p.Node() != svc {
			switch p.Kind() {
			case pairing.KindClient:
				if p.Expired() {
					// Its client span's call was recorded without it.
					g.m.dropped.WithLabelValues("late_server").Inc()
					return accepted
				}
				// Its client span paired with another server span
				// already: this one is a further attempt.
				return g.observeAttempt(p.Node(), &sv, ep)
			case pairing.KindProducer:
				// Called by a producer span (an HTTP push from a
				// broker, say): no client will come.
				return g.observeUncalled(&sv, 0, ep)
			default:
				// Its parent is a span of another service that is no
				// client: that service called it.
				return g.observeHop(p.Node(), &sv, false, ep)
			}
		}
	}
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			return refusedPendingFull
		}
	}
	switch {
	case en.has&hasProducer != 0:
		// Called by a producer span (an HTTP push from a broker, say): no
		// client will come.
		return g.observeUncalled(&sv, 0, ep)
	case en.has&hasChild != 0:
		// Its parent waits to learn its own parent: the parent's service
		// called this one.
		if en.h.node != svc {
			return g.observeHop(en.h.node, &sv, false, ep)
		}
		return g.observeUncalled(&sv, 0, ep)
	}
	en.h = sv
	en.has |= hasServer
	return accepted
}

func (g *Graph) consumeClient(s *Span, n spanNote, nowN, ep int64) refusal {
	svc := n.svc
	if n.note == pairing.NoteLate {
		// Its server span waited out the pair TTL and was recorded
		// without it: counting it now would add an unanswered call.
		g.m.dropped.WithLabelValues("late_client").Inc()
		return accepted
	}
	c := halfOf(s, svc)
	c.retry = s.ResendCount > 0 || g.isRetry(s)
	k := pendKey{trace: s.Trace, span: s.ID}
	en := g.pend.get(k)
	if en != nil && en.has&hasServer != 0 {
		g.learnAlias(svc, g.peerCandidate(s.Peer), en.h.node, c.n != en.h.n)
		r := g.pairWaiting(&c, en, ep)
		g.childOf(s, svc, childPlaced, nowN, ep)
		return r
	}
	if n.note == pairing.NoteShared {
		// Zipkin's shared span whose server came first: the server waits
		// under the parent both share.
		if !s.Parent.IsZero() {
			if en := g.pend.get(pendKey{trace: s.Trace, span: s.Parent}); en != nil && en.has&hasServer != 0 && en.h.node != svc {
				g.learnAlias(svc, g.peerCandidate(s.Peer), en.h.node, c.n != en.h.n)
				return g.pairWaiting(&c, en, ep)
			}
		}
		// Its server was recorded already (a shared root span).
		g.m.dropped.WithLabelValues("late_client").Inc()
		return accepted
	}
	if en == nil && s.Peer.Kind == NodeDatabase {
		if p := g.peerCandidate(s.Peer); p >= 0 && g.aliasOf(svc, p) < 0 {
			// Databases answer without a span of their own: record the
			// call now rather than hold it for the pair TTL (most of the
			// pending half-edges of a typical system, and the edge shows at
			// once). A database seen answering with a server span is
			// paired like a service.
			n := g.peerNodeOf(p, ep)
			if n < 0 {
				return refusedNodeLimit
			}
			if sl := g.seen.FindKind(&s.Trace, s.ID, pairing.KindClient); sl != nil {
				sl.MarkExpired() // a server span for it would be late
			}
			r := g.observeUnpaired(&c, n, ep)
			g.childOf(s, svc, childPlaced, nowN, ep)
			return r
		}
	}
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			return refusedPendingFull
		}
	}
	if en.has&(hasClient|hasProducer|hasChild) != 0 {
		return refusedDuplicate
	}
	c.peer = g.peerCandidate(s.Peer)
	if c.peer < 0 {
		g.unplaced.example(g.nodeIx[svc].key, reasonClientNoPeer, s.Operation)
	}
	en.h = c
	en.has |= hasClient
	g.childOf(s, svc, childPlaced, nowN, ep)
	return accepted
}

// pairWaiting pairs client c with the server span waiting in en, with the
// further attempts that answered the same call, and releases en.
func (g *Graph) pairWaiting(c *half, en *entry, ep int64) refusal {
	r := g.pairSync(c, &en.h, ep)
	if en.attempts > 0 && r == accepted {
		g.addAttempts(c.node, &en.h, cmp.Or(en.h.proto, c.proto), en.attempts, en.attemptErrs, ep)
	}
	en.has &^= hasServer
	en.attempts, en.attemptErrs = 0, 0
	g.releaseIfEmpty(en)
	return r
}

// consumeChild takes a span that is neither a caller's nor a callee's half
// of a pair (an internal span, a span of unknown kind, a client naming its
// own service): if its parent is a span of another service, the hop is a
// call from that service. flags are childClient for a client naming its
// own service.
func (g *Graph) consumeChild(s *Span, svc int32, flags uint8, nowN, ep int64) refusal {
	if s.Parent.IsZero() {
		if flags&childClient != 0 {
			// The instrumentation of a peer called by nobody instrumented.
			h := halfOf(s, svc)
			return g.observeUncalled(&h, childClient, ep)
		}
		return accepted
	}
	g.childOf(s, svc, flags, nowN, ep)
	return accepted
}

// childOf places the hop from s's parent to s when the parent is a span
// of another service that no pair accounts for; when the parent has not
// been seen yet, s waits at its own id to learn it (decided when it
// expires). flags: childClient (s is a client naming its own service),
// childPlaced (s is placed on an edge of its own anyway). Caller holds mu.
func (g *Graph) childOf(s *Span, svc int32, flags uint8, nowN, ep int64) {
	if s.Parent.IsZero() {
		return
	}
	h := halfOf(s, svc)
	if p := g.seen.Find(&s.Trace, s.Parent, svc); p != nil {
		g.placeChild(&h, p.Node(), p.Kind(), pendKey{trace: s.Trace, span: s.Parent}, flags, ep)
		return
	}
	k := pendKey{trace: s.Trace, span: s.ID}
	en := g.pend.get(k)
	if en == nil {
		if en = g.alloc(k, nowN); en == nil {
			g.m.dropped.WithLabelValues("pending_full").Inc()
			return
		}
	} else if en.has&hasServer != 0 {
		// A server span whose parent is s waits for it: s's service
		// called it.
		if en.h.node != svc {
			g.observeHop(svc, &en.h, false, ep)
			if en.attempts > 0 {
				g.addAttempts(svc, &en.h, cmp.Or(en.h.proto, ProtocolInternal), en.attempts, en.attemptErrs, ep)
			}
		} else {
			g.observeUncalled(&en.h, 0, ep)
		}
		en.has &^= hasServer
		en.attempts, en.attemptErrs = 0, 0
	}
	if en.has&(hasClient|hasProducer) == 0 {
		en.h = h
	}
	if flags&childPlaced == 0 {
		g.unplaced.example(g.nodeIx[svc].key, reasonParentNotSeen, s.Operation)
	}
	en.parent = s.Parent
	en.has |= hasChild | flags
}

// placeChild records the hop to child h from its parent, a span of node
// pnode and kind pkind at key pk, unless a pair accounts for it. Caller
// holds mu.
func (g *Graph) placeChild(h *half, pnode int32, pkind pairing.Kind, pk pendKey, flags uint8, ep int64) {
	if pnode == h.node {
		return // a span within its own service
	}
	switch pkind {
	case pairing.KindClient:
		// A client of another service whose callee's first span is no
		// server span: the child answers it, unless a server span did.
		if en := g.pend.get(pk); en != nil && en.has&hasClient != 0 {
			sv := *h
			g.learnAlias(en.h.node, en.h.peer, h.node, en.h.n != h.n)
			g.pairSync(&en.h, &sv, ep)
			en.has &^= hasClient
			g.releaseIfEmpty(en)
		}
		return
	case pairing.KindProducer:
		return // the messaging hop goes through the destination
	}
	g.observeHop(pnode, h, flags&childClient != 0, ep)
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
		st.call(p.n, p.err, false)
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
		g.observeUncalled(&en.h, 0, ep) // see consumeServer
		en.has &^= hasServer
		en.attempts, en.attemptErrs = 0, 0
	}
	en.h = p
	en.has |= hasProducer
	if en.waiters != 0 {
		for _, w := range g.pend.waiting(en) {
			g.pairAsync(&p, &w, ep)
		}
		g.pend.dropWaiters(en)
	}
	g.childOf(s, svc, childPlaced, nowN, ep)
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
		n := callCount(s)
		for range msgs {
			st.call(n, s.Error, false)
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
		if en == nil && ce >= 0 {
			if end, ok := g.seen.ProducerEnd(&ref.Trace, ref.Span); ok {
				// Its producer came and its half-edge expired: the
				// message waited longer than the pair TTL. Its delay
				// is what the trace-based lag judgement needs most.
				paired = true
				g.m.pairs.WithLabelValues("async_late").Inc()
				if d := s.Start - end; d >= 0 {
					g.latency(&g.edgeIx[ce].ring.at(ep).Delay, d)
				}
				return
			}
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
		g.unplaced.example(g.nodeIx[svc].key, reasonNoDestination, s.Operation)
		g.unplaced.count(g.nodeIx[svc].key, reasonNoDestination, ep)
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
	// The caller's weight: kept client spans, paired or not, then sum to
	// an unbiased estimate of the calls whatever the callee's sampler.
	st.call(c.n, c.err || sv.err, c.retry)
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
		e.ring.at(ep).call(p.n, false, false)
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
	st.call(c.n, c.err, c.retry)
	g.latency(&st.Client, c.duration())
	return accepted
}

// observeUncalled records a server span nobody instrumented called: an edge
// from the virtual client node. With childClient in flags, sv is a client
// span naming its own service, and its duration is the caller's view.
// Caller holds mu.
func (g *Graph) observeUncalled(sv *half, flags uint8, ep int64) refusal {
	cl := g.node(clientNodeKey, ep)
	if cl < 0 {
		return refusedNodeLimit
	}
	return g.observeHop(cl, sv, flags&childClient != 0, ep)
}

// observeHop records one call from node src answered by h, a span of
// another service that no client span of src pairs with: its parent is a
// span of src (or src is the virtual client). The protocol is h's, or
// internal when h names none; with clientSide, h's duration is the
// caller's view of the call, else the callee's. Caller holds mu.
func (g *Graph) observeHop(src int32, h *half, clientSide bool, ep int64) refusal {
	proto := h.proto
	if proto == ProtocolUnknown && g.nodeIx[src].key != clientNodeKey {
		proto = ProtocolInternal
	}
	e := g.edge(src, h.node, proto, "")
	if e == nil {
		return refusedEdgeLimit
	}
	st := e.ring.at(ep)
	st.call(h.n, h.err, false)
	if clientSide {
		g.latency(&st.Client, h.duration())
	} else {
		g.latency(&st.Server, h.duration())
	}
	return accepted
}

// observeAttempt records a further server span sv answering a client span
// of node src that already paired with another: one more attempt of the
// same call, so a retry. Caller holds mu.
func (g *Graph) observeAttempt(src int32, sv *half, ep int64) refusal {
	errs := uint8(0)
	if sv.err {
		errs = 1
	}
	return g.addAttempts(src, sv, sv.proto, 1, errs, ep)
}

// addAttempts records n further attempts (errs of them failed) of a call
// from src answered by server span sv, as requests that are retries.
// Caller holds mu.
func (g *Graph) addAttempts(src int32, sv *half, proto Protocol, n, errs uint8, ep int64) refusal {
	e := g.edge(src, sv.node, proto, "")
	if e == nil {
		return refusedEdgeLimit
	}
	st := e.ring.at(ep)
	for i := range n {
		st.call(sv.n, i < errs, true)
	}
	if n == 1 {
		g.latency(&st.Server, sv.duration())
	}
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

// expireLocked ages out half-edges and retry groups, then retires idle
// nodes, edges and peers (retire.go). Caller holds mu.
func (g *Graph) expireLocked(nowN, ep int64) {
	g.ep = ep
	for en := g.pend.oldest(); en != nil && en.expireAt <= nowN; en = g.pend.oldest() {
		g.expireEntry(en, nowN, ep)
		g.pend.remove(en)
	}
	for r := g.retryL.head; r != nil && r.expireAt <= nowN; r = g.retryL.head {
		g.retryL.remove(r)
		delete(g.retries, r.key)
	}
	g.retireLocked(ep)
}

func (g *Graph) expireEntry(en *entry, nowN, ep int64) {
	if en.has&hasClient != 0 {
		c := &en.h
		if sl := g.seen.FindKind(&en.key.trace, en.key.span, pairing.KindClient); sl != nil {
			sl.MarkExpired() // a server span for it would be late
		}
		if c.peer < 0 {
			g.m.expired.WithLabelValues("client_no_peer").Inc()
			g.unplaced.count(g.nodeIx[c.node].key, reasonClientNoPeer, ep)
		} else if callee := g.aliasOf(c.node, c.peer); callee >= 0 {
			// The peer is a service this caller has seen answer: the call
			// never reached it (refused, timed out, or failed fast by a
			// breaker).
			if e := g.edge(c.node, callee, c.proto, ""); e != nil {
				st := e.ring.at(ep)
				st.call(c.n, c.err, c.retry)
				if c.n > 1 && g.samplersDisagree(c.node, c.peer, callee) {
					// A sampled call whose server span was most likely
					// sampled out, not missing: the samplers along this
					// hop do not agree.
					g.m.expired.WithLabelValues("client_sampled").Inc()
					g.latency(&st.Client, c.duration())
				} else {
					g.m.expired.WithLabelValues("client_unanswered").Inc()
					st.Unanswered += uint64(c.n)
					switch c.fail {
					case FailureUnreachable:
						st.Refused += uint64(c.n)
					case FailureRejected:
						st.Rejected += uint64(c.n)
					}
					g.latency(&st.UnansweredLatency, c.duration())
				}
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
		g.expireServer(en, nowN, ep)
	}
	if en.has&hasProducer != 0 {
		g.m.expired.WithLabelValues("producer").Inc()
	}
	if en.has&hasChild != 0 {
		g.expireChild(en, ep)
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

// expireServer records a server span that waited out the pair TTL without
// its client span. Caller holds mu.
func (g *Graph) expireServer(en *entry, nowN, ep int64) {
	sv := &en.h
	src := int32(-1)
	if p := g.seen.Find(&en.key.trace, en.key.span, sv.node); p != nil && p.Node() != sv.node {
		switch p.Kind() {
		case pairing.KindClient:
			// Its client span came, and its call was recorded without it
			// (a database call, or a call given up as unanswered).
			g.m.dropped.WithLabelValues("late_server").Inc()
			return
		case pairing.KindProducer:
		default:
			// Its parent, seen after it, is a span of another service
			// that is no client: that service called it.
			src = p.Node()
		}
	}
	proto := cmp.Or(sv.proto, ProtocolInternal)
	if src < 0 && sv.n > 1 {
		// A sampled server span called by a span that was not kept: its
		// caller was sampled out, not uninstrumented, and the samplers
		// along the hop do not agree.
		g.unplaced.count(g.nodeIx[sv.node].key, reasonSampledOut, ep)
		if len(g.orphaned) < g.opts.MaxNodes {
			g.orphaned[sv.node] = true
		}
		return
	}
	if src >= 0 {
		g.observeHop(src, sv, false, ep)
	} else {
		// Nobody instrumented called it. A client span arriving now for
		// it is late.
		g.observeUncalled(sv, 0, ep)
		g.seen.MarkAnswered(&en.key.trace, en.key.span, sv.node, nowN)
		src = g.node(clientNodeKey, ep)
		proto = sv.proto
	}
	if en.attempts > 0 && src >= 0 {
		g.addAttempts(src, sv, proto, en.attempts, en.attemptErrs, ep)
	}
}

// expireChild decides a span that waited to learn its parent's service.
// Caller holds mu.
func (g *Graph) expireChild(en *entry, ep int64) {
	h := &en.h
	p := g.seen.Find(&en.key.trace, en.parent, h.node)
	if p == nil {
		if en.has&childPlaced == 0 {
			g.unplaced.count(g.nodeIx[h.node].key, reasonParentNotSeen, ep)
		}
		return
	}
	g.placeChild(h, p.Node(), p.Kind(), pendKey{trace: en.key.trace, span: en.parent}, en.has&childClient, ep)
}

func (g *Graph) opHash(s *Span) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(s.Operation)
	h.WriteByte(0)
	h.WriteString(s.Target)
	h.WriteByte(0)
	h.WriteString(s.Peer.Name)
	return h.Sum64()
}

// noteFailure remembers a failed client call (an error, or throttled: HTTP
// 429) for retry recognition.
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

// aliasKey is a caller and a peer candidate it addresses.
type aliasKey struct{ caller, peer int32 }

// alias is what a caller's calls to a peer candidate were answered by.
type alias struct {
	callee int32 // the service node, or aliasAmbiguous
	// disagree: a call was answered by a server span kept at another
	// sampling weight than its client span: the samplers of caller and
	// callee decide independently, so a kept client span may lose its
	// server span to sampling.
	disagree bool
}

// aliasAmbiguous marks a caller's peer answered by more than one service
// (a gateway routing by path, an address reused by another service).
const aliasAmbiguous = -2

// aliasOf returns the service node that answers calls from caller to peer
// candidate p: the one this caller has seen answer there, else the one
// every caller saw answer there; a negative value when none or more than
// one did. Caller holds mu.
func (g *Graph) aliasOf(caller, p int32) int32 {
	if p < 0 || int(p) >= len(g.answered) || !g.answered[p] {
		return -1 // nobody answered there: no map lookup on the hot path
	}
	if a, ok := g.aliases[aliasKey{caller, p}]; ok {
		return a.callee
	}
	if a, ok := g.aliases[aliasKey{-1, p}]; ok {
		return a.callee
	}
	return -1
}

// samplersDisagree reports whether the samplers of caller and callee are
// known not to agree (consistent, parent-based sampling keeps or drops a
// trace's spans together): a pair kept at two weights, or a sampled
// server span of callee whose caller's span was not kept. Then a kept
// client span without its server span is most likely one whose server
// span was sampled out. Caller holds mu.
func (g *Graph) samplersDisagree(caller, p, callee int32) bool {
	return g.aliases[aliasKey{caller, p}].disagree || g.orphaned[callee]
}

// learnAlias records that calls from node caller addressed to peer
// candidate p were answered by service node svc, for that caller and for
// every caller; disagree says the pair was kept at two sampling weights.
// Per caller
// first, because one address (localhost through a sidecar, a gateway
// routing by path, a reused pod IP) leads different callers to different
// services; an address that several services answered is no alias for
// callers that have not seen it answered themselves. Caller holds mu.
func (g *Graph) learnAlias(caller, p, svc int32, disagree bool) {
	if p < 0 || caller == svc || g.peerIx[p].IsOverflow() { // the overflow peer stands for many
		return
	}
	for len(g.answered) <= int(p) {
		g.answered = append(g.answered, false)
	}
	g.answered[p] = true
	for _, k := range [2]aliasKey{{caller, p}, {-1, p}} {
		a, ok := g.aliases[k]
		switch {
		case !ok:
			if len(g.aliases) >= 2*g.opts.MaxEdges {
				g.m.dropped.WithLabelValues("aliases_full").Inc()
				return
			}
			a.callee = svc
		case a.callee != svc && a.callee != aliasAmbiguous:
			a.callee = aliasAmbiguous
		}
		a.disagree = a.disagree || disagree
		g.aliases[k] = a
	}
}

// mix64 is SplitMix64's finaliser: span ids are random, but a sender may
// count them up, and the low bits must still spread.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
