package graph

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/coupling"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

// Snapshot is the graph over one window at one instant. It is immutable once
// built: detectors, the API and the UI share it freely across goroutines and
// must not modify it (including the sketches inside Edge.Stats).
type Snapshot struct {
	GeneratedAt   time.Time `json:"generated_at"`
	WindowSeconds float64   `json:"window_seconds"`
	Nodes         []Node    `json:"nodes"`
	Edges         []Edge    `json:"edges"`

	// Cycles are the strongly connected components (node ids) with more than
	// one node, or one node calling itself.
	Cycles [][]string `json:"-"`
	// LongestSyncChain is the longest chain of synchronous calls (node ids).
	LongestSyncChain []string `json:"-"`
	// Circuits are the circuit-breaker states reported as metrics.
	Circuits []resilience.Circuit `json:"-"`
	// RetryRates are retry counters reported as metrics (Envoy, resilience4j)
	// over the window.
	RetryRates []resilience.RetryRate `json:"-"`
	// Paths are the critical-path breakdowns of entry operations.
	Paths []EntryPath `json:"-"`
	// BetweennessSkipped says that betweenness centrality was not computed
	// (more nodes than coupling.DefaultMaxBetweennessNodes); every node's
	// Betweenness is then 0 and not a measurement.
	BetweennessSkipped bool `json:"-"`
	// RecentSeconds is the time Edge.Recent covers, ending at GeneratedAt:
	// the newest RecentBuckets buckets of the window (fewer in a shorter
	// window; from the graph's start when it is younger). 0 when the
	// snapshot carries no recent figures (stated with NewSnapshot, or
	// rebuilt from no stored bucket; stored buckets do not keep Refused
	// and Rejected).
	RecentSeconds float64 `json:"-"`

	// IdleNodes and IdleEdges carried traffic lately but none in the
	// window: the graph still holds them (see Options.IdleExpiry), so a
	// service behind a broken call stays on the map, marked idle with the
	// time it was last seen, rather than vanishing when it matters most.
	// They take no part in coupling figures or detection. JSON lists them
	// among nodes and edges with "idle": true and "last_seen"; decoding
	// puts them back here. Live snapshots only: graphs rebuilt from
	// storage have none.
	IdleNodes []Node `json:"-"`
	IdleEdges []Edge `json:"-"`

	nodeIndex map[string]int
}

// snapshotJSON is Snapshot's JSON form: idle nodes and edges listed with
// the others.
type snapshotJSON struct {
	GeneratedAt   time.Time `json:"generated_at"`
	WindowSeconds float64   `json:"window_seconds"`
	Nodes         []Node    `json:"nodes"`
	Edges         []Edge    `json:"edges"`
}

// MarshalJSON encodes s with its idle nodes and edges after the others.
func (s *Snapshot) MarshalJSON() ([]byte, error) {
	j := snapshotJSON{GeneratedAt: s.GeneratedAt, WindowSeconds: s.WindowSeconds, Nodes: s.Nodes, Edges: s.Edges}
	if len(s.IdleNodes) > 0 {
		j.Nodes = append(slices.Clip(s.Nodes), s.IdleNodes...)
	}
	if len(s.IdleEdges) > 0 {
		j.Edges = append(slices.Clip(s.Edges), s.IdleEdges...)
	}
	if j.Nodes == nil {
		j.Nodes = []Node{}
	}
	if j.Edges == nil {
		j.Edges = []Edge{}
	}
	return marshalPlain(j)
}

// UnmarshalJSON decodes a snapshot encoded by MarshalJSON: idle nodes and
// edges go back to IdleNodes and IdleEdges, and the node index is rebuilt,
// so a decoded snapshot answers Node as a built one does.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var j snapshotJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Snapshot{GeneratedAt: j.GeneratedAt, WindowSeconds: j.WindowSeconds, Nodes: []Node{}, Edges: []Edge{}}
	for _, n := range j.Nodes {
		if n.Idle {
			s.IdleNodes = append(s.IdleNodes, n)
		} else {
			s.Nodes = append(s.Nodes, n)
		}
	}
	for _, e := range j.Edges {
		if e.Idle {
			s.IdleEdges = append(s.IdleEdges, e)
		} else {
			s.Edges = append(s.Edges, e)
		}
	}
	s.nodeIndex = make(map[string]int, len(s.Nodes))
	for i, n := range s.Nodes {
		s.nodeIndex[n.ID] = i
	}
	return nil
}

