package pairing

import "strings"

// Consume pairs span sp, remembered already (Remember, whose note is
// sp.Note), at now (Unix ns): it pairs it with a half waiting for it, or
// leaves it waiting, and hands what pairs to the Recorder. It returns nil,
// ErrTooManyItems, ErrDuplicate, ErrNoDestination or an error of the
// Recorder's: the span's refusal. It keeps nothing of sp but copies.
func (s *Store) Consume(sp *Span, now int64) error {
	switch sp.Role {
	case RoleServer:
		return s.server(sp, now)
	case RoleClient:
		if sp.SelfPeer {
			// The instrumentation of the peer it names, reporting under
			// the peer's own service.name: the call is its parent's.
			return s.consumeChild(sp, childClient, now)
		}
		return s.client(sp, now)
	case RoleProducer:
		return s.producer(sp, now)
	case RoleConsumer:
		return s.consumer(sp, now)
	}
	if sp.Parent.IsZero() {
		return nil
	}
	return s.consumeChild(sp, 0, now)
}

func (s *Store) server(sp *Span, now int64) error {
	sv := sp.Half
	svc := sv.Node
	k := key{trace: sp.Trace, span: sp.Parent}
	if sp.Note == NoteShared {
		// Zipkin's shared span: client and server carry one id, and the
		// client waits under it.
		k.span = sp.ID
	} else if sp.Parent.IsZero() {
		return s.rec.Uncalled(sv, false, 0, 0)
	}
	en := s.half.get(k)
	if en != nil && en.has&hasClient != 0 {
		s.learnAlias(en.h.Node, en.h.Peer, svc, en.h.N != sv.N)
		err := s.rec.Pair(en.h, sv, 0, 0)
		en.has &^= hasClient
		s.releaseIfEmpty(en)
		return err
	}
	if en != nil && en.has&hasServer != 0 {
		// A further server span for the same client span: a retry
		// attempt (gRPC retries, hedged requests) answering one call. It
		// is recorded with the first when the client arrives.
		if en.attempts < 0xff {
			en.attempts++
			if sv.Err {
				en.attemptErrs++
			}
		}
		return nil
	}
	if sp.Note != NoteShared {
		if p := s.recent.find(&sp.Trace, sp.Parent, svc); p != nil && p.node != svc {
			switch p.kind {
			case KindClient:
				if p.flags&seenExpired != 0 {
					// Its client span's call was recorded without it.
					s.dropped[DropLateServer]++
					return nil
				}
				// Its client span paired with another server span
				// already: this one is a further attempt.
				return s.rec.Attempt(p.node, sv)
			case KindProducer:
				// Called by a producer span (an HTTP push from a
				// broker, say): no client will come.
				return s.rec.Uncalled(sv, false, 0, 0)
			default:
				// Its parent is a span of another service that is no
				// client: that service called it.
				return s.rec.Hop(p.node, sv, false, 0, 0)
			}
		}
	}
	if en == nil {
		if en = s.alloc(k, now); en == nil {
			return ErrTooManyItems
		}
	}
	switch {
	case en.has&hasProducer != 0:
		// Called by a producer span (an HTTP push from a broker, say): no
		// client will come.
		return s.rec.Uncalled(sv, false, 0, 0)
	case en.has&hasChild != 0:
		// Its parent waits to learn its own parent: the parent's service
		// called this one.
		if en.h.Node != svc {
			return s.rec.Hop(en.h.Node, sv, false, 0, 0)
		}
		return s.rec.Uncalled(sv, false, 0, 0)
	}
	en.h = sv
	en.has |= hasServer
	return nil
}

