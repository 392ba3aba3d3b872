// Package pairing matches the two halves of calls and messages that spans
// report separately: a client span with the server span whose parent it
// is, a producer span with the consumer spans that name it, a span with a
// parent of another service. It follows the shape of Tempo's servicegraphs
// store: half-edges wait in a map keyed by fixed-size ids, in an
// insertion-ordered expiry list (the TTL is constant, so insertion order is
// expiry order), under a size cap; what pairs, and what expires unpaired,
// goes to callbacks (a Recorder).
//
//   - CLIENT span S and SERVER span whose parent is S meet at key (trace, S).
//   - A PRODUCER span P waits at key (trace, P) for the CONSUMER spans that
//     name it as parent or by span link; it stays until it expires, so every
//     consumer group reading the message pairs with it.
//   - A consumer that arrives before its producer leaves a waiter there.
//   - Any other span, and every client and producer span besides, looks
//     for its parent in a table of recent spans: a parent of another
//     service that no pair accounts for is a call from that service. A
//     span whose parent has not come waits at its own id to learn it.
//
// The store knows nothing of the graph it feeds: nodes, edges and peer
// candidates are its caller's indices (int32), kept and handed back as they
// are, and rewritten when the caller renumbers them (Remap).
package pairing

import (
	"errors"
	"fmt"
	"time"
)

// Refusals: why Consume refused a span. The caller counts them.
var (
	// ErrTooManyItems means the store holds Options.MaxItems half-edges
	// and the span would need one more.
	ErrTooManyItems = errors.New("half-edge store full")
	// ErrDuplicate means a client or producer span came with the id of
	// a client, producer or waiting span of the same trace.
	ErrDuplicate = errors.New("duplicate span id")
	// ErrNoDestination means a consumer span named no destination and its
	// producer was not seen either: it cannot be placed.
	ErrNoDestination = errors.New("messaging span without destination")
)

// Options configure a Store. Every field is required.
type Options struct {
	// TTL is how long a half-edge waits for its other half before it
	// expires. The span table remembers spans for twice as long, and two
	// seconds.
	TTL time.Duration
	// MaxItems bounds the half-edges held at once: a span that would need
	// one more is refused with ErrTooManyItems, or, when only part of it
	// would be lost, that part is dropped and counted (DropFull).
	MaxItems int
	// MaxRecentSpans bounds the table of recent spans (rounded down to a
	// power of two, at least 4096); beyond it spans are forgotten early,
	// and counted (Stats.Forgotten).
	MaxRecentSpans int
	// MaxAliases bounds the aliases learnt (a caller and a peer candidate
	// it addresses, to the service that answered there); more are dropped
	// and counted (DropAliasesFull).
	MaxAliases int
	// MaxOrphaned bounds the service nodes remembered to have answered a
	// sampled call whose caller's span was not kept.
	MaxOrphaned int
	// Start is when the store starts: the span table counts its times
	// from it. The store reads no clock: every call that needs the time is
	// given it, so that its caller reads its clock once for a batch and
	// the store and the caller agree on the instant.
	Start time.Time
	// Recorder receives what pairs and what expires.
	Recorder Recorder
	// Peers resolves the peers client spans name.
	Peers Peers
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	var errs []error
	if o.TTL <= 0 {
		errs = append(errs, fmt.Errorf("TTL %v: must be positive", o.TTL))
	}
	if o.MaxItems < 1 || o.MaxRecentSpans < 1 || o.MaxAliases < 1 || o.MaxOrphaned < 1 {
		errs = append(errs, errors.New("max items, recent spans, aliases and orphaned nodes must be positive"))
	}
	if o.Start.IsZero() {
		errs = append(errs, errors.New("a start time is required"))
	}
	if o.Recorder == nil || o.Peers == nil {
		errs = append(errs, errors.New("a recorder and peers are required"))
	}
	return errors.Join(errs...)
}