// Node is a node of a Snapshot with its coupling figures.
type Node struct {
	ID        string   `json:"id"`
	Kind      NodeKind `json:"kind"`
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"` // service.namespace (services)
	System    string   `json:"system,omitempty"`    // messaging or database system
	// Attributes are a service's kept resource attributes
	// (--node-attributes), omitted when none. The map is shared between
	// snapshots: read only.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Environment is a service's deployment environment: its kept
	// deployment.environment.name attribute, else the legacy
	// deployment.environment (EnvironmentOf); empty when unknown.
	Environment string `json:"environment,omitempty"`
	// Owner is the team that owns a service (Options.Owners), empty when
	// unknown.
	Owner string `json:"owner,omitempty"`

	FanIn       int     `json:"fan_in"`
	FanOut      int     `json:"fan_out"`
	Instability float64 `json:"instability"`
	// Betweenness is the node's betweenness centrality (normalised: the
	// share of the shortest paths between other nodes that pass through
	// it), to four significant digits, so that the small figures of a
	// large graph still tell nodes apart; 0 and omitted from JSON when
	// BetweennessSkipped.
	Betweenness float64 `json:"betweenness"`
	// BetweennessSkipped says betweenness was not computed for this graph
	// (too many nodes), so Betweenness means nothing.
	BetweennessSkipped bool `json:"betweenness_skipped,omitempty"`
	// Idle marks a node seen lately but not in the window
	// (Snapshot.IdleNodes); LastSeen is the end of the last time bucket
	// it was seen in (idle nodes only).
	Idle     bool       `json:"idle,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// MarshalJSON encodes n, leaving "betweenness" out when it was skipped.
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	if !n.BetweennessSkipped {
		return marshalPlain(plain(n))
	}
	return marshalPlain(struct {
		plain
		Betweenness *float64 `json:"betweenness,omitempty"` // shadows plain's
	}{plain: plain(n)})
}

// Edge is an edge of a Snapshot with its aggregates over the window.
// Fields that do not apply are nil and omitted from JSON.
type Edge struct {
	ID            string   `json:"id"`
	Source        string   `json:"source"`
	Target        string   `json:"target"`
	Kind          EdgeKind `json:"kind"`
	Protocol      Protocol `json:"protocol,omitempty"`
	ConsumerGroup string   `json:"consumer_group,omitempty"`

	Requests   uint64  `json:"requests"`
	RatePerS   float64 `json:"rate_per_s"`
	Errors     uint64  `json:"errors"`
	ErrorRatio float64 `json:"error_ratio"`
	// Retries and RetryRatio count the calls that were retries; they are
	// omitted from JSON unless RetriesSeen.
	Retries    uint64  `json:"retries"`
	RetryRatio float64 `json:"retry_ratio"`
	// RetriesSeen says whether retries can be seen on the edge at all, so
	// that Retries 0 means none rather than unknown: a retry was seen, or
	// the edge is a sync HTTP/gRPC/RPC edge whose caller side was seen
	// (client spans, which carry http.request.resend_count and whose
	// repeats the pairing recognises). Async edges, database and other
	// calls whose instrumentation reports no resends, and calls seen only
	// from the callee (an uninstrumented caller) carry no retry signal.
	RetriesSeen bool `json:"-"`
	// Unanswered counts calls no server span answered (included in
	// Requests): refused, timed out, or failed fast by a circuit breaker.
	Unanswered uint64 `json:"unanswered,omitempty"`
	// Estimated says the counts and rates are estimates of the real
	// traffic, made from sampled traces (each sampled call counted as the
	// calls it stands for); SampleRatio is the share of the calls that
	// was seen (seen / estimated). Omitted when nothing was sampled.
	Estimated   bool     `json:"estimated,omitempty"`
	SampleRatio *float64 `json:"sample_ratio,omitempty"`
	// SelfCall marks a service calling itself over the network (a client
	// span and a server span of the same service paired): no rule draws a
	// self-edge otherwise.
	SelfCall bool `json:"self_call,omitempty"`

	// Latency is the callee-side latency where a server or consumer span
	// exists, else the caller side.
	Latency       *Quantiles `json:"latency_ms,omitempty"`
	ServerLatency *Quantiles `json:"server_latency_ms,omitempty"`
	ClientLatency *Quantiles `json:"client_latency_ms,omitempty"`
	// Delay is the producer-end to consumer-start delay (destination ->
	// consumer edges).
	Delay *Quantiles `json:"delay_ms,omitempty"`
	// UnansweredLatency is the caller-side latency of unanswered calls.
	UnansweredLatency *Quantiles `json:"unanswered_latency_ms,omitempty"`

	// Lag is the consumer lag (destination -> consumer edges with broker
	// metrics).
	Lag *Lag `json:"lag,omitempty"`

	// Idle marks an edge that carried traffic lately but none in the
	// window (Snapshot.IdleEdges; its figures are all 0); LastSeen is the
	// end of the last time bucket it carried a call in (idle edges only).
	Idle     bool       `json:"idle,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`

	// Stats are the merged aggregates; read-only.
	Stats Stats `json:"-"`
	// Recent are the edge's figures over the newest buckets of the window
	// (Snapshot.RecentSeconds); nil when it carried no call in them.
	Recent *Recent `json:"-"`
}