func (s *Store) client(sp *Span, now int64) error {
	svc := sp.Half.Node
	if sp.Note == NoteLate {
		// Its server span waited out the pair TTL and was recorded
		// without it: counting it now would add an unanswered call.
		s.dropped[DropLateClient]++
		return nil
	}
	c := sp.Half
	c.Retry = sp.Retry
	k := key{trace: sp.Trace, span: sp.ID}
	en := s.half.get(k)
	if en != nil && en.has&hasServer != 0 {
		s.learnAlias(svc, s.peers.Peer(sp.Ref), en.h.Node, c.N != en.h.N)
		err := s.pairWaiting(&c, en)
		s.childOf(sp, childPlaced, now)
		return err
	}
	if sp.Note == NoteShared {
		// Zipkin's shared span whose server came first: the server waits
		// under the parent both share.
		if !sp.Parent.IsZero() {
			if en := s.half.get(key{trace: sp.Trace, span: sp.Parent}); en != nil && en.has&hasServer != 0 && en.h.Node != svc {
				s.learnAlias(svc, s.peers.Peer(sp.Ref), en.h.Node, c.N != en.h.N)
				return s.pairWaiting(&c, en)
			}
		}
		// Its server was recorded already (a shared root span).
		s.dropped[DropLateClient]++
		return nil
	}
	if en == nil && sp.Database {
		if p := s.peers.Peer(sp.Ref); p >= 0 && s.aliasOf(svc, p) < 0 {
			// Databases answer without a span of their own: record the
			// call now rather than hold it for the pair TTL (most of the
			// pending half-edges of a typical system, and the edge shows at
			// once). A database seen answering with a server span is
			// paired like a service.
			db := c
			db.Peer = p
			err := s.rec.Unpaired(db)
			if sl := s.recent.findKind(&sp.Trace, sp.ID, KindClient); sl != nil {
				sl.flags |= seenExpired // a server span for it would be late
			}
			s.childOf(sp, childPlaced, now)
			return err
		}
	}
	if en == nil {
		if en = s.alloc(k, now); en == nil {
			return ErrTooManyItems
		}
	}
	if en.has&(hasClient|hasProducer|hasChild) != 0 {
		return ErrDuplicate
	}
	c.Peer = s.peers.Peer(sp.Ref)
	if c.Peer < 0 {
		s.rec.Example(sp.Ref, svc, ReasonClientNoPeer)
	}
	en.h = c
	en.has |= hasClient
	s.childOf(sp, childPlaced, now)
	return nil
}

// pairWaiting pairs client c with the server span waiting in en, with the
// further attempts that answered the same call, and releases en.
func (s *Store) pairWaiting(c *Half, en *entry) error {
	err := s.rec.Pair(*c, en.h, en.attempts, en.attemptErrs)
	en.has &^= hasServer
	en.attempts, en.attemptErrs = 0, 0
	s.releaseIfEmpty(en)
	return err
}

// consumeChild takes a span that is neither a caller's nor a callee's half
// of a pair (an internal span, a span of unknown kind, a client naming its
// own service): if its parent is a span of another service, the hop is a
// call from that service. flags are childClient for a client naming its
// own service.
func (s *Store) consumeChild(sp *Span, flags uint8, now int64) error {
	if sp.Parent.IsZero() {
		if flags&childClient != 0 {
			// The instrumentation of a peer called by nobody instrumented.
			return s.rec.Uncalled(sp.Half, true, 0, 0)
		}
		return nil
	}
	s.childOf(sp, flags, now)
	return nil
}

// childOf places the hop from sp's parent to sp when the parent is a span
// of another service that no pair accounts for; when the parent has not
// been seen yet, sp waits at its own id to learn it (decided when it
// expires). flags: childClient (sp is a client naming its own service),
// childPlaced (sp is placed on an edge of its own anyway).
func (s *Store) childOf(sp *Span, flags uint8, now int64) {
	if sp.Parent.IsZero() {
		return
	}
	h := sp.Half
	h.Peer = -1
	svc := h.Node
	if p := s.recent.find(&sp.Trace, sp.Parent, svc); p != nil {
		s.placeChild(&h, p.node, p.kind, key{trace: sp.Trace, span: sp.Parent}, flags)
		return
	}
	k := key{trace: sp.Trace, span: sp.ID}
	en := s.half.get(k)
	if en == nil {
		if en = s.alloc(k, now); en == nil {
			s.dropped[DropFull]++
			return
		}
	} else if en.has&hasServer != 0 {
		// A server span whose parent is sp waits for it: sp's service
		// called it.
		if en.h.Node != svc {
			s.rec.Hop(svc, en.h, false, en.attempts, en.attemptErrs)
		} else {
			s.rec.Uncalled(en.h, false, 0, 0)
		}
		en.has &^= hasServer
		en.attempts, en.attemptErrs = 0, 0
	}
	if en.has&(hasClient|hasProducer) == 0 {
		en.h = h
	}
	if flags&childPlaced == 0 {
		s.rec.Example(sp.Ref, svc, ReasonParentNotSeen)
	}
	en.parent = sp.Parent
	en.has |= hasChild | flags
}

