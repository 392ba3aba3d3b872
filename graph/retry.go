package graph

import "hash/maphash"

// A client call is a retry when it repeats a call of the same parent span
// to the same operation that failed before it started (or when it says
// so: http.request.resend_count). The graph remembers failed calls for a
// pair TTL, in groups by trace, parent and operation, bounded by
// Options.MaxRetryGroups; the pairing store only carries the verdict
// (pairing.Span.Retry) onto the call's half.

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
// 429) for retry recognition. Caller holds mu.
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
// operation failed before s started. Caller holds mu.
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

// expireRetries forgets the retry groups older than a pair TTL. Caller
// holds mu.
func (g *Graph) expireRetries(nowN int64) {
	for r := g.retryL.head; r != nil && r.expireAt <= nowN; r = g.retryL.head {
		g.retryL.remove(r)
		delete(g.retries, r.key)
	}
}