// RecentBuckets is how many of the newest time buckets Edge.Recent sums:
// the current bucket and the two before it, 10-15s at the default 5s
// buckets. Detectors judge them to see a change within a few evaluations
// rather than once it fills the window.
const RecentBuckets = 3

// Recent are an edge's figures over the newest buckets of a window. Calls
// are counted in the bucket in which the graph learnt of them: answered
// calls when their spans paired, unanswered calls when their pair TTL ran
// out, so unanswered calls show in Recent about a pair TTL after answered
// calls made at the same time.
type Recent struct {
	Requests   uint64
	Errors     uint64
	Retries    uint64
	Unanswered uint64
	// Refused and Rejected are the unanswered calls whose error tells why
	// (see Stats).
	Refused, Rejected uint64
	// UnansweredLatency is the caller-side latency of the unanswered calls;
	// nil when none.
	UnansweredLatency *Quantiles
}

// edgeJSON is Edge's JSON form when retries cannot be seen: the retry
// fields shadowed and omitted.
type edgeJSON struct {
	plainEdge
	Retries    *uint64  `json:"retries,omitempty"`
	RetryRatio *float64 `json:"retry_ratio,omitempty"`
}

type plainEdge Edge

// MarshalJSON encodes e, leaving "retries" and "retry_ratio" out unless
// e.RetriesSeen.
func (e Edge) MarshalJSON() ([]byte, error) {
	if e.RetriesSeen {
		return marshalPlain(plainEdge(e))
	}
	return marshalPlain(edgeJSON{plainEdge: plainEdge(e)})
}

// marshalPlain is json.Marshal without HTML escaping ("->" in edge ids
// stays readable): the encoder calling a MarshalJSON escapes the result
// itself when it is asked to.
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes e; RetriesSeen is whether "retries" was present.
func (e *Edge) UnmarshalJSON(b []byte) error {
	var v edgeJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Edge(v.plainEdge)
	e.RetriesSeen = v.Retries != nil
	if v.Retries != nil {
		e.Retries = *v.Retries
	}
	if v.RetryRatio != nil {
		e.RetryRatio = *v.RetryRatio
	}
	return nil
}

// retriesSeen is the rule of Edge.RetriesSeen.
func retriesSeen(kind EdgeKind, proto Protocol, st *Stats) bool {
	if st.Retries > 0 {
		return true
	}
	if kind != EdgeSync || (proto != ProtocolHTTP && proto != ProtocolGRPC && proto != ProtocolRPC) {
		return false
	}
	return st.Client != nil && !st.Client.IsEmpty()
}

// Lag is the consumer lag on a destination -> consumer edge, from broker
// metrics (OTLP or polled). Status "stale" means readings stopped arriving:
// the numbers are the last ones seen, not current.
type Lag struct {
	Messages     *float64  `json:"messages,omitempty"`
	Seconds      *float64  `json:"seconds,omitempty"`
	DrainSeconds *float64  `json:"drain_seconds,omitempty"`
	Status       lag.State `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	Consumers    *float64  `json:"consumers,omitempty"`
	ProduceRate  *float64  `json:"produce_rate_per_s,omitempty"`
	ConsumeRate  *float64  `json:"consume_rate_per_s,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
	Sources      []string  `json:"sources,omitempty"`
	// Group is the consumer group the broker reports, when the edge's
	// traces name none (the edge has no consumer_group).
	Group string `json:"group,omitempty"`
}

// Node returns the node with id, if present.
func (s *Snapshot) Node(id string) (Node, bool) {
	i, ok := s.nodeIndex[id]
	if !ok {
		return Node{}, false
	}
	return s.Nodes[i], true
}

// NodeIndex returns the index in Nodes of the node with id.
func (s *Snapshot) NodeIndex(id string) (int, bool) {
	i, ok := s.nodeIndex[id]
	return i, ok
}

// ErrWindowTooLong means a snapshot was asked for a window longer than the
// graph keeps in memory.
var ErrWindowTooLong = errors.New("window longer than the live window kept in memory")

