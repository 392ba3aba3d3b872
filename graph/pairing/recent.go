package pairing

import (
	"encoding/binary"
	"unsafe"
)

// recentSpans remembers the spans seen lately: for each (trace, span id),
// the service node that sent it and its kind. With it a span finds its
// parent's service whichever of the two arrives first (a cross-service
// hop that no client/server pair accounts for), a re-sent span is told
// from a new one, a client and a server reported under one span id
// (Zipkin's shared spans) are told from a duplicate, and a span that
// arrives after its other half was given up is known to be late.
//
// It is a set-associative table: a key hashes to a bucket of seenWays
// slots, and a new key takes an empty slot or the bucket's oldest. Slots
// hold no pointers, so the garbage collector never scans the table. The
// table starts small and doubles when, over the last table-size inserts,
// more than 1 in 256 of them evicted a span younger than its horizon (a
// 4-way table overflows single buckets long before it is full: growing
// at the first such eviction would keep it three times larger than its
// live spans), up to maxSlots. Spans forgotten before the horizon are
// counted (evictedYoung). Owned by one Store.
type recentSpans struct {
	slots    []seenSlot
	mapping  *slotMapping // owns slots when they live outside the heap
	mask     uint64       // buckets - 1
	maxSlots int
	horizon  uint32 // seconds a span should be remembered
	base     int64  // Unix ns that slot times count from
	// evictedYoung counts spans forgotten before the horizon.
	evictedYoung uint64
	// inserts and young count the inserts and the young evictions of
	// the current period of len(slots) inserts.
	inserts, young int
	// touched keeps what Touch read.
	touched uint32
}

// seenWays is the number of slots in a bucket.
const seenWays = 4

// minSeenSlots is the size a table starts at.
const minSeenSlots = 1 << 12

// kindAnswered marks a slot that is no span: the slot at (trace, S.Parent)
// of a server span S that waited out the pair TTL without its client, so
// that the client, arriving later, is known to be late.
const kindAnswered Kind = 0xff

// Flags of a seenSlot.
const (
	// seenExpired: a client span whose call was recorded without a
	// server span (it waited out the pair TTL, or it calls a database and
	// was recorded at once); a server span arriving for it now is late.
	seenExpired uint8 = 1 << iota
	// seenProducer: a span that publishes a message; endMs is its end.
	seenProducer
)

// seenSlot is one remembered span, 32 bytes: a bucket of four is two
// cache lines. at is 0 in an empty slot.
type seenSlot struct {
	// th is the trace id's 64-bit hash (traceHash): with the span id, a
	// false match needs two ids colliding in 128 random bits.
	th   uint64
	span SpanID
	node int32
	at   uint32 // seconds since recentSpans.base, plus one
	// endMs is a producer span's end, milliseconds since base (0:
	// unknown), so that a consumer arriving after the producer's
	// half-edge expired still learns its producer-to-consumer delay.
	endMs uint32
	kind  Kind
	flags uint8
}

// newRecentSpans returns a table that remembers spans for horizonSec
// seconds while it holds at most maxSlots (rounded down to a power of two,
// at least minSeenSlots). Slot times count from base (Unix ns).
func newRecentSpans(maxSlots int, horizonSec uint32, base int64) recentSpans {
	m := minSeenSlots
	for m*2 <= maxSlots {
		m *= 2
	}
	r := recentSpans{maxSlots: m, horizon: max(horizonSec, 1), base: base}
	r.alloc(min(minSeenSlots, m))
	return r
}

// alloc gives r a new empty table of n slots. The old one, if any, stays
// readable until r.mapping is freed.
func (r *recentSpans) alloc(n int) {
	r.slots, r.mapping = mapSlots(n)
	r.mask = uint64(n/seenWays - 1)
}

// stamp returns the slot time of nowN.
func (r *recentSpans) stamp(nowN int64) uint32 {
	d := (nowN - r.base) / 1e9
	if d < 0 {
		d = 0
	}
	if d > 1<<32-2 {
		d = 1<<32 - 2
	}
	return uint32(d) + 1
}

// traceHash hashes a trace id to 64 bits. Every byte counts: W3C ids are
// random in their low bytes, but some senders count, or pad 64-bit ids.
func traceHash(tr *TraceID) uint64 {
	return mix64(binary.LittleEndian.Uint64(tr[8:]) ^ mix64(binary.LittleEndian.Uint64(tr[:8])))
}

func (r *recentSpans) bucket(th uint64, sp SpanID) []seenSlot {
	h := mix64(binary.LittleEndian.Uint64(sp[:]) ^ th)
	i := (h & r.mask) * seenWays
	return r.slots[i : i+seenWays : i+seenWays]
}

// mix64 is SplitMix64's finaliser: span and trace ids are random, but a
// sender may count them up, and the low bits must still spread.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Note is what Remember found about a span already in the table.
type Note uint8

const (
	// NoteNew: nothing known of the span.
	NoteNew Note = iota
	// NoteDuplicate: the same span (same id, kind and service) was seen.
	NoteDuplicate
	// NoteShared: a span of the other side (client for a server, server
	// for a client) of another service carries the same id: a Zipkin
	// shared span.
	NoteShared
	// NoteLate: a client span whose server span waited out the pair TTL
	// and was recorded without it.
	NoteLate
)

// touch starts fetching the bucket of span (tr, id) without waiting on it, so
// that calls for a whole batch, one after the other, have the CPU fetch
// their buckets from memory at once rather than one at a time (a bucket
// is most often a cache miss: the table is tens of megabytes). On amd64
// and arm64 it issues prefetch instructions, which let the loop run ahead
// of memory; elsewhere it reads the bucket, and keeps what it read so
// that the reads are not optimised away.
func (r *recentSpans) touch(tr *TraceID, id SpanID) {
	r.touched += prefetchBucket(r.bucket(traceHash(tr), id))
}

