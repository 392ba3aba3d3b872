package changes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
)

// Store keeps changes beyond the Recorder's ring (storage/clickhouse.Store
// does). AppendChanges is called from one goroutine at a time; the slice
// is the caller's after it returns. Changes lists the stored changes with
// At in [from, to], any order.
type Store interface {
	AppendChanges(ctx context.Context, cs []Change) error
	Changes(ctx context.Context, from, to time.Time) ([]Change, error)
}

// Defaults of Options.
const (
	DefaultMaxChanges   = 10_000
	DefaultMaxServices  = 10_000
	DefaultMaxInstances = 256
	DefaultGoneAfter    = 5 * time.Minute
	DefaultQuiet        = time.Minute
)

// Bounds that are not options.
const (
	// maxValues is how many values of one attribute are remembered per
	// service (the newest seen).
	maxValues = 8
	// forgetAfter: a service, node or edge not seen for this long is
	// forgotten (a node or edge is said removed long before).
	forgetAfter = time.Hour
	// quietArrivals: a node or edge is removed only after it has been
	// quiet for this many of its usual gaps between calls, so that
	// low-rate traffic does not flap (a Poisson edge stays quiet that long
	// with probability e^-20).
	quietArrivals = 20
	// storeTimeout bounds one write to the Store.
	storeTimeout = 10 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// MaxChanges bounds the changes kept in memory (the newest; default
	// DefaultMaxChanges).
	MaxChanges int
	// MaxServices bounds the services whose versions and instances are
	// followed, and MaxSubjects the nodes and edges whose presence is;
	// beyond, they are not followed and are counted (defaults
	// DefaultMaxServices and 10 times MaxServices).
	MaxServices, MaxSubjects int
	// MaxInstances bounds the instances followed per service (the most
	// recently seen; default DefaultMaxInstances).
	MaxInstances int
	// GoneAfter is how long a node, an edge, a value of a version
	// attribute or an instance must go unseen to be gone (default
	// DefaultGoneAfter); a node or edge whose calls are rare waits longer
	// (quietArrivals of its usual gaps). It is also the span of an
	// instance turnover: most instances replaced within it.
	GoneAfter time.Duration
	// Quiet is how long an instance must send nothing to count as gone in
	// a turnover, and how long a service must have been followed before its
	// values count as changing (default DefaultQuiet).
	Quiet time.Duration
	// Store, when set, receives every change (written after each Record)
	// and serves Changes beyond the ring.
	Store      Store
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.MaxChanges == 0 {
		o.MaxChanges = DefaultMaxChanges
	}
	if o.MaxServices == 0 {
		o.MaxServices = DefaultMaxServices
	}
	if o.MaxSubjects == 0 {
		o.MaxSubjects = 10 * o.MaxServices
	}
	if o.MaxInstances == 0 {
		o.MaxInstances = DefaultMaxInstances
	}
	if o.GoneAfter == 0 {
		o.GoneAfter = DefaultGoneAfter
	}
	if o.Quiet == 0 {
		o.Quiet = DefaultQuiet
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Recorder records changes. Observe may be called from many goroutines at
// once; Record from one (the tick's); the readers from any. It keeps at
// most Options.MaxChanges changes, MaxServices services, MaxSubjects
// nodes and edges and MaxInstances instances per service.
type Recorder struct {
	o Options

	// mu guards the ring, what waits for the Store and the services
	// (Observe's, on the ingest path, and Record's).
	mu       sync.Mutex
	ring     []Change // oldest first once full: next is the oldest
	next     int
	pending  []Change // not yet written to the Store
	services map[string]*service

	// Record's alone, read and written without the lock: the nodes and
	// edges followed, the first and the previous snapshot's times and
	// the time between the last two (at most a minute).
	subjects map[string]*subject
	since    time.Time
	prev     time.Time
	dt       time.Duration

	writing atomic.Bool

	recorded  *prometheus.CounterVec
	untracked prometheus.Counter
	storeErrs prometheus.Counter
}

// service is what the Recorder follows of one service's resources.
type service struct {
	name       string
	first      time.Time // first seen by this Recorder
	last       time.Time
	values     [len(tracked)]map[string]*time.Time // value -> last seen
	instances  map[string]*instance
	changedAt  time.Time // the last version change recorded
	turnoverAt time.Time // the last turnover recorded
}

type instance struct{ first, last time.Time }

// subject is a node or an edge followed for its presence.
type subject struct {
	node                 bool
	name, source, target string // names
	sourceID, targetID   string
	first, last          time.Time // first and last in a snapshot's window
	// calls estimates the calls seen from first to last: the integral of
	// the window's rate over the ticks it was present in (each call is in
	// the window for a window's length at 1/window per second).
	calls float64
}

// bound is how long sj must go unseen to be gone: goneAfter, or longer
// for rare calls, quietArrivals of its usual gap (calls over the time it
// was followed); at most forgetAfter.
func (sj *subject) bound(goneAfter time.Duration) time.Duration {
	b := goneAfter
	if span := sj.last.Sub(sj.first).Seconds(); sj.calls > 0 && span > 0 {
		b = max(b, time.Duration(quietArrivals*span/sj.calls*float64(time.Second)))
	}
	return min(b, forgetAfter)
}

// New returns a Recorder for o.
func New(o Options) (*Recorder, error) {
	o = o.withDefaults()
	if o.MaxChanges < 1 || o.MaxServices < 1 || o.MaxSubjects < 1 || o.MaxInstances < 1 {
		return nil, errors.New("changes: MaxChanges, MaxServices, MaxSubjects and MaxInstances must be at least 1")
	}
	if o.GoneAfter < 0 || o.Quiet < 0 {
		return nil, errors.New("changes: GoneAfter and Quiet must not be negative")
	}
	r := &Recorder{o: o, services: map[string]*service{}, subjects: map[string]*subject{}}
	r.recorded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartograph_changes_recorded_total",
		Help: "Changes recorded (new versions, instances replaced, nodes and edges added and removed), by kind.",
	}, []string{"kind"})
	r.untracked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_changes_untracked_total",
		Help: "Sightings of services (in spans) and of nodes and edges (in ticks) not followed for changes: beyond --max-nodes services, or --max-nodes + --max-edges nodes and edges.",
	})
	r.storeErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_changes_store_errors_total",
		Help: "Failed writes of changes to storage (retried after the next tick).",
	})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.recorded, r.untracked, r.storeErrs} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("changes: register metrics: %w", err)
			}
		}
	}
	r.ring = make([]Change, 0, min(o.MaxChanges, 1024))
	return r, nil
}