// Snapshot builds a Snapshot over the last window (0: the configured
// window). Safe for concurrent use; the graph lock is held only while the
// window's buckets are merged.
func (g *Graph) Snapshot(window time.Duration) (*Snapshot, error) {
	if window == 0 {
		window = g.opts.Window
	}
	if window < 0 || window > g.opts.Window {
		return nil, fmt.Errorf("graph: %w (%v > %v)", ErrWindowTooLong, window, g.opts.Window)
	}
	t0 := time.Now()
	now := g.opts.Now()
	cur := g.epoch(now)
	n := int64((window + g.opts.Bucket - 1) / g.opts.Bucket)
	from := cur - n
	coveredFrom := time.Unix(0, from*g.bucketN)
	if coveredFrom.Before(g.started) {
		coveredFrom = g.started
	}
	covered := max(now.Sub(coveredFrom).Seconds(), 1)

	recentFrom := max(cur-RecentBuckets+1, from)
	coveredRecent := time.Unix(0, recentFrom*g.bucketN)
	if coveredRecent.Before(g.started) {
		coveredRecent = g.started
	}

	b := snapshotBuilder{byKey: map[NodeKey]int{}, owners: g.opts.Owners}
	g.mu.Lock()
	g.expireLocked(now.UnixNano(), cur)
	for _, e := range g.edgeIx {
		var st Stats
		if e.ring.lastEpoch() < from || !e.ring.sum(&st, from, cur, g.mapping) {
			continue
		}
		b.edges = append(b.edges, rawEdge{
			src: b.node(g.nodeIx[e.key.src].key), dst: b.node(g.nodeIx[e.key.dst].key),
			kind: e.kind, proto: e.key.proto, group: e.key.group, stats: st,
			recent: e.ring.recent(recentFrom, cur, g.mapping),
		})
	}
	for i := range g.nodeIx {
		n := &g.nodeIx[i]
		if n.lastSeen >= from {
			b.node(n.key)
		}
		if n.attrs != nil {
			if b.attrs == nil {
				b.attrs = map[NodeKey]map[string]string{}
			}
			b.attrs[n.key] = n.attrs
		}
	}
	// What carried traffic lately but not in the window stays, idle.
	for _, e := range g.edgeIx {
		if last := e.ring.lastEpoch(); last < from && last != math.MinInt64 {
			b.idleEdges = append(b.idleEdges, idleEdge{src: g.nodeIx[e.key.src].key, dst: g.nodeIx[e.key.dst].key,
				kind: e.kind, proto: e.key.proto, group: e.key.group, last: last})
		}
	}
	for i := range g.nodeIx {
		if n := &g.nodeIx[i]; n.lastSeen < from {
			b.idleNodes = append(b.idleNodes, idleNode{key: n.key, last: n.lastSeen})
		}
	}
	if g.opts.Lag != nil {
		// Consumer edges seen at any time: a consumer that stalls stops
		// emitting spans, and its lag must still land on its own edge.
		for _, e := range g.edgeIx {
			if e.kind != EdgeAsync {
				continue
			}
			if k := g.nodeIx[e.key.src].key; k.Kind == NodeTopic || k.Kind == NodeQueue {
				b.dormant = append(b.dormant, dormantEdge{dest: k, consumer: g.nodeIx[e.key.dst].key, proto: e.key.proto, group: e.key.group})
			}
		}
		// and those retired from memory (retire.go), so that a consumer
		// stalled for longer than the idle horizon keeps its own edge.
		for d := range g.dormant {
			b.dormant = append(b.dormant, d)
		}
	}
	g.mu.Unlock()

	if g.opts.Lag != nil {
		b.joinLag(g.opts.Lag.Evaluate(window))
	}
	s := b.build(now, window, covered)
	b.addIdle(s, g.bucketN)
	s.RecentSeconds = max(now.Sub(coveredRecent).Seconds(), 0)
	if g.opts.Circuits != nil {
		s.Circuits = g.opts.Circuits.Circuits()
		s.RetryRates = g.opts.Circuits.RetryRates(window)
	}
	if g.opts.Paths != nil {
		s.Paths = foldOverflowPaths(s, g.opts.Paths.Paths(window))
	}
	g.m.build.Observe(time.Since(t0).Seconds())
	return s, nil
}