// placeChild records the hop to child h from its parent, a span of node
// pnode and kind pkind at key pk, unless a pair accounts for it.
func (s *Store) placeChild(h *Half, pnode int32, pkind Kind, pk key, flags uint8) {
	if pnode == h.Node {
		return // a span within its own service
	}
	switch pkind {
	case KindClient:
		// A client of another service whose callee's first span is no
		// server span: the child answers it, unless a server span did.
		if en := s.half.get(pk); en != nil && en.has&hasClient != 0 {
			s.learnAlias(en.h.Node, en.h.Peer, h.Node, en.h.N != h.N)
			s.rec.Pair(en.h, *h, 0, 0)
			en.has &^= hasClient
			s.releaseIfEmpty(en)
		}
		return
	case KindProducer:
		return // the messaging hop goes through the destination
	}
	s.rec.Hop(pnode, *h, flags&childClient != 0, 0, 0)
}

func (s *Store) producer(sp *Span, now int64) error {
	p := sp.Half
	k := key{trace: sp.Trace, span: sp.ID}
	en := s.half.get(k)
	if en == nil {
		if en = s.alloc(k, now); en == nil {
			if p.Peer < 0 {
				return ErrTooManyItems
			}
			s.dropped[DropFull]++ // only the delay is lost
			return nil
		}
	} else if en.has&(hasClient|hasProducer) != 0 {
		return ErrDuplicate
	} else if en.has&hasServer != 0 {
		s.rec.Uncalled(en.h, false, 0, 0) // see server
		en.has &^= hasServer
		en.attempts, en.attemptErrs = 0, 0
	}
	en.h = p
	en.has |= hasProducer
	if en.waiters != 0 {
		for _, w := range s.half.waiting(en) {
			s.rec.Message(p, w)
		}
		s.half.dropWaiters(en)
	}
	s.childOf(sp, childPlaced, now)
	return nil
}

func (s *Store) consumer(sp *Span, now int64) error {
	w := Waiter{Edge: sp.Edge, Node: sp.Half.Node, Start: sp.Half.Start, Proto: sp.Half.Proto}
	paired := false
	if len(sp.Links) > 0 {
		for _, l := range sp.Links {
			paired = s.visitProducer(sp, &w, l, now) || paired
		}
	} else if !sp.Parent.IsZero() {
		paired = s.visitProducer(sp, &w, SpanRef{Trace: sp.Trace, Span: sp.Parent}, now)
	}
	if w.Edge < 0 && !paired {
		return ErrNoDestination
	}
	return nil
}

// visitProducer pairs consumer w (of span sp) with its producer span ref,
// or leaves it waiting there, and reports whether it did either.
func (s *Store) visitProducer(sp *Span, w *Waiter, ref SpanRef, now int64) bool {
	k := key{trace: ref.Trace, span: ref.Span}
	en := s.half.get(k)
	if en != nil && en.has&hasProducer != 0 {
		w.Group = sp.Group
		s.rec.Message(en.h, *w)
		return true
	}
	if en == nil && w.Edge >= 0 {
		if end, ok := s.recent.producerEnd(&ref.Trace, ref.Span); ok {
			// Its producer came and its half-edge expired: the message
			// waited longer than the pair TTL. Its delay is what the
			// trace-based lag judgement needs most.
			s.rec.LateMessage(*w, end)
			return true
		}
	}
	if en == nil {
		if en = s.alloc(k, now); en == nil {
			s.dropped[DropFull]++
			return false
		}
	}
	if len(s.half.waiting(en)) >= MaxWaiters {
		s.dropped[DropWaitersFull]++
		return false
	}
	ww := *w
	ww.Group = "" // the span's: not kept beyond the call
	if w.Edge < 0 {
		ww.Group = strings.Clone(sp.Group) // read when it pairs
	}
	list := s.half.waitList(en)
	*list = append(*list, ww)
	return true // it will pair or expire
}