// add keeps c in the ring and for the Store. Caller holds mu.
func (r *Recorder) add(c Change) {
	c.finish()
	r.recorded.WithLabelValues(c.Kind.String()).Inc()
	if len(r.ring) < r.o.MaxChanges {
		r.ring = append(r.ring, c)
	} else {
		r.ring[r.next] = c
		r.next = (r.next + 1) % len(r.ring)
	}
	if r.o.Store != nil && len(r.pending) < r.o.MaxChanges {
		r.pending = append(r.pending, c)
	}
}

// Observe learns the resources of spans: their services' versions,
// environments, deployments and instances. A new value of one of them,
// seen after the service was followed for Options.Quiet, is recorded as a
// version change at once. It keeps no span; strings it keeps are copied.
func (r *Recorder) Observe(spans []graph.Span) {
	if len(spans) == 0 {
		return
	}
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		lastSvc, lastNS, lastInst string
		lastAttrs                 []graph.Attr
		have                      bool
	)
	for i := range spans {
		s := &spans[i]
		if have && s.Service == lastSvc && s.Namespace == lastNS && s.Instance == lastInst && sameSlice(s.Attributes, lastAttrs) {
			continue
		}
		have, lastSvc, lastNS, lastInst, lastAttrs = true, s.Service, s.Namespace, s.Instance, s.Attributes
		at := now
		if st := time.Unix(0, s.Start); st.Before(now) && now.Sub(st) < r.o.Quiet {
			at = st // when the resource started sending, within reason
		}
		r.observe(s, at, now)
	}
}

