package graph

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
)

// The graph pairs spans through its pairing store (graph/pairing): for
// each batch it reads its clock once, ages out what expired, finds every
// span's service node and has the store remember every span before any is
// consumed (so that a parent later in the batch is found), recognises
// retries among the failed calls, then hands the callers' spans to the
// store before the callees'. What pairs, and what expires, comes back
// through the store's callbacks (record.go) and is recorded on the edges.

// roleOf returns the part span s plays in pairing.
func roleOf(s *Span) pairing.Role {
	if s.Messaging == MessagingReceive && len(s.Links) == 0 && s.Parent.IsZero() {
		// A poll that names no message (kafkajs eachBatch, for one): the
		// process spans it is followed by carry the messages; counting it
		// too would count a batch as one more message.
		return pairing.RoleNone
	}
	switch s.Kind {
	case SpanServer:
		return pairing.RoleServer
	case SpanClient:
		switch s.Messaging {
		case MessagingPublish:
			return pairing.RoleProducer
		case MessagingReceive:
			return pairing.RoleConsumer
		case MessagingSettle:
			return pairing.RoleNone
		}
		return pairing.RoleClient
	case SpanProducer:
		return pairing.RoleProducer
	case SpanConsumer:
		if s.Messaging == MessagingSettle || s.Messaging == MessagingPublish {
			return pairing.RoleNone
		}
		return pairing.RoleConsumer
	case SpanInternal, SpanUnspecified:
		// Messaging spans whose instrumentation set no kind (older
		// libraries, OpenTracing bridges) play the part their operation
		// and destination name.
		if s.Destination.Name != "" {
			switch s.Messaging {
			case MessagingPublish:
				return pairing.RoleProducer
			case MessagingProcess, MessagingReceive:
				return pairing.RoleConsumer
			}
		}
	}
	return pairing.RoleNone
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

// refusalOf returns the refusal that err, returned by consume, stands for.
func refusalOf(err error) refusal {
	switch {
	case err == nil:
		return accepted
	case errors.Is(err, pairing.ErrTooManyItems):
		return refusedPendingFull
	case errors.Is(err, errNodeLimit):
		return refusedNodeLimit
	case errors.Is(err, pairing.ErrDuplicate):
		return refusedDuplicate
	case errors.Is(err, pairing.ErrNoDestination):
		return refusedNoDestination
	}
	return refusedEdgeLimit // the recorder refuses only at the node and edge limits
}

// spanNote is what the first pass over a batch learnt of one span: its
// service node (-1 when refused), what was known of its id and its role.
type spanNote struct {
	svc  int32
	note pairing.Note
	role pairing.Role
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
		g.store.Touch(&spans[i].Trace, spans[i].ID)
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
		r := roleOf(s)
		n := g.store.Remember(&s.Trace, s.ID, pairingKind(s.Kind), svc, r == pairing.RoleProducer, s.End, nowN)
		if n == pairing.NoteDuplicate {
			resent++
			svc = -1
		}
		notes[i] = spanNote{svc: svc, note: n, role: r}
	}
	// Failed calls next, so that a retry is recognised whatever the order
	// of the attempts within one request.
	for i := range spans {
		if s := &spans[i]; notes[i].svc >= 0 && (s.Error || s.Throttled) && !s.Parent.IsZero() && notes[i].role == pairing.RoleClient {
			g.noteFailure(s, nowN)
		}
	}
	// Callers before callees: a server span, or a span whose parent is a
	// client of another service, then finds its caller already waiting
	// when both came in this request.
	g.batch = spans // for the store's callbacks (Peer, Example)
	var ps pairing.Span
	for pass := range 2 {
		for i := range spans {
			n := notes[i]
			if n.svc < 0 {
				continue
			}
			if n.role.Caller() != (pass == 0) {
				continue
			}
			if err := g.consume(&ps, &spans[i], int32(i), n, nowN, ep); err != nil {
				counts[refusalOf(err)]++
			}
		}
	}
	g.batch = nil
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

// expireLocked ages out half-edges and retry groups, then retires idle
// nodes, edges and peers (retire.go). Caller holds mu.
func (g *Graph) expireLocked(nowN, ep int64) {
	g.ep = ep
	g.store.Expire(nowN)
	g.expireRetries(nowN)
	g.retireLocked(ep)
	g.publishPairing()
}

// svcMemo remembers the service node of the previous span of a batch:
// exporters group spans by resource, so runs of spans share a service and
// skip the string-keyed node map.
type svcMemo struct {
	name, ns string
	attrs    []Attr
	node     int32
	ok       bool
}

// serviceNode returns the node of s's service, -1 at the node limit.
// Caller holds mu.
func (g *Graph) serviceNode(s *Span, last *svcMemo, ep int64) int32 {
	if last.ok && last.name == s.Service && last.ns == s.Namespace && equalAttrs(last.attrs, s.Attributes) {
		return last.node // marked seen in ep by the lookup that filled last
	}
	k := NodeKey{Kind: NodeService, Group: s.Namespace, Name: s.Service}
	svc := g.node(k, ep)
	if svc < 0 {
		return -1
	}
	g.setAttrs(svc, s.Attributes)
	// An overflow node is not remembered: each observation folded into
	// it is counted by node.
	*last = svcMemo{name: s.Service, ns: s.Namespace, attrs: s.Attributes, node: svc, ok: g.nodeIx[svc].key == k}
	return svc
}

// equalAttrs reports whether a and b hold the same attributes in the same
// order (the spans of one resource share theirs: a quick compare).
func equalAttrs(a, b []Attr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// consume records what of span s (the i-th of the batch) the graph records
// itself, a producer's or a consumer's hop to or from its destination, and
// hands it to the pairing store, as ps (scratch, every field of which it
// sets). It returns the span's refusal, if any. Caller holds mu.
func (g *Graph) consume(ps *pairing.Span, s *Span, i int32, n spanNote, nowN, ep int64) error {
	// Field by field: a composite literal of the whole would be built
	// aside and copied, twice, for every span.
	ps.Trace, ps.ID, ps.Parent = s.Trace, s.ID, s.Parent
	ps.Role, ps.Note, ps.Ref = n.role, n.note, i
	ps.Retry, ps.SelfPeer, ps.Database = false, false, false
	ps.Edge, ps.Group, ps.Links = -1, "", nil
	h := &ps.Half
	setHalf(h, s, n.svc)
	switch n.role {
	case pairing.RoleClient:
		if !s.SelfPeer && n.note != pairing.NoteLate {
			ps.Retry = s.ResendCount > 0 || g.isRetry(s)
			ps.Database = s.Peer.Kind == NodeDatabase
		}
		ps.SelfPeer = s.SelfPeer
	case pairing.RoleProducer:
		if s.Destination.Name != "" {
			if h.Peer = g.node(s.Destination, ep); h.Peer < 0 {
				return errNodeLimit
			}
			e := g.edge(n.svc, h.Peer, s.Protocol, "")
			if e == nil {
				return errEdgeLimit
			}
			st := e.ring.at(ep)
			st.call(h.N, h.Err, false)
			g.latency(&st.Client, duration(h))
		}
	case pairing.RoleConsumer:
		if s.Destination.Name != "" {
			dest := g.node(s.Destination, ep)
			if dest < 0 {
				return errNodeLimit
			}
			e := g.edge(dest, n.svc, s.Protocol, s.ConsumerGroup)
			if e == nil {
				return errEdgeLimit
			}
			ps.Edge = e.idx
			st := e.ring.at(ep)
			for range max(1, len(s.Links)) {
				st.call(h.N, s.Error, false)
			}
			g.latency(&st.Server, s.End-s.Start)
		}
		ps.Group, ps.Links = s.ConsumerGroup, s.Links
	}
	err := g.store.Consume(ps, nowN)
	if err != nil && errors.Is(err, pairing.ErrNoDestination) {
		// A consumer that named no destination and whose producer was
		// not seen either.
		g.unplaced.example(g.nodeIx[n.svc].key, reasonNoDestination, s.Operation)
		g.unplaced.count(g.nodeIx[n.svc].key, reasonNoDestination, ep)
	}
	return err
}

// setHalf sets h to span s of service node as a half of a call: no peer,
// no retry (consume adds them where they belong).
func setHalf(h *pairing.Half, s *Span, node int32) {
	h.Node, h.Peer, h.N = node, -1, callCount(s)
	h.Start, h.End = s.Start, s.End
	h.Proto, h.Err, h.Retry, h.Fail = uint8(s.Protocol), s.Error, false, uint8(s.Failure)
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