// NewSnapshot assembles a Snapshot from nodes and edges (taking ownership of
// both slices): it computes the coupling figures, sorts nodes and edges by
// id and indexes the nodes. Edges whose endpoints are not among nodes are
// dropped. Storage uses it to rebuild past graphs; tests use it to state a
// graph exactly.
func NewSnapshot(generatedAt time.Time, window time.Duration, nodes []Node, edges []Edge) *Snapshot {
	s := &Snapshot{
		GeneratedAt:   generatedAt.UTC(),
		WindowSeconds: window.Seconds(),
		Nodes:         nodes,
		nodeIndex:     make(map[string]int, len(nodes)),
	}
	if s.Nodes == nil {
		s.Nodes = []Node{}
	}
	for i, nd := range s.Nodes {
		s.nodeIndex[nd.ID] = i
	}
	s.Edges = make([]Edge, 0, len(edges))
	in := coupling.Input{Nodes: len(s.Nodes), Edges: make([]coupling.Edge, 0, len(edges))}
	for _, e := range edges {
		src, ok1 := s.nodeIndex[e.Source]
		dst, ok2 := s.nodeIndex[e.Target]
		if !ok1 || !ok2 {
			continue
		}
		in.Edges = append(in.Edges, coupling.Edge{From: src, To: dst, Sync: e.Kind == EdgeSync})
		s.Edges = append(s.Edges, e)
	}
	if res, err := coupling.Compute(in); err == nil {
		for i, c := range res.Nodes {
			nd := &s.Nodes[i]
			nd.FanIn, nd.FanOut = c.FanIn, c.FanOut
			nd.Instability = round3(c.Instability)
			nd.Betweenness = roundSig4(c.Betweenness)
			nd.BetweennessSkipped = res.BetweennessSkipped
		}
		s.BetweennessSkipped = res.BetweennessSkipped
		for _, cyc := range res.Cycles {
			ids := make([]string, len(cyc))
			for j, ni := range cyc {
				ids[j] = s.Nodes[ni].ID
			}
			slices.Sort(ids)
			s.Cycles = append(s.Cycles, ids)
		}
		slices.SortFunc(s.Cycles, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		for _, ni := range res.LongestSyncChain {
			s.LongestSyncChain = append(s.LongestSyncChain, s.Nodes[ni].ID)
		}
	}
	slices.SortFunc(s.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Edges, func(a, b Edge) int { return strings.Compare(a.ID, b.ID) })
	clear(s.nodeIndex)
	for i, nd := range s.Nodes {
		s.nodeIndex[nd.ID] = i
	}
	return s
}

// build turns the gathered nodes and edges into a Snapshot, rates over
// coveredSeconds.
func (b *snapshotBuilder) build(at time.Time, window time.Duration, coveredSeconds float64) *Snapshot {
	nodes := make([]Node, len(b.nodes))
	for i, k := range b.nodes {
		nodes[i] = nodeOf(k)
		b.describe(&nodes[i], k)
	}
	edges := make([]Edge, len(b.edges))
	for i := range b.edges {
		r := &b.edges[i]
		edges[i] = makeEdge(nodes[r.src].ID, nodes[r.dst].ID, r.kind, r.proto, r.group, r.stats, coveredSeconds)
		edges[i].Lag = r.lag
		edges[i].Recent = r.recent
	}
	return NewSnapshot(at, window, nodes, edges)
}

// describe puts the kept attributes of the node of key k on nd, with the
// environment and owner they tell.
func (b *snapshotBuilder) describe(nd *Node, k NodeKey) {
	nd.Attributes = b.attrs[k]
	nd.Environment = EnvironmentOf(nd.Attributes)
	switch {
	case b.owners != nil && k.Kind == NodeService:
		nd.Owner = b.owners.Owner(nd.Name, nd.Attributes)
	case b.storedOwners != nil:
		nd.Owner = b.storedOwners[k]
	}
}

// recorded takes the attributes and owner of a stored node row when they
// are newer than those taken so far for its node (described: when those
// were recorded).
func (b *snapshotBuilder) recorded(n *NodeSeen, described map[NodeKey]time.Time) {
	if len(n.Attributes) == 0 && n.Owner == "" {
		return
	}
	if t, ok := described[n.Key]; ok && n.Start.Before(t) {
		return
	}
	described[n.Key] = n.Start
	if len(n.Attributes) > 0 {
		if b.attrs == nil {
			b.attrs = map[NodeKey]map[string]string{}
		}
		b.attrs[n.Key] = n.Attributes
	}
	if n.Owner != "" {
		if b.storedOwners == nil {
			b.storedOwners = map[NodeKey]string{}
		}
		b.storedOwners[n.Key] = n.Owner
	}
}

// Environment attributes: the current semantic-conventions name, and the
// legacy one still sent by older SDKs.
const (
	EnvironmentAttr       = "deployment.environment.name"
	LegacyEnvironmentAttr = "deployment.environment"
)

// EnvironmentOf returns the deployment environment a node's kept resource
// attributes name: deployment.environment.name, else the legacy
// deployment.environment; empty when neither was kept.
func EnvironmentOf(attrs map[string]string) string {
	if v := attrs[EnvironmentAttr]; v != "" {
		return v
	}
	return attrs[LegacyEnvironmentAttr]
}

// rawEdge is an edge being built into a snapshot; src and dst index
// snapshotBuilder.nodes.
type rawEdge struct {
	src, dst int
	kind     EdgeKind
	proto    Protocol
	group    string
	stats    Stats
	lag      *Lag
	recent   *Recent
}

// snapshotBuilder gathers a snapshot's nodes and edges.
type snapshotBuilder struct {
	nodes  []NodeKey
	byKey  map[NodeKey]int
	attrs  map[NodeKey]map[string]string // kept resource attributes, shared with the graph (read only)
	owners OwnerSource                   // nil: no owners but storedOwners
	// storedOwners are the owners stored node rows name (SnapshotOfNodes),
	// used when owners is nil.
	storedOwners map[NodeKey]string
	edges        []rawEdge
	dormant      []dormantEdge
	idleEdges    []idleEdge
	idleNodes    []idleNode
}

// idleEdge is an edge whose last call came before the window, in the
// bucket of epoch last.
type idleEdge struct {
	src, dst NodeKey
	kind     EdgeKind
	proto    Protocol
	group    string
	last     int64
}

// idleNode is a node last seen before the window, in the bucket of epoch
// last.
type idleNode struct {
	key  NodeKey
	last int64
}

// addIdle puts the idle nodes and edges gathered into s: those not among
// its nodes and edges already (consumer lag can bring a quiet consumer's
// edge into the window), each with the end of its last bucket.
func (b *snapshotBuilder) addIdle(s *Snapshot, bucketN int64) {
	end := func(ep int64) *time.Time {
		t := time.Unix(0, (ep+1)*bucketN).UTC()
		return &t
	}
	idle := map[string]bool{}
	for _, in := range b.idleNodes {
		nd := nodeOf(in.key)
		if _, ok := s.Node(nd.ID); ok {
			continue
		}
		b.describe(&nd, in.key)
		nd.Idle, nd.LastSeen = true, end(in.last)
		s.IdleNodes = append(s.IdleNodes, nd)
		idle[nd.ID] = true
	}
	have := make(map[string]bool, len(s.Edges))
	for _, e := range s.Edges {
		have[e.ID] = true
	}
	for _, ie := range b.idleEdges {
		src, dst := nodeOf(ie.src).ID, nodeOf(ie.dst).ID
		e := makeEdge(src, dst, ie.kind, ie.proto, ie.group, Stats{}, 1)
		if have[e.ID] {
			continue
		}
		_, srcLive := s.Node(src)
		_, dstLive := s.Node(dst)
		if !srcLive && !idle[src] || !dstLive && !idle[dst] {
			continue // an endpoint the graph no longer holds
		}
		e.Idle, e.LastSeen = true, end(ie.last)
		s.IdleEdges = append(s.IdleEdges, e)
	}
	slices.SortFunc(s.IdleNodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.IdleEdges, func(a, b Edge) int { return strings.Compare(a.ID, b.ID) })
}

// nodeOf is the snapshot node of key k, without coupling figures.
func nodeOf(k NodeKey) Node {
	nd := Node{ID: k.ID(), Kind: k.Kind, Name: k.DisplayName()}
	if k.Kind == NodeService {
		nd.Namespace = k.Group
	} else {
		nd.System = k.Group
	}
	return nd
}

// dormantEdge is a destination -> consumer edge the graph knows, whether or
// not it carried traffic in the window.
type dormantEdge struct {
	dest, consumer NodeKey
	proto          Protocol
	group          string
}

func (b *snapshotBuilder) node(k NodeKey) int {
	if i, ok := b.byKey[k]; ok {
		return i
	}
	b.byKey[k] = len(b.nodes)
	b.nodes = append(b.nodes, k)
	return len(b.nodes) - 1
}

// destination finds the destination node for a messaging system and name,
// whichever kind traces gave it, or adds it with the kind the system implies.
func (b *snapshotBuilder) destination(system, name string) int {
	for _, kind := range []NodeKind{NodeTopic, NodeQueue} {
		if i, ok := b.byKey[NodeKey{Kind: kind, Group: system, Name: name}]; ok {
			return i
		}
	}
	return b.node(NodeKey{Kind: DestinationKind(system), Group: system, Name: name})
}

// joinLag puts each group's lag on its destination -> consumer edges: the
// edges whose consumer group is the status's group, or every consumer edge
// of a queue (whose consumers share one backlog). Consumer edges without
// traffic in the window still get it (a stalled consumer sends no spans).
//
// When traces name no group for a destination's consumers (the spans lack
// messaging.consumer.group.name) while the broker names one, the lag goes
// on the consumer edge of that destination whose service the group is named
// after ("billing" for "billing", "billing-consumer", "cg.billing"), or,
// when the destination has one such consumer and one such group, on its
// edge; Lag.Group then keeps the broker's name. Only a group no trace can be
// tied to appears as a service node named after the group fed by the
// destination, so lag is never hidden for want of traces, and never put on
// another consumer's edge by a guess.
func (b *snapshotBuilder) joinLag(statuses []lag.Status) {
	var unmatched []*lag.Status
	for i := range statuses {
		if !b.joinLagNamed(&statuses[i]) && statuses[i].Group != "" {
			unmatched = append(unmatched, &statuses[i])
		}
	}
	for _, st := range unmatched {
		dest := b.destination(st.System, st.Destination)
		l := lagOf(st)
		if consumer, ok := b.groupless(dest, st, unmatched); ok {
			l.Group = st.Group
			b.putLag(dest, consumer, "", l)
			continue
		}
		consumer := b.node(NodeKey{Kind: NodeService, Name: st.Group})
		b.edges = append(b.edges, rawEdge{src: dest, dst: consumer, kind: EdgeAsync,
			proto: MessagingProtocol(st.System), group: st.Group, lag: l})
	}
}

// joinLagNamed puts st's lag on the consumer edges traces tie to its group
// (see joinLag) and reports whether there were any.
func (b *snapshotBuilder) joinLagNamed(st *lag.Status) bool {
	dest := b.destination(st.System, st.Destination)
	l := lagOf(st)
	matched := false
	for j := range b.edges {
		e := &b.edges[j]
		if e.src == dest && (e.group == st.Group || st.Group == "") && b.nodes[e.dst].Kind == NodeService {
			e.lag = l
			matched = true
		}
	}
	if matched {
		return true
	}
	// The broker names the destination otherwise than traces do (a
	// NATS stream, its subjects): the consumer edges of every
	// destination named by a subject it captures.
	for j := range b.edges {
		e := &b.edges[j]
		if src := b.nodes[e.src]; (src.Kind == NodeTopic || src.Kind == NodeQueue) && src.Group == st.System &&
			e.src != dest && matchesAny(st.Subjects, src.Name) && b.nodes[e.dst].Kind == NodeService &&
			(e.group == st.Group || e.group == "" || st.Group == "") {
			e.lag = l
			matched = true
		}
	}
	if matched {
		return true
	}
	for _, d := range b.dormant {
		if b.byKey[d.dest] == dest && d.dest == b.nodes[dest] && (d.group == st.Group || st.Group == "") && d.consumer.Kind == NodeService {
			b.edges = append(b.edges, rawEdge{src: dest, dst: b.node(d.consumer), kind: EdgeAsync, proto: d.proto, group: d.group, lag: l})
			matched = true
		}
	}
	return matched
}

// groupless picks the consumer service of dest, among those whose traces
// name no group, that st's group belongs to: the one the group is named
// after, else the only one when st is the only group of dest left
// unmatched (all of them in unmatched).
func (b *snapshotBuilder) groupless(dest int, st *lag.Status, unmatched []*lag.Status) (NodeKey, bool) {
	var cands []NodeKey
	add := func(k NodeKey) {
		if k.Kind == NodeService && !slices.Contains(cands, k) {
			cands = append(cands, k)
		}
	}
	for j := range b.edges {
		if e := &b.edges[j]; e.src == dest && e.group == "" {
			add(b.nodes[e.dst])
		}
	}
	for _, d := range b.dormant {
		if d.group == "" && d.dest == b.nodes[dest] {
			add(d.consumer)
		}
	}
	var named []NodeKey
	for _, c := range cands {
		if namedAfter(st.Group, c.Name) {
			named = append(named, c)
		}
	}
	if len(named) == 1 {
		return named[0], true
	}
	if len(named) > 1 || len(cands) != 1 {
		return NodeKey{}, false
	}
	for _, o := range unmatched {
		if o != st && o.System == st.System && o.Destination == st.Destination {
			return NodeKey{}, false
		}
	}
	return cands[0], true
}

// namedAfter reports whether a consumer group's name is a service's name,
// alone or joined by '-', '_' or '.' to other words, ignoring case.
func namedAfter(group, service string) bool {
	g, s := strings.ToLower(group), strings.ToLower(service)
	if s == "" || !strings.Contains(g, s) {
		return false
	}
	if g == s {
		return true
	}
	for _, sep := range []string{"-", "_", "."} {
		if strings.HasPrefix(g, s+sep) || strings.HasSuffix(g, sep+s) || strings.Contains(g, sep+s+sep) {
			return true
		}
	}
	return false
}

// putLag puts l on the edges from dest to consumer with group, adding the
// edge when the consumer had no traffic in the window.
func (b *snapshotBuilder) putLag(dest int, consumer NodeKey, group string, l *Lag) {
	ci, live := b.byKey[consumer]
	matched := false
	for j := range b.edges {
		if e := &b.edges[j]; live && e.src == dest && e.dst == ci && e.group == group {
			e.lag = l
			matched = true
		}
	}
	if matched {
		return
	}
	for _, d := range b.dormant {
		if d.dest == b.nodes[dest] && d.consumer == consumer && d.group == group {
			b.edges = append(b.edges, rawEdge{src: dest, dst: b.node(consumer), kind: EdgeAsync, proto: d.proto, group: group, lag: l})
			return
		}
	}
}

// lagOf is the edge's view of a group's status; a number the status does
// not know stays nil (omitted), never zero.
func lagOf(st *lag.Status) *Lag {
	var msgs *float64
	if st.Messages != nil {
		m := *st.Messages
		msgs = &m
	}
	return &Lag{
		Messages: msgs, Seconds: roundPtr(st.Seconds), DrainSeconds: roundPtr(st.DrainSeconds),
		Status: st.State, Reason: st.Reason, Consumers: st.Consumers,
		ProduceRate: roundPtr(st.ProduceRate), ConsumeRate: roundPtr(st.ConsumeRate),
		UpdatedAt: st.UpdatedAt.UTC(), Sources: st.Sources,
	}
}

func roundPtr(v *float64) *float64 {
	if v == nil {
		return nil
	}
	r := round3(*v)
	return &r
}

// EdgeID returns the id of the edge source -> target over proto for group.
func EdgeID(source, target string, proto Protocol, group string) string {
	id := source + "->" + target
	if proto != ProtocolUnknown {
		id += " " + proto.String()
	}
	if group != "" {
		id += " @" + group
	}
	return id
}

func makeEdge(src, dst string, kind EdgeKind, proto Protocol, group string, st Stats, coveredSeconds float64) Edge {
	e := Edge{
		ID:                EdgeID(src, dst, proto, group),
		Source:            src,
		Target:            dst,
		Kind:              kind,
		Protocol:          proto,
		ConsumerGroup:     group,
		Requests:          st.Requests,
		Errors:            st.Errors,
		Retries:           st.Retries,
		Unanswered:        st.Unanswered,
		RatePerS:          round3(float64(st.Requests) / coveredSeconds),
		ServerLatency:     quantilesOf(st.Server),
		ClientLatency:     quantilesOf(st.Client),
		Delay:             quantilesOf(st.Delay),
		UnansweredLatency: quantilesOf(st.UnansweredLatency),
		Stats:             st,
	}
	if st.Requests > 0 {
		e.ErrorRatio = ratio(st.Errors, st.Requests)
		e.RetryRatio = ratio(st.Retries, st.Requests)
	}
	e.RetriesSeen = retriesSeen(kind, proto, &st)
	e.SelfCall = src == dst
	if st.Sampled > 0 && st.Requests > 0 {
		e.Estimated = true
		r := ratio(st.Seen, st.Requests)
		e.SampleRatio = &r
	}
	e.Latency = e.ServerLatency
	if e.Latency == nil {
		e.Latency = e.ClientLatency
	}
	if e.Latency == nil {
		e.Latency = e.UnansweredLatency
	}
	return e
}

func ratio(a, b uint64) float64 { return math.Round(float64(a)/float64(b)*1e4) / 1e4 }

// matchesAny reports whether subject matches one of patterns, NATS-style:
// tokens separated by '.', "*" matches one token, ">" the rest.
func matchesAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if subjectMatch(p, subject) {
			return true
		}
	}
	return false
}