// Role is the part a span plays in pairing, as its caller judges it from
// the span's kind and messaging operation.
type Role uint8

// Roles.
const (
	// RoleNone: neither half of a call nor of a message (an internal
	// span, a span of unknown kind, a settle); it is placed through its
	// parent.
	RoleNone Role = iota
	RoleClient
	RoleServer
	RoleProducer
	RoleConsumer
)

// Caller reports whether spans of role r make the calls or send the
// messages: a batch's callers are consumed before the rest, so that a
// server span or a consumer span finds its other half waiting when both
// came in one batch.
func (r Role) Caller() bool { return r == RoleClient || r == RoleProducer }

// Half is one side of a call or a message: what the store keeps of a span
// while it waits for its other half, and what it hands to the Recorder. It
// holds no pointers.
type Half struct {
	Node       int32  // the span's service node
	Peer       int32  // a client's peer candidate, a producer's destination node; -1 none
	Start, End int64  // Unix ns
	N          uint32 // calls of the real traffic the span stands for (a sampled span's weight)
	Proto      uint8  // the caller's protocol code, kept as is
	Err        bool   // the call failed on the callee's account
	Retry      bool   // the call repeats an earlier one
	Fail       uint8  // the caller's code for why a failed call failed, kept as is
}

// Waiter is a consumer span waiting for its producer.
type Waiter struct {
	Edge  int32  // the destination -> consumer edge, or -1 when the consumer named no destination
	Node  int32  // consumer service node
	Group string // consumer group (copied while it waits), used only when Edge is -1
	Start int64  // Unix ns
	Proto uint8  // the caller's protocol code
}

// Span is what the store is told of one span.
type Span struct {
	Trace  TraceID
	ID     SpanID
	Parent SpanID // zero for a root span
	Role   Role
	// Note is what Remember found of the span's id.
	Note Note
	// Half is the span's own half, Peer -1 except for a producer span,
	// where it is the node of its destination (-1 none). A client's peer
	// candidate is asked for when needed (Peers.Peer).
	Half Half
	// Retry says a client span's call repeats an earlier one.
	Retry bool
	// SelfPeer marks a client span that names its own service as the peer
	// it calls: the instrumentation of that peer, reporting under the
	// peer's name, whose caller is the service of its parent span.
	SelfPeer bool
	// Database marks a client span calling a database: databases answer
	// without a span of their own, so its call is recorded at once
	// (Recorder.Unpaired) unless its caller has seen a service answer
	// there.
	Database bool
	// Ref is the caller's own reference to the span, handed back to
	// Peers.Peer and Recorder.Example while Consume runs.
	Ref int32
	// Edge, Group and Links are a consumer span's: the destination ->
	// consumer edge the caller recorded it on (-1 when it named no
	// destination), its consumer group and its links (the producers of a
	// batch it received; without links, its parent is its producer).
	Edge  int32
	Group string
	Links []SpanRef
}

// Reason says why a span could not be placed on any edge.
type Reason uint8

// Reasons.
const (
	// ReasonClientNoPeer: a client span no server span answered, naming no
	// peer.
	ReasonClientNoPeer Reason = iota + 1
	// ReasonParentNotSeen: a span whose parent never came within the
	// TTL, so whether another service called it is unknown.
	ReasonParentNotSeen
	// ReasonSampledOut: a sampled server span whose caller's span was
	// not kept (samplers that do not agree along the trace).
	ReasonSampledOut
)

