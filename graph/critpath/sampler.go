package critpath

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/mapping"

	"github.com/seed-a49a8342/cartograph/graph"
)

// Sampler samples whole traces, assembles them until their root has
// arrived and they go idle, and keeps the critical-path breakdown of each
// entry operation over a sliding window. It implements graph.PathSource.
// All methods are safe for concurrent use: one mutex guards the traces being
// assembled, another the results, and a trace's analysis runs under neither.
type Sampler struct {
	o        Options
	idle     int64 // TraceIdle in ns
	rootWait int64 // RootWait in ns
	bucketN  int64 // Bucket in ns
	slots    int   // buckets kept per entry
	mapping  mapping.IndexMapping
	m        *metrics
	pool     sync.Pool // *analyzer

	// due is when the oldest trace being assembled goes idle (Unix ns;
	// MaxInt64 when none is), read without mu so that batches of unsampled
	// spans do not take the lock.
	due atomic.Int64
	// accept is how many leading zero bits a trace id hash needs for its
	// spans to be looked at (read without mu): level, or less while traces
	// taken at a lower level are still being assembled.
	accept atomic.Int32

	mu     sync.Mutex
	traces map[graph.TraceID]*trace
	// lists hold the traces being assembled, least recently fed first:
	// those whose root has arrived (complete after TraceIdle), those still
	// waiting for it (RootWait), and those whole (complete at once).
	lists [3]traceList
	// ids and answered are wholeLocked's scratch space.
	ids, answered map[graph.SpanID]struct{}
	free          []*trace
	recent        []uint64 // hashes of traces completed or dropped, direct-mapped
	// refused are the traces refused at MaxTraces, exactly (the direct-
	// mapped recent forgets), for RootWait: their roots come last, seconds
	// later, and must not start a trace of their own. At most MaxTraces;
	// refusedQ holds them oldest first.
	refused  map[uint64]struct{}
	refusedQ []refusal
	names    *nameTable // where new traces intern their names
	// level is how many leading zero bits a new trace's id hash needs to
	// be sampled: each level halves the share of traces taken.
	level int
	// held counts the traces being assembled by their hash's leading zero
	// bits; admitted is since when (Unix ns) traces with that many have
	// been taken again after a raise of level left them out (0: always).
	held     [65]int
	admitted [65]int64
	adjusted int64   // when level last changed, Unix ns (0: never)
	period   int64   // start of the current rate period, Unix ns
	started  int     // traces started in it
	demand   float64 // traces a second that level 0 would take (moving average)
	life     float64 // how long a trace is assembled, ns (moving average)

	res results
}

var _ graph.PathSource = (*Sampler)(nil)

// refusal is a trace refused at MaxTraces.
type refusal struct {
	hash uint64
	at   int64 // Unix ns
}

// traceList is a doubly linked list of traces.
type traceList struct{ head, tail *trace }

// Indices of Sampler.lists.
const (
	listRooted   = 0
	listRootless = 1
	listWhole    = 2
)

// maxWholeCheck bounds the spans of a trace checked for being whole; larger
// traces wait TraceIdle.
const maxWholeCheck = 256

// trace is a trace being assembled.
type trace struct {
	id         graph.TraceID
	hash       uint64
	lz         uint8 // leading zero bits of hash
	root       bool  // a span without parent has arrived
	whole      bool  // root arrived, and every span's parent and every call's answer
	first      int64 // Unix ns of the first batch that fed it
	last       int64 // Unix ns of the last batch that fed it
	start      int64 // earliest start of its spans, Unix ns
	spans      []span
	prev, next *trace
	// tab holds the names of spans, but those in local: the names that
	// arrived once tab was full.
	tab   *nameTable
	local []string
}

// span is what the analysis needs of a graph.Span. It holds no pointers,
// so the garbage collector does not scan the spans being assembled (tens
// of megabytes under load): its names are indices into its trace's names.
type span struct {
	id, parent graph.SpanID
	start, end int64
	service    name
	namespace  name
	op         name
	// callee is the node a CLIENT span calls when no SERVER span answers
	// it: its peer, or the destination of a messaging call; zero
	// calleeKind when it names none.
	calleeGroup, calleeName name
	calleeKind              graph.NodeKind
	kind                    graph.SpanKind
	// failed: the call failed or was throttled, so a repeat of it from
	// the same parent is a retry and the time between is waiting.
	failed bool
}