// sameSlice reports whether a and b are the same slice (the spans of one
// resource share theirs).
func sameSlice(a, b []graph.Attr) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// observe learns one resource. Caller holds mu.
func (r *Recorder) observe(s *graph.Span, at, now time.Time) {
	key := graph.NodeKey{Kind: graph.NodeService, Group: s.Namespace, Name: s.Service}
	id := key.ID()
	sv, ok := r.services[id]
	if !ok {
		if len(r.services) >= r.o.MaxServices {
			r.untracked.Inc()
			return
		}
		sv = &service{name: clone(key.DisplayName()), first: now, instances: map[string]*instance{}}
		r.services[id] = sv
	}
	sv.last = now
	for _, a := range s.Attributes {
		for i, k := range tracked {
			if a.Key == k && a.Value != "" {
				r.value(sv, id, i, a.Value, at, now)
			}
		}
	}
	if s.Instance != "" {
		if in, ok := sv.instances[s.Instance]; ok {
			in.last = now
		} else {
			if len(sv.instances) >= r.o.MaxInstances {
				oldest := ""
				for k, v := range sv.instances {
					if oldest == "" || v.last.Before(sv.instances[oldest].last) {
						oldest = k
					}
				}
				delete(sv.instances, oldest)
			}
			sv.instances[clone(s.Instance)] = &instance{first: at, last: now}
		}
	}
}

// value learns that service sv sends value v of tracked attribute i.
// v may alias the decoder's buffer: only a copy is kept (a map assignment
// to an existing string key would store the alias, hence the pointers).
// Caller holds mu.
func (r *Recorder) value(sv *service, id string, i int, v string, at, now time.Time) {
	m := sv.values[i]
	if m == nil {
		m = map[string]*time.Time{}
		sv.values[i] = m
	}
	last, known := m[v]
	if known && now.Sub(*last) <= r.o.GoneAfter {
		*last = now
		return
	}
	// A value not seen (lately): new, or back after it was gone.
	v = clone(v)
	prev := ""
	var prevAt time.Time
	for pv, t := range m {
		if pv != v && t.After(prevAt) {
			prev, prevAt = pv, *t
		}
	}
	if prev != "" && now.Sub(sv.first) >= r.o.Quiet {
		c := Change{At: at, Kind: KindVersion, Node: sv.name, NodeID: id, Attribute: tracked[i], From: prev, To: v}
		if i == 0 {
			c.Summary = fmt.Sprintf("version %s of %s (was %s)", v, sv.name, prev)
		} else {
			c.Summary = fmt.Sprintf("%s of %s changed from %s to %s", tracked[i], sv.name, prev, v)
		}
		r.add(c)
		sv.changedAt = now
	}
	if known {
		*last = now
		return
	}
	if len(m) >= maxValues {
		oldest := ""
		for k, t := range m {
			if oldest == "" || t.Before(*m[oldest]) {
				oldest = k
			}
		}
		delete(m, oldest)
	}
	m[v] = &now
}

func clone(s string) string { return string([]byte(s)) }

// Record compares the tick's snapshot with what the Recorder has seen:
// nodes and edges new in its window are added (not before the Recorder
// has seen snapshots for a window and GoneAfter: until then what it sees
// first was there before it started), those unseen for longer than
// GoneAfter (or quietArrivals of their usual gaps) removed, at the time
// they were last seen; services most of whose instances were replaced
// within GoneAfter get a version change (service.instance.id). Then it
// hands the new changes to the Store, in the background.
func (r *Recorder) Record(s *graph.Snapshot) {
	if s == nil {
		return
	}
	now := s.GeneratedAt
	if now.IsZero() {
		now = r.o.Now()
	}
	// The nodes and edges followed are Record's alone: judged without
	// the lock that Observe, on the ingest path, takes.
	r.dt = 0
	if !r.prev.IsZero() && now.After(r.prev) {
		r.dt = min(now.Sub(r.prev), time.Minute)
	}
	r.prev = now
	if r.since.IsZero() {
		r.since = now
	}
	// Until the window has filled and what is rare has had the time to
	// show, a node or an edge seen for the first time was there before.
	warm := now.Sub(r.since) >= max(time.Duration(s.WindowSeconds*float64(time.Second)), r.o.GoneAfter)
	found := r.presence(s, now, warm)
	r.mu.Lock()
	for _, c := range found {
		r.add(c)
	}
	r.turnovers(now)
	var batch []Change
	if len(r.pending) > 0 && r.writing.CompareAndSwap(false, true) {
		batch = r.pending
		r.pending = nil
	}
	r.mu.Unlock()
	if batch != nil {
		go r.write(batch)
	}
}