// Recorder receives what a Store finds: the callbacks for paired and
// expired half-edges. The store calls it from Consume and Expire and
// nothing else, with its caller's lock held; a method must not call back
// into the store. Halves and waiters are passed by value; a Waiter's
// Group may be the span's own string, which the recorder copies to keep.
//
// The methods that record return an error when the recorder cannot record
// (a limit of its own): Consume returns it as the span's refusal.
type Recorder interface {
	// Pair records the call of client half c answered by server half
	// sv, and attempts more attempts of it (errs of them failed) that
	// answered the same client span: retries.
	Pair(c, sv Half, attempts, errs uint8) error
	// Hop records a call from node from answered by h, a span of another
	// service whose parent, a span of from, is no client span that pairs
	// with it. With clientSide, h's duration is the caller's view of the
	// call (h is a client span naming its own service), else the
	// callee's. attempts and errs are as for Pair.
	Hop(from int32, h Half, clientSide bool, attempts, errs uint8) error
	// Uncalled records a call to h from no instrumented caller: a root
	// span, or one whose caller's span will not come. clientSide,
	// attempts and errs are as for Hop.
	Uncalled(h Half, clientSide bool, attempts, errs uint8) error
	// Attempt records server half sv answering a client span of node
	// from that paired with another server span already: one more
	// attempt of the same call, a retry.
	Attempt(from int32, sv Half) error
	// Unpaired records call c that no server span answers, to the node
	// of its peer candidate c.Peer: a database call recorded at once, or
	// a call to a peer nobody was seen answering for, given up at its TTL.
	Unpaired(c Half) error
	// Unanswered records call c, given up at its TTL, to callee: the
	// service seen answering calls from c.Node to c.Peer. With sampledOut,
	// its server span was most likely sampled out, not missing: the
	// samplers along the hop do not agree.
	Unanswered(c Half, callee int32, sampledOut bool)
	// Message records the hop of a message from producer p to consumer w.
	Message(p Half, w Waiter)
	// LateMessage records consumer w of a message whose producer span,
	// which ended at end (Unix ns), waited out its TTL before w came.
	LateMessage(w Waiter, end int64)
	// Unplaced counts a span of node that could not be placed on any
	// edge, for reason.
	Unplaced(node int32, reason Reason)
	// Example remembers span ref of node as an example of a span that may
	// end unplaced for reason.
	Example(ref, node int32, reason Reason)
}

// Peers are the caller's peer candidates: what a client span names as the
// peer it calls (a host and port, a peer.service, a database), which
// becomes a node only when a call to it goes unanswered. The store calls
// it as it calls the Recorder.
type Peers interface {
	// Peer returns the peer candidate of client span ref (Span.Ref),
	// by the caller's index of candidates; -1 when it names none.
	Peer(ref int32) int32
	// ManyPeers reports whether candidate p stands for many peers (the
	// caller's overflow beyond its limit): the service answering one call
	// to it says nothing of the next.
	ManyPeers(p int32) bool
}

// Store pairs half-edges. It is not safe for concurrent use: its caller
// serialises every call (the graph holds its lock).
type Store struct {
	ttl   int64 // ns
	max   int
	rec   Recorder
	peers Peers
	half  slab
	// recent remembers the spans seen lately (recent.go).
	recent recentSpans
	// aliases map a caller and a peer candidate it addresses to the
	// service node that answered those calls (aliasAmbiguous when several
	// did), so calls to it that go unanswered land on the edge to that
	// service, not on a virtual node (alias.go).
	aliases    map[aliasKey]alias
	maxAliases int
	// answered says, by peer candidate, whether any service answered
	// calls to it (a key of aliases exists); it may be shorter than the
	// caller's table of candidates.
	answered []bool
	// orphaned marks the service nodes that had a sampled server span
	// whose caller's span was not kept (see samplersDisagree).
	orphaned    map[int32]bool
	maxOrphaned int
	dropped     [NumDrops]uint64
	expired     [NumExpiries]uint64
	// reroutes are the newest changes of the collectors that share the
	// traffic, as [lo, hi] Unix ns (Rerouted); rerouted counts, by kind,
	// the unpaired half-edges whose span began before one of them and
	// that expired after it.
	reroutes  [maxReroutes][2]int64
	nReroutes int
	rerouted  [NumExpiries]uint64
}

// maxReroutes bounds the changes Rerouted remembers: the newest win.
const maxReroutes = 8

