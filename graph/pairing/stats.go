package pairing

// Drop is a part of a span the store could not keep or use; the span
// itself was taken. Drops are counted (Stats.Dropped).
type Drop uint8

// Drops.
const (
	// DropFull: the store was full, so a consumer span could not wait
	// for its producer, a span for its parent, or a producer span for
	// its consumers (its messages' delays are lost).
	DropFull Drop = iota
	// DropWaitersFull: MaxWaiters consumer spans wait for the producer
	// already.
	DropWaitersFull
	// DropLateServer: a server span came after its client span's call was
	// recorded without it.
	DropLateServer
	// DropLateClient: a client span came after its server span was
	// recorded without it.
	DropLateClient
	// DropNoDestination: a consumer span naming no destination waited
	// out the TTL without its producer.
	DropNoDestination
	// DropAliasesFull: an alias could not be learnt (MaxAliases).
	DropAliasesFull
	// NumDrops is the number of drop reasons.
	NumDrops
)

var dropNames = [NumDrops]string{"pending_full", "waiters_full", "late_server", "late_client", "no_destination", "aliases_full"}

// String returns the drop's name, as a metric label.
func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return "unknown"
}

// Expiry is what kind of half-edge waited out the TTL.
type Expiry uint8

// Expiries.
const (
	// ExpiredClientNoPeer: a client span naming no peer.
	ExpiredClientNoPeer Expiry = iota
	// ExpiredClientSampled: a sampled client span to a service seen
	// answering there, whose server span was most likely sampled out.
	ExpiredClientSampled
	// ExpiredClientUnanswered: a client span to a service seen answering
	// there: an unanswered call.
	ExpiredClientUnanswered
	// ExpiredClient: a client span to a peer nobody was seen answering
	// for (a database, an external service).
	ExpiredClient
	// ExpiredServer: a server span whose client span never came.
	ExpiredServer
	// ExpiredProducer: a producer span (every one expires: it waits for
	// all its consumers).
	ExpiredProducer
	// ExpiredConsumer: a consumer span whose producer never came.
	ExpiredConsumer
	// NumExpiries is the number of expiry kinds.
	NumExpiries
)

var expiryNames = [NumExpiries]string{"client_no_peer", "client_sampled", "client_unanswered", "client", "server", "producer", "consumer"}

// String returns the expiry's name, as a metric label.
func (e Expiry) String() string {
	if e < NumExpiries {
		return expiryNames[e]
	}
	return "unknown"
}

// Stats are a Store's sizes now and its counts since it was made.
type Stats struct {
	// Pending is the half-edges held.
	Pending int
	// RecentSlots is the size of the table of recent spans.
	RecentSlots int
	// Forgotten counts the spans the table forgot before twice the TTL.
	Forgotten uint64
	// OffHeapBytes is the memory of the table mapped outside the Go heap
	// (for huge pages), which runtime.MemStats does not see.
	OffHeapBytes int
	// Dropped counts the parts of spans dropped, by Drop.
	Dropped [NumDrops]uint64
	// Expired counts the half-edges that waited out the TTL, by Expiry
	// (a waiting consumer counts as one).
	Expired [NumExpiries]uint64
	// Rerouted counts those of Expired that straddle a change of the
	// collectors sharing the traffic (Store.Rerouted).
	Rerouted [NumExpiries]uint64
}

// Stats returns the store's sizes and counts.
func (s *Store) Stats() Stats {
	return Stats{
		Pending:      s.half.len(),
		RecentSlots:  len(s.recent.slots),
		Forgotten:    s.recent.evictedYoung,
		OffHeapBytes: s.recent.offHeapBytes(),
		Dropped:      s.dropped,
		Expired:      s.expired,
		Rerouted:     s.rerouted,
	}
}
