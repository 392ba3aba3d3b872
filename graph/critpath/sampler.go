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

// Sampler samples whole traces, assembles them until they go idle and keeps
// the critical-path breakdown of each entry operation over a sliding window.
// It implements graph.PathSource. All methods are safe for concurrent use:
// one mutex guards the traces being assembled, another the results, and a
// trace's analysis runs under neither.
type Sampler struct {
	o       Options
	idle    int64 // TraceIdle in ns
	bucketN int64 // Bucket in ns
	slots   int   // buckets kept per entry
	mapping mapping.IndexMapping
	m       *metrics
	pool    sync.Pool // *analyzer

	// due is when the oldest trace being assembled goes idle (Unix ns;
	// MaxInt64 when none is), read without mu so that batches of unsampled
	// spans do not take the lock.
	due atomic.Int64

	mu     sync.Mutex
	traces map[graph.TraceID]*trace
	head   *trace // least recently fed first
	tail   *trace
	free   []*trace
	recent []uint64   // hashes of traces completed or dropped, direct-mapped
	names  *nameTable // where new traces intern their names

	res results
}

var _ graph.PathSource = (*Sampler)(nil)

// trace is a trace being assembled.
type trace struct {
	id         graph.TraceID
	hash       uint64
	last       int64 // Unix ns of the last batch that fed it
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
		o:       o,
		idle:    int64(o.TraceIdle),
		bucketN: int64(o.Bucket),
		slots:   int(o.Window/o.Bucket) + 1,
		mapping: m,
		m:       newMetrics(o.Registerer),
		traces:  make(map[graph.TraceID]*trace),
		recent:  make([]uint64, 1<<bits.Len(uint(max(2*o.MaxTraces, 1024)-1))),
		names:   newNameTable(),
	}
	s.res.init(s)
	s.due.Store(math.MaxInt64)
	s.pool.New = func() any { return new(analyzer) }
	return s, nil
}

// Options returns the options in force, defaults filled in.
func (s *Sampler) Options() Options { return s.o }

// TraceHash is the hash sampling decides on: a trace is sampled when
// TraceHash(id) % SampleOneIn == 0. It is fixed (a SplitMix64 finaliser over
// both halves of the id), so every collector samples the same traces.
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
	return s.o.SampleOneIn == 1 || TraceHash(*id)%uint64(s.o.SampleOneIn) == 0
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
	var dropped [2]int // trace limit, span limit
	s.mu.Lock()
	if first >= 0 {
		for i := first; i < len(spans); i++ {
			if sp := &spans[i]; i == first || s.sampled(&sp.Trace) {
				s.addLocked(sp, now, &sampled, &ignored, &dropped)
			}
		}
	}
	done := s.expireLocked(now)
	s.mu.Unlock()

	s.m.sampled.Add(float64(sampled))
	s.m.ignored.Add(float64(ignored))
	if dropped[0] > 0 {
		s.m.dropped.WithLabelValues(dropTraceLimit).Add(float64(dropped[0]))
	}
	if dropped[1] > 0 {
		s.m.dropped.WithLabelValues(dropSpanLimit).Add(float64(dropped[1]))
	}
	s.finish(done, now)
}

// addLocked adds sp to its trace. Caller holds mu.
func (s *Sampler) addLocked(sp *graph.Span, now int64, sampled, ignored *int, dropped *[2]int) {
	t, ok := s.traces[sp.Trace]
	if !ok {
		h := TraceHash(sp.Trace)
		if s.recentHas(h) {
			*ignored++
			return
		}
		if len(s.traces) >= s.o.MaxTraces {
			s.recentAdd(h) // so that its later spans do not start a partial trace
			dropped[0]++
			return
		}
		t = s.newTrace()
		t.id, t.hash = sp.Trace, h
		s.traces[sp.Trace] = t
		s.m.traces.Add(1)
		*sampled++
	} else {
		s.unlink(t)
	}
	if len(t.spans) >= s.o.MaxSpansPerTrace {
		delete(s.traces, t.id)
		s.recentAdd(t.hash)
		s.m.traces.Add(-1)
		s.release(t)
		dropped[1]++
		return
	}
	r := span{
		id: sp.ID, parent: sp.Parent, kind: sp.Kind, start: sp.Start, end: sp.End,
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
	s.pushBack(t)
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

func (s *Sampler) pushBack(t *trace) {
	t.prev, t.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = t
	} else {
		s.head = t
	}
	s.tail = t
}

func (s *Sampler) unlink(t *trace) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		s.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

// expireLocked detaches the traces idle at now, oldest first, and updates
// due. Caller holds mu.
func (s *Sampler) expireLocked(now int64) []*trace {
	var done []*trace
	for t := s.head; t != nil && now-t.last >= s.idle; t = s.head {
		s.unlink(t)
		delete(s.traces, t.id)
		s.recentAdd(t.hash) // late spans must not start a partial trace
		done = append(done, t)
	}
	if len(done) > 0 {
		s.m.traces.Add(-int64(len(done)))
	}
	if s.head != nil {
		s.due.Store(s.head.last + s.idle)
	} else {
		s.due.Store(math.MaxInt64)
	}
	return done
}

// complete analyses the traces idle at now.
func (s *Sampler) complete(now int64) {
	s.mu.Lock()
	done := s.expireLocked(now)
	s.mu.Unlock()
	s.finish(done, now)
}

// finish analyses detached traces, records them at now and releases them.
func (s *Sampler) finish(done []*trace, now int64) {
	if len(done) == 0 {
		return
	}
	a := s.pool.Get().(*analyzer)
	epoch := s.epoch(now)
	var invalid int
	for _, t := range done {
		if !a.analyze(t) {
			invalid++
			continue
		}
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