// expireEntry hands what en leaves, at its expiry at now, to the Recorder.
func (s *Store) expireEntry(en *entry, now int64) {
	if en.has&hasClient != 0 {
		c := en.h
		if sl := s.recent.findKind(&en.key.trace, en.key.span, KindClient); sl != nil {
			sl.flags |= seenExpired // a server span for it would be late
		}
		if c.Peer < 0 {
			s.expire(ExpiredClientNoPeer, c.Start, now)
			s.rec.Unplaced(c.Node, ReasonClientNoPeer)
		} else if callee := s.aliasOf(c.Node, c.Peer); callee >= 0 {
			// The peer is a service this caller has seen answer: the call
			// never reached it (refused, timed out, or failed fast by a
			// breaker), unless its server span was sampled out.
			sampledOut := c.N > 1 && s.samplersDisagree(c.Node, c.Peer, callee)
			if sampledOut {
				s.expire(ExpiredClientSampled, c.Start, now)
			} else {
				s.expire(ExpiredClientUnanswered, c.Start, now)
			}
			s.rec.Unanswered(c, callee, sampledOut)
		} else {
			s.expire(ExpiredClient, c.Start, now)
			s.rec.Unpaired(c)
		}
	}
	if en.has&hasServer != 0 {
		s.expire(ExpiredServer, en.h.Start, now)
		s.expireServer(en, now)
	}
	if en.has&hasProducer != 0 {
		s.expired[ExpiredProducer]++
	}
	if en.has&hasChild != 0 {
		s.expireChild(en)
	}
	if en.waiters != 0 {
		for _, w := range s.half.waiting(en) {
			s.expire(ExpiredConsumer, w.Start, now)
			if w.Edge < 0 {
				s.dropped[DropNoDestination]++
			}
		}
	}
}

// expireServer decides a server span that waited out the TTL without its
// client span.
func (s *Store) expireServer(en *entry, now int64) {
	sv := en.h
	src := int32(-1)
	if p := s.recent.find(&en.key.trace, en.key.span, sv.Node); p != nil && p.node != sv.Node {
		switch p.kind {
		case KindClient:
			// Its client span came, and its call was recorded without it
			// (a database call, or a call given up as unanswered).
			s.dropped[DropLateServer]++
			return
		case KindProducer:
		default:
			// Its parent, seen after it, is a span of another service
			// that is no client: that service called it.
			src = p.node
		}
	}
	if src < 0 && sv.N > 1 {
		// A sampled server span called by a span that was not kept: its
		// caller was sampled out, not uninstrumented, and the samplers
		// along the hop do not agree.
		s.rec.Unplaced(sv.Node, ReasonSampledOut)
		if len(s.orphaned) < s.maxOrphaned {
			s.orphaned[sv.Node] = true
		}
		return
	}
	if src >= 0 {
		s.rec.Hop(src, sv, false, en.attempts, en.attemptErrs)
		return
	}
	// Nobody instrumented called it. A client span arriving now for it
	// is late.
	s.rec.Uncalled(sv, false, en.attempts, en.attemptErrs)
	s.recent.markAnswered(&en.key.trace, en.key.span, sv.Node, now)
}

// expireChild decides a span that waited to learn its parent's service.
func (s *Store) expireChild(en *entry) {
	h := en.h
	p := s.recent.find(&en.key.trace, en.parent, h.Node)
	if p == nil {
		if en.has&childPlaced == 0 {
			s.rec.Unplaced(h.Node, ReasonParentNotSeen)
		}
		return
	}
	s.placeChild(&h, p.node, p.kind, key{trace: en.key.trace, span: en.parent}, en.has&childClient)
}