// name is a name of a span being assembled: an index into its trace's
// table (0 is ""), or, with nameLocal set, into the trace's local names.
type name uint32

const nameLocal name = 1 << 31

// nameTable interns the names of the spans being assembled. Each entry is
// written once, under Sampler.mu, into an array that never moves, so an
// analysis reads the names of a trace it has detached without the lock.
// Traces started while a table is current intern into it; when it is full
// a new one becomes current, and the old one is garbage once the last of
// its traces is released.
type nameTable struct {
	strs *[maxInterned]string
	n    int
	ids  map[string]name
}

func newNameTable() *nameTable {
	return &nameTable{strs: new([maxInterned]string), n: 1, ids: make(map[string]name)}
}

// str returns the string of n, a name of a span of t.
func (t *trace) str(n name) string {
	if n&nameLocal != 0 {
		return t.local[n&^nameLocal]
	}
	return t.tab.strs[n]
}

const (
	// maxInterned bounds a names table.
	maxInterned = 1 << 16
	// maxFree bounds the trace structs kept for reuse, maxPooledSpans the
	// span capacity a reused trace may keep.
	maxFree        = 1024
	maxPooledSpans = 1024
)

// New returns a Sampler configured by o.
func New(o Options) (*Sampler, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("critpath: %w", err)
	}
	o = o.withDefaults()
	m, err := mapping.NewLogarithmicMapping(graph.LatencyRelativeAccuracy)
	if err != nil {
		return nil, fmt.Errorf("critpath: %w", err)
	}
	s := &Sampler{
		o:        o,
		idle:     int64(o.TraceIdle),
		rootWait: int64(o.RootWait),
		bucketN:  int64(o.Bucket),
		slots:    int(o.Window/o.Bucket) + 1,
		mapping:  m,
		m:        newMetrics(o.Registerer),
		traces:   make(map[graph.TraceID]*trace),
		refused:  make(map[uint64]struct{}),
		ids:      make(map[graph.SpanID]struct{}),
		answered: make(map[graph.SpanID]struct{}),
		recent:   make([]uint64, 1<<bits.Len(uint(max(4*o.MaxTraces, 4096)-1))),
		names:    newNameTable(),
	}
	s.res.init(s)
	s.due.Store(math.MaxInt64)
	s.pool.New = func() any { return new(analyzer) }
	return s, nil
}

// Options returns the options in force, defaults filled in.
func (s *Sampler) Options() Options { return s.o }