// Rerouted tells the store that between lo and hi (Unix ns) the set of
// collectors that traffic is routed over changed (one stopped, started or
// came back: a load balancer routing by trace id then sends a trace begun
// on one to another). A half-edge that expires unpaired whose span began
// before hi, and that expires after lo, most likely had its other half
// sent to another collector: it is counted as rerouted too (Stats.Rerouted).
func (s *Store) Rerouted(lo, hi int64) {
	copy(s.reroutes[1:], s.reroutes[:maxReroutes-1])
	s.reroutes[0] = [2]int64{lo, hi}
	s.nReroutes = min(s.nReroutes+1, maxReroutes)
}

// reroutedAcross reports whether a half-edge of a span that began at start
// and expires unpaired at now straddles a change of the collectors.
func (s *Store) reroutedAcross(start, now int64) bool {
	for _, r := range s.reroutes[:s.nReroutes] {
		if start < r[1] && now > r[0] {
			return true
		}
	}
	return false
}

// expire counts a half-edge of kind, of a span that began at start,
// expiring unpaired at now.
func (s *Store) expire(kind Expiry, start, now int64) {
	s.expired[kind]++
	if s.nReroutes > 0 && s.reroutedAcross(start, now) {
		s.rerouted[kind]++
	}
}

// New returns an empty Store configured by opts.
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	return &Store{
		ttl:         int64(opts.TTL),
		max:         opts.MaxItems,
		rec:         opts.Recorder,
		peers:       opts.Peers,
		half:        newSlab(),
		recent:      newRecentSpans(opts.MaxRecentSpans, uint32(2*opts.TTL/time.Second)+2, opts.Start.UnixNano()),
		aliases:     make(map[aliasKey]alias),
		maxAliases:  opts.MaxAliases,
		orphaned:    make(map[int32]bool),
		maxOrphaned: opts.MaxOrphaned,
	}, nil
}

// Touch starts fetching what Remember will look at for span (tr, id),
// without waiting: calling it for every span of a batch before
// remembering any has the CPU fetch their places in the span table at once
// rather than one at a time.
func (s *Store) Touch(tr *TraceID, id SpanID) { s.recent.touch(tr, id) }

// Remember records span (tr, id) of the given kind and service node in
// the table of recent spans, at now (Unix ns), and reports what was known
// of its id. producer says the span publishes a message; end is when it
// ended (Unix ns). A caller remembers every span of a batch before it
// consumes any, so that a span finds a parent that came later in the
// batch; a span found a duplicate (NoteDuplicate: an exporter re-sending
// it) is not consumed.
func (s *Store) Remember(tr *TraceID, id SpanID, kind Kind, node int32, producer bool, end, now int64) Note {
	return s.recent.remember(tr, id, kind, node, producer, end, now)
}

// Len returns the half-edges held.
func (s *Store) Len() int { return s.half.len() }

// Waiting returns how many consumer spans wait for producer span p.
func (s *Store) Waiting(p SpanRef) int {
	en := s.half.get(key{trace: p.Trace, span: p.Span})
	if en == nil {
		return 0
	}
	return len(s.half.waiting(en))
}

// alloc returns a fresh entry for k that expires a TTL after now, or nil
// when the store is full.
func (s *Store) alloc(k key, now int64) *entry {
	if s.half.len() >= s.max {
		return nil
	}
	return s.half.add(k, now+s.ttl)
}

// releaseIfEmpty frees en when it holds nothing any more.
func (s *Store) releaseIfEmpty(en *entry) {
	if en.has != 0 || en.waiters != 0 {
		return
	}
	s.half.remove(en)
}

// Expire ages out the half-edges whose TTL ran out by now (Unix ns),
// oldest first, handing what they leave to the Recorder.
func (s *Store) Expire(now int64) {
	for en := s.half.oldest(); en != nil && en.expireAt <= now; en = s.half.oldest() {
		s.expireEntry(en, now)
		s.half.remove(en)
	}
}
