package graph

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/pairing"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// Options configure a Graph. Zero fields take the documented defaults.
type Options struct {
	// Window is the longest sliding window the graph keeps in memory and the
	// default window of snapshots (default 1m).
	Window time.Duration
	// Bucket is the width of the time buckets the window is made of
	// (default Window/12, at least 1s). The window slides bucket by bucket.
	Bucket time.Duration
	// PairTTL is how long a half-edge waits for its other half before it
	// expires and a virtual node is inferred (default 10s).
	PairTTL time.Duration
	// MaxPending bounds the half-edges held at once (default 1,000,000);
	// spans that would need more are refused and counted.
	MaxPending int
	// MaxRetryGroups bounds the failed-call groups kept to recognise retries
	// (default 100,000).
	MaxRetryGroups int
	// MaxNodes and MaxEdges bound the graph (defaults 10,000 and 50,000).
	// Beyond MaxNodes a new node is folded into the overflow node of its
	// kind (OverflowName, shown as "(other services)" and so on), beyond
	// MaxEdges a new edge into the edge between the overflow nodes of its
	// endpoints' kinds, so the traffic stays visible; both are counted.
	// The overflow nodes and edges (a few dozen at most) come on top of
	// the limits.
	MaxNodes int
	MaxEdges int
	// MaxRecentSpans bounds the spans remembered to find a span's parent
	// whichever arrives first, to recognise re-sent spans and to tell late
	// ones (default 1,048,576, about 38 MB at that size). The table starts
	// small and grows while it would forget spans younger than twice the
	// pair TTL; at the bound it forgets them early, and counts them.
	MaxRecentSpans int
	// IdleExpiry is how long a node, an edge or a peer address may go
	// unseen before it leaves memory (default 15m, or the least allowed
	// when more: Window plus two buckets, so nothing of the window is
	// lost, and three pair TTLs).
	// Its history stays in storage; see retire.go.
	IdleExpiry time.Duration
	// MaxUnplaced bounds the (service, reason) rows of spans that could
	// not be placed on any edge (default 1,000); beyond it they are
	// counted under the service "(other)".
	MaxUnplaced int
	// Lag, when set, puts consumer lag on destination -> consumer edges
	// (the collector's is detect.LagJudge over a graph/lag.Store).
	Lag LagSource
	// Circuits, when set, adds circuit-breaker states to snapshots.
	Circuits CircuitSource
	// Paths, when set, sees every span ConsumeSpans takes (outside the
	// graph lock) and adds critical-path breakdowns to snapshots.
	Paths PathSource
	// Owners, when set, names the owner of each service node of a
	// snapshot (Node.Owner).
	Owners OwnerSource
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the graph's own metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Window < time.Second {
		errs = append(errs, fmt.Errorf("window %v: must be at least 1s", o.Window))
	}
	if o.Bucket <= 0 || o.Bucket > o.Window {
		errs = append(errs, fmt.Errorf("bucket %v: must be in (0, window]", o.Bucket))
	} else if n := o.Window / o.Bucket; n > 3600 {
		errs = append(errs, fmt.Errorf("window/bucket = %d buckets: at most 3600", n))
	}
	if o.PairTTL <= 0 {
		errs = append(errs, fmt.Errorf("pair TTL %v: must be positive", o.PairTTL))
	}
	if lo := max(o.Window+2*o.Bucket, 3*o.PairTTL); o.IdleExpiry < lo {
		errs = append(errs, fmt.Errorf("idle expiry %v: must be at least %v (the window plus two buckets, and three pair TTLs)", o.IdleExpiry, lo))
	}
	if o.MaxPending < 1 || o.MaxRetryGroups < 1 || o.MaxNodes < 1 || o.MaxEdges < 1 || o.MaxRecentSpans < 1 || o.MaxUnplaced < 1 {
		errs = append(errs, errors.New("max pending, retry groups, nodes, edges, recent spans and unplaced rows must be positive"))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Window == 0 {
		o.Window = time.Minute
	}
	if o.Bucket == 0 {
		o.Bucket = max(o.Window/12, time.Second)
	}
	if o.PairTTL == 0 {
		o.PairTTL = 10 * time.Second
	}
	if o.MaxPending == 0 {
		o.MaxPending = 1_000_000
	}
	if o.MaxRetryGroups == 0 {
		o.MaxRetryGroups = 100_000
	}
	if o.MaxNodes == 0 {
		o.MaxNodes = 10_000
	}
	if o.MaxEdges == 0 {
		o.MaxEdges = 50_000
	}
	if o.MaxRecentSpans == 0 {
		o.MaxRecentSpans = 1 << 20
	}
	if o.MaxUnplaced == 0 {
		o.MaxUnplaced = 1_000
	}
	if o.IdleExpiry == 0 {
		o.IdleExpiry = max(15*time.Minute, o.Window+2*o.Bucket, 3*o.PairTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// LagSource gives the consumer lag of every group over a window, judged:
// the numbers graph/lag summarises and the verdict (State, Reason) of the
// one judge, detect.LagJudge, which the collector wires in. Graph joins
// the statuses onto edges as they are and judges nothing itself.
type LagSource interface {
	Evaluate(window time.Duration) []lag.Status
}

// CircuitSource lists circuit-breaker states and retry counters reported
// as metrics (graph/resilience.Store).
type CircuitSource interface {
	Circuits() []resilience.Circuit
	RetryRates(window time.Duration) []resilience.RetryRate
}

// PathSource analyses the critical paths of sampled complete traces
// (graph/critpath). ObserveSpans sees each span once (the graph leaves out
// spans it has seen lately: a re-sent batch's); it must not keep spans or
// their strings past the call, and is called from many goroutines at once.
type PathSource interface {
	ObserveSpans(spans []Span)
	Paths(window time.Duration) []EntryPath
}

// EntryPath is the critical-path breakdown of the requests entering the
// system through one operation of one node: where their end-to-end latency
// goes, node by node, counting each node's own work (self time on the
// critical path), not its waiting on the calls it makes.
type EntryPath struct {
	Node      string // entry node id (the service whose root span it is)
	Operation string // root span name
	Traces    int    // complete traces analysed in the window
	// P50Ms and P95Ms are end-to-end latencies of those traces.
	P50Ms, P95Ms float64
	// Shares are the nodes on the critical path, largest share first.
	Shares []PathShare
}

// PathShare is one node's part of an entry operation's critical path.
type PathShare struct {
	Node   string  // node id
	SelfMs float64 // mean self time on the critical path per trace
	Share  float64 // SelfMs / mean end-to-end latency, in [0,1]
}

// Graph is the live dependency graph. It pairs spans into edges through
// its pairing store (graph/pairing) and keeps edge aggregates over the
// sliding window. All methods are safe for concurrent use; one mutex
// guards the state, the store's too, taken once per Consume batch.
// Readers never see live state: they take a Snapshot.
type Graph struct {
	opts    Options
	bucketN int64 // bucket width in ns
	slots   int   // buckets kept per edge
	mapping mapping.IndexMapping
	latIx   *latencyIndex // of mapping
	seed    maphash.Seed
	started time.Time
	m       *metrics

	mu     sync.Mutex
	nodes  map[NodeKey]int32
	nodeIx []nodeState
	edges  map[edgeKey]int32
	edgeIx []*edgeState
	peers  map[NodeKey]int32
	peerIx []NodeKey
	// edgeCache and peerCache front edges and peers (lookupcache.go).
	edgeCache, peerCache lookupCache
	// peerSeen is the epoch each peer candidate was last addressed in.
	peerSeen []int64
	// ep is the epoch of the batch, expiry or snapshot in progress: what
	// edge and peerCandidate mark as seen.
	ep int64
	// retireAt is the epoch of the next look for idle nodes, edges and
	// peers (retire.go).
	retireAt int64
	retired  retired
	// dormant are destination -> consumer edges retired from memory,
	// with the epoch they were last seen in (rememberDormant).
	dormant map[dormantEdge]int64
	// peerNode caches the node of a peer candidate once it is one (-1:
	// not yet); it may be shorter than peerIx.
	peerNode []int32
	// store pairs the spans' halves; what pairs and what expires comes
	// back through its callbacks (recorder, record.go).
	store *pairing.Store
	// batch is the batch ConsumeSpans is handing to store, for the
	// callbacks that look at a span of it (nil between batches).
	batch    []Span
	retries  map[retryKey]*retryGroup
	retryL   list[*retryGroup]
	notes    []spanNote // scratch of ConsumeSpans
	unplaced unplacedTable

	// overflow counts the observations folded into overflow nodes and
	// edges; nOverflow is how many overflow nodes exist.
	overflow  *prometheus.CounterVec
	nOverflow atomic.Int64

	// Sizes published for metrics without taking mu.
	nPending, nNodes, nEdges atomic.Int64
	nSeenSlots, nSeenEvicted atomic.Int64
}

type nodeState struct {
	key      NodeKey
	lastSeen int64 // epoch of the newest bucket the node was seen in
	// attrs are a service's kept resource attributes (Span.Attributes),
	// nil when none: never changed once set, replaced when they change,
	// so snapshots share them.
	attrs map[string]string
}

// OwnerSource names the owner of a service from its name and its kept
// resource attributes (graph/owner.Resolver does); empty when unknown. It
// is called while a snapshot is built, outside the graph's lock, and must
// be safe for concurrent use; attrs are read only.
type OwnerSource interface {
	Owner(service string, attrs map[string]string) string
}

// MaxNodeAttributes bounds the resource attributes kept on a node; a span
// carrying more has the rest ignored.
const MaxNodeAttributes = 16

// setAttrs gives node i the attributes a, when it has others; a resource
// with none of them leaves the node's as they are. Caller holds mu.
func (g *Graph) setAttrs(i int32, a []Attr) {
	if len(a) == 0 || i < 0 {
		return
	}
	a = a[:min(len(a), MaxNodeAttributes)]
	n := &g.nodeIx[i]
	if n.key.IsOverflow() || sameAttrs(n.attrs, a) {
		return
	}
	m := make(map[string]string, len(a))
	for _, kv := range a {
		m[strings.Clone(kv.Key)] = strings.Clone(kv.Value)
	}
	n.attrs = m
}

// sameAttrs reports whether m holds exactly a.
func sameAttrs(m map[string]string, a []Attr) bool {
	if len(m) != len(a) {
		return false
	}
	for _, kv := range a {
		if v, ok := m[kv.Key]; !ok || v != kv.Value {
			return false
		}
	}
	return true
}

type edgeKey struct {
	src, dst int32
	proto    Protocol
	group    string
}

type edgeState struct {
	idx      int32
	key      edgeKey
	kind     EdgeKind
	lastSeen int64 // epoch the edge was last looked up in
	ring     ring
}

// New returns a Graph configured by opts.
func New(opts Options) (*Graph, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	opts = opts.withDefaults()
	g := &Graph{
		opts:    opts,
		bucketN: int64(opts.Bucket),
		slots:   int(opts.Window/opts.Bucket) + 1,
		mapping: newLatencyMapping(),
		seed:    maphash.MakeSeed(),
		started: opts.Now(),
		nodes:   make(map[NodeKey]int32),
		edges:   make(map[edgeKey]int32),
		peers:   make(map[NodeKey]int32),
		dormant: make(map[dormantEdge]int64),
		retries: make(map[retryKey]*retryGroup),
	}
	g.latIx = newLatencyIndex(g.mapping)
	store, err := pairing.New(pairing.Options{
		TTL:            opts.PairTTL,
		MaxItems:       opts.MaxPending,
		MaxRecentSpans: opts.MaxRecentSpans,
		MaxAliases:     2 * opts.MaxEdges,
		MaxOrphaned:    opts.MaxNodes,
		Start:          g.started,
		Recorder:       (*recorder)(g),
		Peers:          (*recorder)(g),
	})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	g.store = store
	g.m = newMetrics(opts.Registerer, g)
	g.unplaced = newUnplacedTable(opts.MaxUnplaced, g.slots, opts.Registerer)
	g.overflow = newOverflowMetrics(opts.Registerer, g)
	g.retired = newRetiredMetrics(opts.Registerer)
	return g, nil
}

// Options returns the options in force, defaults filled in.
func (g *Graph) Options() Options { return g.opts }

// node returns the index of the node for k, creating it (with copies of its
// strings) if needed, and marks it seen in epoch. It returns -1 when the
// node limit is reached. Caller holds mu.
func (g *Graph) node(k NodeKey, epoch int64) int32 {
	if i, ok := g.nodes[k]; ok {
		g.nodeIx[i].lastSeen = epoch
		return i
	}
	if k.IsOverflow() || len(g.nodeIx) >= g.opts.MaxNodes && k != clientNodeKey {
		return g.overflowNode(k.Kind, epoch)
	}
	k.Group = strings.Clone(k.Group)
	k.Name = strings.Clone(k.Name)
	i := int32(len(g.nodeIx))
	g.nodeIx = append(g.nodeIx, nodeState{key: k, lastSeen: epoch})
	g.nodes[k] = i
	return i
}

// edge returns the edge src->dst, creating it if needed, or nil at the edge
// limit or when an endpoint is missing. Caller holds mu.
func (g *Graph) edge(src, dst int32, proto Protocol, group string) *edgeState {
	if src < 0 || dst < 0 {
		return nil
	}
	k := edgeKey{src: src, dst: dst, proto: proto, group: group}
	h := edgeCacheHash(&k)
	if i := g.edgeCache.get(h); i >= 0 && int(i) < len(g.edgeIx) && g.edgeIx[i].key == k {
		e := g.edgeIx[i]
		e.lastSeen = g.ep
		return e
	}
	if i, ok := g.edges[k]; ok {
		g.edgeCache.put(h, i)
		e := g.edgeIx[i]
		e.lastSeen = g.ep
		return e
	}
	if len(g.edgeIx) >= g.opts.MaxEdges && !g.isOverflowEdge(k) {
		return g.overflowEdge(k)
	}
	k.group = strings.Clone(group)
	kind := EdgeSync
	if sk, dk := g.nodeIx[src].key.Kind, g.nodeIx[dst].key.Kind; sk == NodeTopic || sk == NodeQueue || dk == NodeTopic || dk == NodeQueue {
		kind = EdgeAsync
	}
	if kind == EdgeAsync && len(g.dormant) > 0 {
		delete(g.dormant, dormantEdge{dest: g.nodeIx[src].key, consumer: g.nodeIx[dst].key, proto: proto, group: group})
	}
	e := &edgeState{idx: int32(len(g.edgeIx)), key: k, kind: kind, lastSeen: g.ep, ring: newRing(g.slots)}
	g.edges[k] = int32(len(g.edgeIx))
	g.edgeIx = append(g.edgeIx, e)
	return e
}

// clientNode is the single virtual caller of root server spans.
var clientNodeKey = NodeKey{Kind: NodeClient, Name: "client"}

func (g *Graph) epoch(now time.Time) int64 { return now.UnixNano() / g.bucketN }

// publishSizes updates the lock-free size gauges, and the metrics of the
// pairing store. Caller holds mu.
func (g *Graph) publishSizes() {
	st := g.publishPairing()
	g.nPending.Store(int64(st.Pending))
	g.nNodes.Store(int64(len(g.nodeIx)))
	g.nEdges.Store(int64(len(g.edgeIx)))
	g.nSeenSlots.Store(int64(st.RecentSlots))
	g.nSeenEvicted.Store(int64(st.Forgotten))
}

// publishPairing adds what the pairing store dropped and expired since the
// last call to the graph's metrics, and returns its stats. Caller holds
// mu.
func (g *Graph) publishPairing() pairing.Stats {
	st := g.store.Stats()
	for d := range pairing.NumDrops {
		if n := st.Dropped[d] - g.m.pairing.Dropped[d]; n > 0 {
			g.m.dropped.WithLabelValues(d.String()).Add(float64(n))
		}
	}
	for e := range pairing.NumExpiries {
		if n := st.Expired[e] - g.m.pairing.Expired[e]; n > 0 {
			g.m.expired.WithLabelValues(e.String()).Add(float64(n))
		}
		if n := st.Rerouted[e] - g.m.pairing.Rerouted[e]; n > 0 {
			g.m.rerouted.WithLabelValues(e.String()).Add(float64(n))
		}
	}
	g.m.pairing = st
	return st
}

// Rerouted tells the graph that between lo and hi the collectors sharing
// the traffic changed: this one started, or another stopped or came back,
// so a load balancer routing by trace id moved traces begun on one
// collector to another. Half-edges that then expire unpaired, of spans
// begun before hi, are counted in
// cartograph_graph_half_edges_rerouted_total as well (pairing.Store.Rerouted).
// Safe for concurrent use.
func (g *Graph) Rerouted(lo, hi time.Time) {
	g.mu.Lock()
	g.store.Rerouted(lo.UnixNano(), hi.UnixNano())
	g.mu.Unlock()
}

// overflowNode returns the overflow node of kind, creating it beyond the
// node limit if needed (one per kind, so at most a handful), and counts
// the observation folded into it. Caller holds mu.
func (g *Graph) overflowNode(kind NodeKind, epoch int64) int32 {
	g.overflow.WithLabelValues(kind.String()).Inc()
	return g.overflowIndex(kind, epoch)
}

// overflowIndex returns the overflow node of kind, creating it if needed,
// and marks it seen in epoch. Caller holds mu.
func (g *Graph) overflowIndex(kind NodeKind, epoch int64) int32 {
	k := NodeKey{Kind: kind, Name: OverflowName}
	if i, ok := g.nodes[k]; ok {
		g.nodeIx[i].lastSeen = epoch
		return i
	}
	i := int32(len(g.nodeIx))
	g.nodeIx = append(g.nodeIx, nodeState{key: k, lastSeen: epoch})
	g.nodes[k] = i
	g.nOverflow.Add(1)
	return i
}

// isOverflowEdge reports whether k runs between overflow nodes (or the
// client node), the edges allowed beyond the edge limit. Caller holds mu.
func (g *Graph) isOverflowEdge(k edgeKey) bool {
	s, d := g.nodeIx[k.src].key, g.nodeIx[k.dst].key
	return k.group == "" && (s.IsOverflow() || s == clientNodeKey) && (d.IsOverflow() || d == clientNodeKey)
}

// overflowEdge returns the edge that stands for k beyond the edge limit:
// between the overflow nodes of its endpoints' kinds (the client node stays
// itself), without consumer group. There are at most kinds x kinds x
// protocols of them. Caller holds mu.
func (g *Graph) overflowEdge(k edgeKey) *edgeState {
	g.overflow.WithLabelValues("edge").Inc()
	ep := max(g.nodeIx[k.src].lastSeen, g.nodeIx[k.dst].lastSeen)
	end := func(n int32) int32 {
		if key := g.nodeIx[n].key; key == clientNodeKey || key.IsOverflow() {
			return n
		}
		return g.overflowIndex(g.nodeIx[n].key.Kind, ep)
	}
	return g.edge(end(k.src), end(k.dst), k.proto, "")
}

// overflowPeer returns the peer candidate standing for every peer of kind
// beyond the limit on peer candidates; calls to it that go unanswered land
// on the overflow node of kind. Caller holds mu.
func (g *Graph) overflowPeer(kind NodeKind) int32 {
	g.overflow.WithLabelValues("peer").Inc()
	k := NodeKey{Kind: kind, Name: OverflowName}
	if i, ok := g.peers[k]; ok {
		g.peerSeen[i] = g.ep
		return i
	}
	i := int32(len(g.peerIx))
	g.peerIx = append(g.peerIx, k)
	g.peerSeen = append(g.peerSeen, g.ep)
	g.peers[k] = i
	return i
}

// newOverflowMetrics registers cartograph_graph_overflow_total{kind} and
// the cartograph_graph_overflow_nodes gauge on reg (when not nil).
func newOverflowMetrics(reg prometheus.Registerer, g *Graph) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartograph_graph_overflow_total",
		Help: "Observations folded into an overflow node or edge because the node, edge or peer limit was reached, " +
			"by kind (service, topic, queue, database, external, edge, peer).",
	}, []string{"kind"})
	for _, k := range []string{"service", "topic", "queue", "database", "external", "edge", "peer"} {
		c.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(c, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_graph_overflow_nodes",
			Help: "Overflow nodes in the graph (one per node kind whose limit was reached); 0 while every node has its own.",
		}, func() float64 { return float64(g.nOverflow.Load()) }))
	}
	return c
}