// endMs returns the slot time of a span end, 0 when out of range.
func (r *recentSpans) endMs(end int64) uint32 {
	d := (end - r.base) / 1e6
	if d <= 0 || d >= 1<<32 {
		return 0
	}
	return uint32(d)
}

// producerEnd returns the end (Unix ns) of producer span (tr, id) when it
// is remembered.
func (r *recentSpans) producerEnd(tr *TraceID, id SpanID) (int64, bool) {
	th := traceHash(tr)
	b := r.bucket(th, id)
	for i := range b {
		if sl := &b[i]; sl.at != 0 && sl.flags&seenProducer != 0 && sl.endMs != 0 && sl.span == id && sl.th == th {
			return r.base + int64(sl.endMs)*1e6, true
		}
	}
	return 0, false
}

// remember records span (tr, id) of the given kind and service node and
// reports what was known of its id before. producer says the span
// publishes a message; end is when it ended (Unix ns).
func (r *recentSpans) remember(tr *TraceID, id SpanID, kind Kind, node int32, producer bool, end, nowN int64) Note {
	now := r.stamp(nowN)
	th := traceHash(tr)
	b := r.bucket(th, id)
	note := NoteNew
	victim := 0
	for i := range b {
		sl := &b[i]
		if sl.at == 0 {
			victim = i
			continue
		}
		if sl.span == id && sl.th == th {
			switch {
			case sl.kind == kind && sl.node == node:
				sl.at = now
				return NoteDuplicate
			case sl.kind == kindAnswered && kind == KindClient:
				note = NoteLate
			case sl.node != node && (sl.kind == KindClient && kind == KindServer || sl.kind == KindServer && kind == KindClient):
				note = NoteShared
			}
		}
		if b[victim].at != 0 && sl.at < b[victim].at {
			victim = i
		}
	}
	sl := seenSlot{th: th, span: id, node: node, at: now, kind: kind}
	if producer {
		sl.flags, sl.endMs = seenProducer, r.endMs(end)
	}
	if r.inserts++; r.inserts >= len(r.slots) {
		r.inserts, r.young = 0, 0
	}
	if v := &b[victim]; v.at != 0 && now-v.at < r.horizon {
		if r.young++; r.young > len(r.slots)/256 && len(r.slots) < r.maxSlots {
			r.grow()
			r.inserts, r.young = 0, 0
			r.insert(sl)
			return note
		}
		r.evictedYoung++
	}
	b[victim] = sl
	return note
}

// insert puts sl in its bucket's empty or oldest slot.
func (r *recentSpans) insert(sl seenSlot) {
	b := r.bucket(sl.th, sl.span)
	victim := 0
	for i := range b {
		if b[i].at == 0 {
			victim = i
			break
		}
		if b[i].at < b[victim].at {
			victim = i
		}
	}
	b[victim] = sl
}

// grow doubles the table, keeping every slot.
func (r *recentSpans) grow() {
	old, oldMapping := r.slots, r.mapping
	r.alloc(len(old) * 2)
	for i := range old {
		if old[i].at != 0 {
			r.insert(old[i])
		}
	}
	oldMapping.free()
}

// markAnswered records that the server span of node, child of (tr, parent),
// was recorded without its client.
func (r *recentSpans) markAnswered(tr *TraceID, parent SpanID, node int32, nowN int64) {
	r.insert(seenSlot{th: traceHash(tr), span: parent, node: node, at: r.stamp(nowN), kind: kindAnswered})
}

// find returns the slot of span (tr, id), or nil. When two spans share the
// id (a Zipkin shared span), it prefers one of service node other than
// self, then any that is not of kind skip.
func (r *recentSpans) find(tr *TraceID, id SpanID, self int32) *seenSlot {
	th := traceHash(tr)
	b := r.bucket(th, id)
	var found *seenSlot
	for i := range b {
		sl := &b[i]
		if sl.at == 0 || sl.span != id || sl.th != th || sl.kind == kindAnswered {
			continue
		}
		if found == nil || found.node == self && sl.node != self {
			found = sl
		}
	}
	return found
}

// findKind returns the slot of span (tr, id) of the given kind, or nil.
func (r *recentSpans) findKind(tr *TraceID, id SpanID, kind Kind) *seenSlot {
	th := traceHash(tr)
	b := r.bucket(th, id)
	for i := range b {
		if sl := &b[i]; sl.at != 0 && sl.span == id && sl.th == th && sl.kind == kind {
			return sl
		}
	}
	return nil
}

// remapNodes rewrites the node of every remembered span through remap
// (old index -> new, -1: retired) and forgets the spans of retired nodes:
// their spans are older than the idle horizon, far past their own.
func (r *recentSpans) remapNodes(remap []int32) {
	for i := range r.slots {
		sl := &r.slots[i]
		if sl.at == 0 {
			continue
		}
		if n := remapIndex(remap, sl.node); n >= 0 {
			sl.node = n
		} else {
			*sl = seenSlot{}
		}
	}
}

// offHeapBytes returns the bytes of the table mapped outside the Go heap
// (0 when it lives on the heap), which runtime.MemStats does not see.
func (r *recentSpans) offHeapBytes() int {
	if r.mapping == nil {
		return 0
	}
	return len(r.slots) * int(unsafe.Sizeof(seenSlot{}))
}