// write hands batch to the Store; on failure the changes wait for the
// next Record (within MaxChanges).
func (r *Recorder) write(batch []Change) {
	defer r.writing.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := r.o.Store.AppendChanges(ctx, batch); err != nil {
		r.storeErrs.Inc()
		r.o.Logger.Warn("changes: could not store changes; trying again after the next tick", "changes", len(batch), "err", err)
		r.mu.Lock()
		r.pending = append(batch, r.pending...)
		if len(r.pending) > r.o.MaxChanges {
			r.pending = r.pending[len(r.pending)-r.o.MaxChanges:]
		}
		r.mu.Unlock()
	}
}

// presence returns the nodes and edges added and removed. Called from
// Record only: subjects, since, prev and dt are Record's.
func (r *Recorder) presence(s *graph.Snapshot, now time.Time, warm bool) (found []Change) {
	names := make(map[string]string, len(s.Nodes))
	rates := make(map[string]float64, len(s.Nodes))
	for _, n := range s.Nodes {
		names[n.ID] = n.Name
	}
	seen := make(map[string]bool, len(s.Nodes)+len(s.Edges))
	for _, e := range s.Edges {
		if overflow(e.Source) || overflow(e.Target) {
			continue
		}
		rates[e.Source] += e.RatePerS
		rates[e.Target] += e.RatePerS
		seen[e.ID] = true
		found = r.present(found, e.ID, false, now, warm, e.RatePerS, func(sj *subject) {
			sj.source, sj.target, sj.sourceID, sj.targetID = names[e.Source], names[e.Target], e.Source, e.Target
		})
	}
	for _, n := range s.Nodes {
		if overflow(n.ID) {
			continue
		}
		seen[n.ID] = true
		found = r.present(found, n.ID, true, now, warm, rates[n.ID], func(sj *subject) { sj.name = n.Name })
	}
	for id, sj := range r.subjects {
		if seen[id] {
			continue
		}
		if now.Sub(sj.last) <= sj.bound(r.o.GoneAfter) {
			continue
		}
		delete(r.subjects, id)
		if sj.node {
			found = append(found, Change{At: sj.last, Kind: KindNodeRemoved, Node: sj.name, NodeID: id,
				Summary: fmt.Sprintf("%s gone: nothing seen of it since %s", sj.name, sj.last.UTC().Format(time.RFC3339))})
		} else {
			found = append(found, Change{At: sj.last, Kind: KindEdgeRemoved, Source: sj.source, Target: sj.target, EdgeID: id, SourceID: sj.sourceID, TargetID: sj.targetID,
				Summary: fmt.Sprintf("dependency gone: %s → %s, no calls since %s", sj.source, sj.target, sj.last.UTC().Format(time.RFC3339))})
		}
	}
	return found
}

// present marks a node or edge of the snapshot seen, adding it to found
// when it is new and warm. Called from Record only.
func (r *Recorder) present(found []Change, id string, node bool, now time.Time, warm bool, rate float64, fill func(*subject)) []Change {
	sj, ok := r.subjects[id]
	if !ok {
		if len(r.subjects) >= r.o.MaxSubjects {
			r.untracked.Inc()
			return found
		}
		sj = &subject{node: node, first: now}
		fill(sj)
		r.subjects[id] = sj
		if warm {
			if node {
				found = append(found, Change{At: now, Kind: KindNodeAdded, Node: sj.name, NodeID: id, Summary: "new node " + sj.name})
			} else {
				found = append(found, Change{At: now, Kind: KindEdgeAdded, Source: sj.source, Target: sj.target, EdgeID: id, SourceID: sj.sourceID, TargetID: sj.targetID,
					Summary: fmt.Sprintf("new dependency: %s → %s", sj.source, sj.target)})
			}
		}
	}
	sj.calls += rate * r.dt.Seconds()
	sj.last = now
	return found
}

