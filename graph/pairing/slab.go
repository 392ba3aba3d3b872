package pairing

// key is where a half-edge waits: a trace and a span id in it.
type key struct {
	trace TraceID
	span  SpanID
}

// What an entry holds (entry.has).
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
	key      key
	expireAt int64
	// h is the one waiting half: the client or producer span whose id is
	// key.span, or the server span whose parent it is (has says which). A
	// client and its server never wait together: the second pairs at once.
	h          Half
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
// bounded by Options.MaxItems.
const (
	chunkShift = 12
	chunkSize  = 1 << chunkShift
	noSlot     = -1
)

// slab holds the pending half-edges in insertion order, which is expiry
// order (the TTL is the same for all). Owned by one Store.
type slab struct {
	idx        pendIndex
	chunks     []*[chunkSize]entry
	used       int32 // slots ever handed out (all chunks below are full)
	head, tail int32 // expiry list
	free       int32 // free list
	// waitLists are consumers waiting for their producer, by list; a
	// freed list keeps its capacity for reuse (freeWait).
	waitLists [][]Waiter
	freeWait  []int32
}

func newSlab() slab {
	return slab{idx: newPendIndex(), head: noSlot, tail: noSlot, free: noSlot}
}

func (p *slab) len() int { return p.idx.n }

func (p *slab) at(i int32) *entry { return &p.chunks[i>>chunkShift][i&(chunkSize-1)] }

// get returns the entry for k, or nil.
func (p *slab) get(k key) *entry {
	i, _ := p.idx.find(&k, p.idx.hash(&k), p.at)
	if i == noSlot {
		return nil
	}
	return p.at(i)
}

// add returns a fresh entry for k, at the back of the expiry list.
func (p *slab) add(k key, expireAt int64) *entry {
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
	p.idx.insert(p.idx.hash(&k), i)
	return en
}

// remove frees en's slot and its waiter list.
func (p *slab) remove(en *entry) {
	p.idx.remove(p.idx.hash(&en.key), en.self)
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
func (p *slab) oldest() *entry {
	if p.head == noSlot {
		return nil
	}
	return p.at(p.head)
}

// waitList returns en's waiters, creating the list if needed.
func (p *slab) waitList(en *entry) *[]Waiter {
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
func (p *slab) waiting(en *entry) []Waiter {
	if en.waiters == 0 {
		return nil
	}
	return p.waitLists[en.waiters-1]
}

// dropWaiters frees en's waiter list, keeping a small one's capacity.
func (p *slab) dropWaiters(en *entry) {
	w := &p.waitLists[en.waiters-1]
	clear(*w) // drop the group strings
	if cap(*w) > MaxWaiters {
		*w = nil
	} else {
		*w = (*w)[:0]
	}
	p.freeWait = append(p.freeWait, en.waiters-1)
	en.waiters = 0
}

// MaxWaiters bounds the consumer spans that may wait for one producer
// span; more are dropped (DropWaitersFull).
const MaxWaiters = 64