// TraceHash is the hash sampling decides on: a trace is sampled when
// TraceHash(id) % SampleOneIn == 0 and the hash has at least as many leading
// zero bits as the sampler's level (0 unless load forced it up). It is
// fixed (a SplitMix64 finaliser over both halves of the id), so every
// collector under the same load samples the same traces.
func TraceHash(id graph.TraceID) uint64 {
	hi := binary.BigEndian.Uint64(id[:8])
	lo := binary.BigEndian.Uint64(id[8:])
	return mix64(lo ^ mix64(hi))
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (s *Sampler) sampled(id *graph.TraceID) bool {
	h := TraceHash(*id)
	return (s.o.SampleOneIn == 1 || h%uint64(s.o.SampleOneIn) == 0) && bits.LeadingZeros64(h) >= int(s.accept.Load())
}

// ObserveSpans takes the spans of sampled traces into the traces being
// assembled, copying what it keeps: it does not retain spans or their
// strings after it returns. Spans of traces that are not sampled cost a hash
// of their trace id. Traces that have gone idle are analysed on the way out.
func (s *Sampler) ObserveSpans(spans []graph.Span) {
	first := -1
	for i := range spans {
		if s.sampled(&spans[i].Trace) {
			first = i
			break
		}
	}
	if first < 0 && s.due.Load() == math.MaxInt64 {
		return // nothing sampled, nothing being assembled
	}
	now := s.o.Now().UnixNano()
	if first < 0 && now < s.due.Load() {
		return // nothing sampled, nothing idle yet
	}
	var sampled, ignored int
	var dropped [3]int // trace limit, span limit, partial
	s.mu.Lock()
	if first >= 0 {
		for i := first; i < len(spans); i++ {
			if sp := &spans[i]; i == first || s.sampled(&sp.Trace) {
				s.addLocked(sp, now, &sampled, &ignored, &dropped)
			}
		}
	}
	done, rootless := s.expireLocked(now, &dropped[2])
	s.mu.Unlock()

	s.m.sampled.Add(float64(sampled))
	s.m.ignored.Add(float64(ignored))
	s.m.countDropped(dropped)
	s.finish(done, rootless, now)
}

// addLocked adds sp to its trace. Caller holds mu.
func (s *Sampler) addLocked(sp *graph.Span, now int64, sampled, ignored *int, dropped *[3]int) {
	t, ok := s.traces[sp.Trace]
	if !ok {
		h := TraceHash(sp.Trace)
		if _, no := s.refused[h]; no || s.recentHas(h) {
			*ignored++
			return
		}
		lz := bits.LeadingZeros64(h)
		if lz < s.level {
			return // left out since the level rose; looked at only for traces taken before
		}
		if len(s.traces) >= s.o.MaxTraces {
			// Take fewer right away (at most once a second): a trace the
			// level leaves out is left out whole, its root too, where the
			// memory of refused traces is bounded and forgets.
			if s.level < 64 && now-s.adjusted >= int64(time.Second) {
				s.level++
				s.adjusted = now
			}
			dropped[0]++
			if lz >= s.level { // its later spans must not start a partial trace
				if len(s.refused) < s.o.MaxTraces {
					s.refused[h] = struct{}{}
					s.refusedQ = append(s.refusedQ, refusal{h, now})
				} else {
					s.recentAdd(h)
				}
			}
			return
		}
		t = s.newTrace()
		t.id, t.hash, t.lz, t.root, t.whole, t.start, t.first = sp.Trace, h, uint8(lz), false, false, sp.Start, now
		s.traces[sp.Trace] = t
		s.held[lz]++
		s.started++
		s.m.traces.Add(1)
		*sampled++
	} else {
		s.unlink(t)
	}
	if len(t.spans) >= s.o.MaxSpansPerTrace {
		s.forget(t)
		s.release(t)
		dropped[1]++
		return
	}
	t.root = t.root || sp.Parent.IsZero()
	t.start = min(t.start, sp.Start)
	r := span{
		id: sp.ID, parent: sp.Parent, kind: sp.Kind, start: sp.Start, end: sp.End, failed: sp.Error || sp.Throttled,
		service: s.intern(t, sp.Service), namespace: s.intern(t, sp.Namespace), op: s.intern(t, sp.Operation),
	}
	if sp.Kind == graph.SpanClient {
		switch {
		case sp.Peer.Kind != 0 && sp.Peer.Name != "":
			r.calleeKind, r.calleeGroup, r.calleeName = sp.Peer.Kind, s.intern(t, sp.Peer.Group), s.intern(t, sp.Peer.Name)
		case sp.Messaging != graph.MessagingNone && sp.Destination.Kind != 0 && sp.Destination.Name != "":
			r.calleeKind, r.calleeGroup, r.calleeName = sp.Destination.Kind, s.intern(t, sp.Destination.Group), s.intern(t, sp.Destination.Name)
		}
	}
	t.spans = append(t.spans, r)
	s.m.spans.Add(1)
	t.last = now
	t.whole = t.root && len(t.spans) <= maxWholeCheck && s.wholeLocked(t)
	s.pushBack(t)
}

// wholeLocked reports whether t needs no more spans to be analysed
// rightly: every span's parent is in it (but the root's), and every
// synchronous CLIENT span is answered by a SERVER span or calls a
// database or a messaging destination (which never answer with one). A
// call to another service whose batch has not arrived yet, or to an
// external peer, leaves it waiting TraceIdle. Caller holds mu.
func (s *Sampler) wholeLocked(t *trace) bool {
	clear(s.ids)
	clear(s.answered)
	for i := range t.spans {
		sp := &t.spans[i]
		s.ids[sp.id] = struct{}{}
		if sp.kind == graph.SpanServer {
			s.answered[sp.parent] = struct{}{}
		}
	}
	for i := range t.spans {
		sp := &t.spans[i]
		if !sp.parent.IsZero() {
			if _, ok := s.ids[sp.parent]; !ok {
				return false
			}
		}
		if sp.kind != graph.SpanClient {
			continue
		}
		if _, ok := s.answered[sp.id]; ok {
			continue
		}
		switch sp.calleeKind {
		case graph.NodeDatabase, graph.NodeTopic, graph.NodeQueue:
		default:
			return false
		}
	}
	return true
}

// intern returns the name of v for a span of t, keeping an owned copy of v
// shared with the other traces of t's table. Caller holds mu.
func (s *Sampler) intern(t *trace, v string) name {
	if v == "" {
		return 0
	}
	if tab := t.tab; tab == s.names {
		if n, ok := tab.ids[v]; ok {
			return n
		}
		if tab.n < maxInterned {
			c := strings.Clone(v)
			n := name(tab.n)
			tab.strs[n] = c
			tab.n++
			tab.ids[c] = n
			return n
		}
		s.names = newNameTable() // for the traces that start from now on
		tab.ids = nil            // nobody interns into tab any more
	}
	t.local = append(t.local, strings.Clone(v))
	return nameLocal | name(len(t.local)-1)
}

func (s *Sampler) recentSlot(h uint64) *uint64 {
	return &s.recent[(h>>32)&uint64(len(s.recent)-1)]
}

func (s *Sampler) recentHas(h uint64) bool { return *s.recentSlot(h) == h|1 }
func (s *Sampler) recentAdd(h uint64)      { *s.recentSlot(h) = h | 1 }

func (s *Sampler) newTrace() *trace {
	if n := len(s.free); n > 0 {
		t := s.free[n-1]
		s.free = s.free[:n-1]
		t.tab = s.names
		return t
	}
	return &trace{spans: make([]span, 0, 16), tab: s.names}
}

// release returns t's spans to the count and t for reuse. Caller holds mu.
func (s *Sampler) release(t *trace) {
	s.m.spans.Add(-int64(len(t.spans)))
	if len(s.free) >= maxFree || cap(t.spans) > maxPooledSpans {
		return
	}
	t.spans = t.spans[:0]
	if cap(t.local) > maxPooledSpans {
		t.local = nil
	}
	clear(t.local) // drop string references
	t.local = t.local[:0]
	t.prev, t.next, t.tab = nil, nil, nil
	s.free = append(s.free, t)
}

// list returns the list t belongs in.
func (s *Sampler) list(t *trace) *traceList {
	switch {
	case t.whole:
		return &s.lists[listWhole]
	case t.root:
		return &s.lists[listRooted]
	}
	return &s.lists[listRootless]
}

// pushBack appends t to its list; t.root and t.whole must not change while
// it is there.
func (s *Sampler) pushBack(t *trace) {
	l := s.list(t)
	t.prev, t.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (s *Sampler) unlink(t *trace) {
	l := s.list(t)
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

// forget removes t, unlinked, from the traces being assembled; its later
// spans are ignored. Caller holds mu.
func (s *Sampler) forget(t *trace) {
	delete(s.traces, t.id)
	s.recentAdd(t.hash) // late spans must not start a partial trace
	s.held[t.lz]--
	s.m.traces.Add(-1)
}

// expireLocked detaches the traces complete at now (whole, or their root
// arrived and they went idle, or they waited RootWait for it), oldest first, and
// returns them with how many of them are rootless. It releases the traces
// that started before their share of traces was taken (their first spans
// were not looked at), counting them in partial. It adjusts the sampling
// level and updates due. Caller holds mu.
func (s *Sampler) expireLocked(now int64, partial *int) (done []*trace, rootless int) {
	for i, wait := range [3]int64{s.idle, s.rootWait, 0} {
		l := &s.lists[i]
		for t := l.head; t != nil && now-t.last >= wait; t = l.head {
			s.unlink(t)
			s.forget(t)
			if a := s.admitted[t.lz]; a != 0 && t.start <= a {
				*partial++
				s.release(t)
				continue
			}
			if i == listRootless {
				rootless++
			}
			s.life += 0.05 * (float64(now-t.first) - s.life)
			done = append(done, t)
		}
	}
	n := 0
	for ; n < len(s.refusedQ) && now-s.refusedQ[n].at >= s.rootWait; n++ {
		delete(s.refused, s.refusedQ[n].hash)
	}
	if n > 0 {
		s.refusedQ = append(s.refusedQ[:0], s.refusedQ[n:]...)
	}
	s.adjustLocked(now)
	due := int64(math.MaxInt64)
	if t := s.lists[listRooted].head; t != nil {
		due = t.last + s.idle
	}
	if t := s.lists[listRootless].head; t != nil {
		due = min(due, t.last+s.rootWait)
	}
	if t := s.lists[listWhole].head; t != nil {
		due = min(due, t.last)
	}
	s.due.Store(due)
	return done, rootless
}

// adjustLocked keeps the traces being assembled under half of MaxTraces.
// Once a second it estimates how many traces a second level 0 would take
// (those started, times 2^level; a moving average) and how long a trace is
// assembled, and sets the level (each halving the share of new traces
// taken) to the lowest that keeps their product under half of MaxTraces;
// it lowers the level only once that product would stay under a quarter,
// one level per four TraceIdle. addLocked raises it at once, at most once
// a second, when MaxTraces are held. Traces already being assembled are
// completed whatever the level. Caller holds mu.
func (s *Sampler) adjustLocked(now int64) {
	const second = int64(time.Second)
	if s.period == 0 {
		s.period, s.life = now, 2*float64(s.idle)
	}
	if p := now - s.period; p >= second {
		rate := float64(s.started) / (float64(p) / 1e9) * math.Ldexp(1, s.level)
		s.demand += 0.3 * (rate - s.demand)
		s.period, s.started = now, 0
		held := s.demand * max(s.life, float64(s.idle)) / 1e9 // at level 0
		target := float64(s.o.MaxTraces) / 2
		switch {
		case held > target*math.Ldexp(1, s.level) && s.level < 64:
			s.level = min(int(math.Ceil(math.Log2(held/target))), 64)
			s.adjusted = now
		case s.level > 0 && held < target/2*math.Ldexp(1, s.level-1) && now-s.adjusted >= 4*s.idle:
			s.level--
			s.admitted[s.level] = now
			s.adjusted = now
		}
	}
	accept := s.level
	for k := range accept {
		if s.held[k] > 0 {
			accept = k
			break
		}
	}
	s.accept.Store(int32(accept))
	s.m.level.Store(int64(s.level))
}

// complete analyses the traces complete at now.
func (s *Sampler) complete(now int64) {
	var partial [3]int
	s.mu.Lock()
	done, rootless := s.expireLocked(now, &partial[2])
	s.mu.Unlock()
	s.m.countDropped(partial)
	s.finish(done, rootless, now)
}

// finish analyses detached traces (rootless of them without a root), records
// them at now and releases them.
func (s *Sampler) finish(done []*trace, rootless int, now int64) {
	if len(done) == 0 {
		return
	}
	s.m.rootless.Add(float64(rootless))
	a := s.pool.Get().(*analyzer)
	epoch := s.epoch(now)
	var invalid int
	for _, t := range done {
		if !a.analyze(t) {
			invalid++
			continue
		}
		a.collectCalls(t)
		s.res.record(a, epoch)
	}
	s.pool.Put(a)
	if invalid > 0 {
		s.m.dropped.WithLabelValues(dropInvalid).Add(float64(invalid))
	}
	s.mu.Lock()
	for _, t := range done {
		s.release(t)
	}
	s.mu.Unlock()
}

func (s *Sampler) epoch(unixNano int64) int64 {
	e := unixNano / s.bucketN
	if unixNano < 0 && unixNano%s.bucketN != 0 {
		e--
	}
	return e
}

// Paths completes the traces that have gone idle, then returns the
// critical-path breakdown of every entry operation seen in the last window
// (at most Options.Window; 0 or less: Options.Window), sorted by entry node
// id and operation. The result is the caller's.
func (s *Sampler) Paths(window time.Duration) []graph.EntryPath {
	now := s.o.Now().UnixNano()
	s.complete(now)
	if window <= 0 || window > s.o.Window {
		window = s.o.Window
	}
	n := int64((window + s.o.Bucket - 1) / s.o.Bucket)
	cur := s.epoch(now)
	return s.res.paths(cur-n, cur)
}