func overflow(id string) bool {
	return len(id) > len(graph.OverflowName) && id[len(id)-len(graph.OverflowName):] == graph.OverflowName
}

// turnovers records the services most of whose instances were replaced
// within GoneAfter, and forgets what was not seen for long. Caller holds
// mu.
func (r *Recorder) turnovers(now time.Time) {
	w := r.o.GoneAfter
	for id, sv := range r.services {
		if now.Sub(sv.last) > forgetAfter {
			delete(r.services, id)
			continue
		}
		var fresh, gone []string
		prior := 0
		var at time.Time
		for k, in := range sv.instances {
			if now.Sub(in.last) > w {
				delete(sv.instances, k) // gone long ago: no longer a part of a turnover
				continue
			}
			live := now.Sub(in.last) <= r.o.Quiet
			if live && now.Sub(in.first) <= w && in.first.Sub(sv.first) > r.o.Quiet {
				fresh = append(fresh, k)
				if at.IsZero() || in.first.Before(at) {
					at = in.first
				}
				continue
			}
			prior++
			if !live {
				gone = append(gone, k)
			}
		}
		if len(fresh) == 0 || len(gone) == 0 || 2*len(gone) <= prior {
			continue
		}
		if !sv.turnoverAt.IsZero() && now.Sub(sv.turnoverAt) <= w || !sv.changedAt.IsZero() && !sv.changedAt.Before(at.Add(-w)) {
			continue // said already: this turnover, or the new version it deploys
		}
		sv.turnoverAt = now
		r.add(Change{At: at, Kind: KindVersion, Node: sv.name, NodeID: id, Attribute: AttrInstance,
			From: listIDs(gone), To: listIDs(fresh),
			Summary: fmt.Sprintf("%s restarted or redeployed: %d of %d instances replaced by %d new", sv.name, len(gone), prior, len(fresh))})
	}
}

// Between returns the changes in memory with At in [from, to], oldest
// first. It is what incidents read (ChangesBetween, through cmd/collector)
// every tick: the ring holds the newest MaxChanges.
func (r *Recorder) Between(from, to time.Time) []Change {
	r.mu.Lock()
	cs := Between(r.ring, from, to)
	r.mu.Unlock()
	return cs
}

// Changes returns the changes with At in [from, to], oldest first: those
// of the Store (when set) and those in memory, each once, and one change
// recorded by several collectors once (the earliest).
func (r *Recorder) Changes(ctx context.Context, from, to time.Time) ([]Change, error) {
	mem := r.Between(from, to)
	if r.o.Store == nil {
		return mem, nil
	}
	stored, err := r.o.Store.Changes(ctx, from, to)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(stored))
	out := stored
	for _, c := range stored {
		seen[c.ID] = true
	}
	for _, c := range mem {
		if !seen[c.ID] {
			out = append(out, c)
		}
	}
	Sort(out)
	return r.dedupe(out), nil
}

// dedupe drops from cs (oldest first) a change that says what an earlier
// one said within GoneAfter before it: the same change recorded by
// several collectors sharing storage, each from its share of the traffic.
func (r *Recorder) dedupe(cs []Change) []Change {
	type what struct {
		kind                       Kind
		node, edge, attr, from, to string
	}
	last := map[what]time.Time{}
	out := cs[:0]
	for _, c := range cs {
		w := what{c.Kind, c.NodeID, c.EdgeID, c.Attribute, c.From, c.To}
		if t, ok := last[w]; ok && c.At.Sub(t) <= r.o.GoneAfter {
			continue
		}
		last[w] = c.At
		out = append(out, c)
	}
	return out
}