func subjectMatch(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != st:
			return false
		case !pmore || !smore:
			return !pmore && !smore
		}
		pattern, subject = prest, srest
	}
}

// foldOverflowPaths charges the critical-path shares of nodes the graph
// folded into an overflow node (the sampler sees every name; the graph
// keeps --max-nodes of them) to that overflow node, so that paths name only
// nodes of the snapshot. Entries whose node was folded become entries of
// the overflow node; entries that then share node and operation are kept
// apart (they are different operations of different services).
func foldOverflowPaths(s *Snapshot, paths []EntryPath) []EntryPath {
	if len(paths) == 0 {
		return paths
	}
	fold := func(id string) string {
		if _, ok := s.nodeIndex[id]; ok {
			return id
		}
		kind, _, ok := strings.Cut(id, ":")
		if !ok {
			return id
		}
		var k NodeKind
		if k.UnmarshalText([]byte(kind)) != nil {
			return id
		}
		ov := NodeKey{Kind: k, Name: OverflowName}.ID()
		if _, ok := s.nodeIndex[ov]; ok {
			return ov
		}
		return id
	}
	for i := range paths {
		p := &paths[i]
		p.Node = fold(p.Node)
		merged := p.Shares[:0]
		at := map[string]int{}
		for _, sh := range p.Shares {
			sh.Node = fold(sh.Node)
			if j, ok := at[sh.Node]; ok {
				merged[j].SelfMs = math.Round((merged[j].SelfMs+sh.SelfMs)*1000) / 1000
				merged[j].Share = min(math.Round((merged[j].Share+sh.Share)*1e4)/1e4, 1)
				continue
			}
			at[sh.Node] = len(merged)
			merged = append(merged, sh)
		}
		slices.SortFunc(merged, func(a, b PathShare) int { // as the sampler orders them
			if c := cmp.Compare(b.Share, a.Share); c != 0 {
				return c
			}
			if c := cmp.Compare(b.SelfMs, a.SelfMs); c != 0 {
				return c
			}
			return strings.Compare(a.Node, b.Node)
		})
		p.Shares = merged
	}
	return paths
}
