package graph

import (
	"math"
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Bins is a latency sketch in storable form: the DDSketch bin indexes of the
// shared latency mapping (LatencyRelativeAccuracy) with their counts,
// ascending by index; ZeroIndex holds latencies of zero. Bins of any bucket
// and any collector merge exactly by adding the counts of equal indexes (in
// Go, or in SQL with sumMap).
type Bins struct {
	Index []int32  `json:"i,omitempty"`
	Count []uint64 `json:"c,omitempty"`
}

// ZeroIndex is the bin index of zero latencies.
const ZeroIndex = math.MinInt32

// BinsOf returns the bins of sk (empty for nil).
func BinsOf(sk *ddsketch.DDSketch) Bins {
	var b Bins
	if sk == nil {
		return b
	}
	if z := sk.GetZeroCount(); z > 0 {
		b.Index, b.Count = append(b.Index, ZeroIndex), append(b.Count, uint64(math.Round(z)))
	}
	sk.GetPositiveValueStore().ForEach(func(i int, c float64) bool {
		if c > 0 && i > math.MinInt32 && i <= math.MaxInt32 {
			b.Index, b.Count = append(b.Index, int32(i)), append(b.Count, uint64(math.Round(c)))
		}
		return false
	})
	return b
}

// Empty reports whether b holds no value.
func (b Bins) Empty() bool { return len(b.Index) == 0 }

// Each calls f with each bin's latency in milliseconds and its count,
// ascending: the value DDSketch reports for the bin, within
// LatencyRelativeAccuracy of every latency the bin counts (0 for
// ZeroIndex). It lets a reader outside the graph re-bucket stored or
// closed buckets without knowing the mapping.
func (b Bins) Each(f func(ms float64, n uint64)) {
	if b.Empty() {
		return
	}
	m := newLatencyMapping()
	for k, i := range b.Index {
		if i == ZeroIndex {
			f(0, b.Count[k])
			continue
		}
		f(m.Value(int(i)), b.Count[k])
	}
}

// addTo adds b's counts into *sk, allocating it with m when needed.
func (b Bins) addTo(sk **ddsketch.DDSketch, m mapping.IndexMapping) {
	if b.Empty() {
		return
	}
	if *sk == nil {
		*sk = ddsketch.NewDDSketchFromStoreProvider(m, store.BufferedPaginatedStoreConstructor)
	}
	for k, i := range b.Index {
		c := float64(b.Count[k])
		if i == ZeroIndex {
			_ = (*sk).AddWithCount(0, c)
			continue
		}
		(*sk).GetPositiveValueStore().AddWithCount(int(i), c)
	}
}

// EdgeBucket is one edge's aggregates over one time bucket, as a storage
// row: what one collector saw of the edge between Start and Start+Width.
// Buckets of the same edge add up across time and across collectors.
type EdgeBucket struct {
	Start         time.Time     `json:"start"`
	Width         time.Duration `json:"width"`
	Source        NodeKey       `json:"source"`
	Target        NodeKey       `json:"target"`
	Kind          EdgeKind      `json:"kind"`
	Protocol      Protocol      `json:"protocol"`
	ConsumerGroup string        `json:"consumer_group,omitempty"`
	// Collector is who wrote the row, when storage shared by several
	// collectors says so ("" from the graph itself).
	Collector string `json:"collector,omitempty"`

	Requests   uint64 `json:"requests"`
	Errors     uint64 `json:"errors"`
	Retries    uint64 `json:"retries"`
	Unanswered uint64 `json:"unanswered,omitempty"`
	// Seen and Sampled are Stats.Seen and Stats.Sampled (0 in rows
	// written before they were kept: not known to be sampled).
	Seen    uint64 `json:"seen,omitempty"`
	Sampled uint64 `json:"sampled,omitempty"`

	Server            Bins `json:"server"`
	Client            Bins `json:"client"`
	Delay             Bins `json:"delay"`
	UnansweredLatency Bins `json:"unanswered_latency"`
}

// SeenCalls is the calls b saw: Seen, or Requests for a row written before
// calls seen were recorded (Seen 0). Storage adding rows up must add
// SeenCalls, not Seen.
func (b *EdgeBucket) SeenCalls() uint64 {
	if b.Seen == 0 {
		return b.Requests
	}
	return b.Seen
}

// addCounts adds b's counts into st.
func (b *EdgeBucket) addCounts(st *Stats) {
	st.Requests += b.Requests
	st.Errors += b.Errors
	st.Retries += b.Retries
	st.Unanswered += b.Unanswered
	st.Seen += b.SeenCalls()
	st.Sampled += b.Sampled
}

// ClosedBuckets returns the edge buckets that closed after `after` (a bucket
// start; the zero time for all the window holds) and before the current
// bucket, and the start of the newest bucket returned (or `after` when
// none closed). A writer calls it every bucket width with the time it got
// last, so each bucket is exported once. Safe for concurrent use.
func (g *Graph) ClosedBuckets(after time.Time) ([]EdgeBucket, time.Time) {
	return g.closedBuckets(after, false)
}

// ClosedEntryBuckets is ClosedBuckets of the edges from the client node
// only: the calls into the entry points, what service level objectives
// count (detect.SLOBurn), without building every other edge's rows.
func (g *Graph) ClosedEntryBuckets(after time.Time) ([]EdgeBucket, time.Time) {
	return g.closedBuckets(after, true)
}

func (g *Graph) closedBuckets(after time.Time, entries bool) ([]EdgeBucket, time.Time) {
	cur := g.epoch(g.opts.Now())
	from := cur - int64(g.slots) + 1
	if !after.IsZero() {
		from = max(from, after.UnixNano()/g.bucketN+1)
	}
	if from >= cur {
		return nil, after
	}
	width := time.Duration(g.bucketN)
	var out []EdgeBucket
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.edgeIx {
		if entries && g.nodeIx[e.key.src].key.Kind != NodeClient {
			continue
		}
		for i, ep := range e.ring.epochs {
			if ep < from || ep >= cur {
				continue
			}
			st := &e.ring.stats[i]
			if st.Requests == 0 && (st.Delay == nil || st.Delay.IsEmpty()) {
				continue
			}
			out = append(out, EdgeBucket{
				Start: time.Unix(0, ep*g.bucketN).UTC(), Width: width,
				Source: g.nodeIx[e.key.src].key, Target: g.nodeIx[e.key.dst].key,
				Kind: e.kind, Protocol: e.key.proto, ConsumerGroup: e.key.group,
				Requests: st.Requests, Errors: st.Errors, Retries: st.Retries, Unanswered: st.Unanswered,
				Seen: st.Seen, Sampled: st.Sampled,
				Server: BinsOf(st.Server), Client: BinsOf(st.Client), Delay: BinsOf(st.Delay), UnansweredLatency: BinsOf(st.UnansweredLatency),
			})
		}
	}
	slices.SortFunc(out, func(a, b EdgeBucket) int { return a.Start.Compare(b.Start) })
	return out, time.Unix(0, (cur-1)*g.bucketN).UTC()
}

// NodeSeen records that a node was seen in one time bucket, as a storage
// row: one per node per closed bucket it is recorded in. It keeps nodes
// that carried no edge in a window (a service with only internal spans)
// in history, with their kind and group (namespace or system), kept
// resource attributes and owner.
type NodeSeen struct {
	Start time.Time     `json:"start"`
	Width time.Duration `json:"width"`
	Key   NodeKey       `json:"key"`
	// Collector is who wrote the row, when storage shared by several
	// collectors says so ("" from the graph itself).
	Collector string `json:"collector,omitempty"`
	// Attributes are the node's kept resource attributes when the row was
	// recorded (Node.Attributes; nil when none), so that a graph read from
	// storage has them, and the environment they tell. The map may be
	// shared with the graph: read only.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Owner is the node's owner when the row was recorded (Node.Owner),
	// empty when unknown.
	Owner string `json:"owner,omitempty"`
}

// ClosedNodes returns the nodes seen in the buckets that closed after
// `after` and before the current bucket, by the same range rule as
// ClosedBuckets (call both with the same `after`). The graph keeps only
// the newest bucket each node was seen in, so a node is recorded in the
// last bucket it was seen in before the export, not in every bucket it was
// seen in: recording every bucket would need per-node history. That is
// enough for history, since a node seen in a window has its last-seen
// bucket in that window or in a later export (which records it again).
// Each carries the node's kept attributes (shared with the graph: read
// only) and its owner (Options.Owners). Safe for concurrent use.
func (g *Graph) ClosedNodes(after time.Time) []NodeSeen {
	cur := g.epoch(g.opts.Now())
	from := cur - int64(g.slots) + 1
	if !after.IsZero() {
		from = max(from, after.UnixNano()/g.bucketN+1)
	}
	if from >= cur {
		return nil
	}
	width := time.Duration(g.bucketN)
	var out []NodeSeen
	g.mu.Lock()
	for i := range g.nodeIx {
		n := &g.nodeIx[i]
		if n.lastSeen < from || n.lastSeen >= cur {
			continue
		}
		out = append(out, NodeSeen{Start: time.Unix(0, n.lastSeen*g.bucketN).UTC(), Width: width, Key: n.key, Attributes: n.attrs})
	}
	g.mu.Unlock()
	// Owners are named outside the lock, as a snapshot names them.
	if o := g.opts.Owners; o != nil {
		for i := range out {
			if n := &out[i]; n.Key.Kind == NodeService {
				n.Owner = o.Owner(n.Key.Name, n.Attributes)
			}
		}
	}
	slices.SortFunc(out, func(a, b NodeSeen) int { return a.Start.Compare(b.Start) })
	return out
}

// Restore loads stored buckets back into the live window (after a restart),
// adding to whatever the graph holds; buckets outside the window or of
// another width are skipped. It returns how many were loaded.
func (g *Graph) Restore(buckets []EdgeBucket) int {
	cur := g.epoch(g.opts.Now())
	n := 0
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ep = max(g.ep, cur) // what Restore touches counts as seen now
	for i := range buckets {
		b := &buckets[i]
		ep := b.Start.UnixNano() / g.bucketN
		if b.Width != time.Duration(g.bucketN) || ep <= cur-int64(g.slots) || ep > cur {
			continue
		}
		src, dst := g.node(b.Source, ep), g.node(b.Target, ep)
		e := g.edge(src, dst, b.Protocol, b.ConsumerGroup)
		if e == nil {
			continue
		}
		st := e.ring.at(ep)
		b.addCounts(st)
		b.Server.addTo(&st.Server, g.mapping)
		b.Client.addTo(&st.Client, g.mapping)
		b.Delay.addTo(&st.Delay, g.mapping)
		b.UnansweredLatency.addTo(&st.UnansweredLatency, g.mapping)
		n++
	}
	g.publishSizes()
	return n
}

// SnapshotOf merges stored buckets (of any collectors) into the Snapshot of
// the window ending at `at`: counts add up, sketches merge, rates are over
// the window. Buckets outside [at-window, at) are ignored.
func SnapshotOf(at time.Time, window time.Duration, buckets []EdgeBucket) *Snapshot {
	return SnapshotOfWithLag(at, window, buckets, nil)
}

// SnapshotOfWithLag is SnapshotOf with consumer lag joined onto the
// destination -> consumer edges, as live snapshots have it. The statuses
// are taken as they are, verdict included (see LagSource).
func SnapshotOfWithLag(at time.Time, window time.Duration, buckets []EdgeBucket, statuses []lag.Status) *Snapshot {
	return SnapshotOfNodes(at, window, buckets, nil, statuses)
}

// SnapshotOfNodes is SnapshotOfWithLag that also includes the stored nodes
// seen in [at-window, at), whether or not an edge of the window touches
// them (a service with only internal spans). Nodes outside the window are
// ignored. A node takes the attributes (and so the environment) and the
// owner of its newest row in the window that has them. Edges carry their Recent figures over the newest RecentBuckets
// bucket widths before at (the buckets' own width).
func SnapshotOfNodes(at time.Time, window time.Duration, buckets []EdgeBucket, nodes []NodeSeen, statuses []lag.Status) *Snapshot {
	m := newLatencyMapping()
	type key struct {
		src, dst NodeKey
		proto    Protocol
		group    string
	}
	type acc struct {
		kind     EdgeKind
		stats    Stats
		recent   Recent
		unanswer *ddsketch.DDSketch // of the recent buckets
	}
	edges := map[key]*acc{}
	var order []key
	from := at.Add(-window)
	var recentFrom time.Time // zero: no bucket width known yet
	for i := range buckets {
		b := &buckets[i]
		if b.Start.Before(from) || !b.Start.Before(at) {
			continue
		}
		if recentFrom.IsZero() && b.Width > 0 {
			recentFrom = at.Truncate(b.Width).Add(-(RecentBuckets - 1) * b.Width)
			if recentFrom.Before(from) {
				recentFrom = from
			}
		}
		k := key{b.Source, b.Target, b.Protocol, b.ConsumerGroup}
		a := edges[k]
		if a == nil {
			a = &acc{kind: b.Kind}
			edges[k] = a
			order = append(order, k)
		}
		st := &a.stats
		b.addCounts(st)
		b.Server.addTo(&st.Server, m)
		b.Client.addTo(&st.Client, m)
		b.Delay.addTo(&st.Delay, m)
		b.UnansweredLatency.addTo(&st.UnansweredLatency, m)
		if !recentFrom.IsZero() && !b.Start.Before(recentFrom) {
			a.recent.Requests += b.Requests
			a.recent.Errors += b.Errors
			a.recent.Retries += b.Retries
			a.recent.Unanswered += b.Unanswered
			b.UnansweredLatency.addTo(&a.unanswer, m)
		}
	}
	sb := snapshotBuilder{byKey: map[NodeKey]int{}}
	for _, k := range order {
		a := edges[k]
		r := rawEdge{src: sb.node(k.src), dst: sb.node(k.dst), kind: a.kind, proto: k.proto, group: k.group, stats: a.stats}
		if a.recent.Requests > 0 {
			rc := a.recent
			rc.UnansweredLatency = quantilesOf(a.unanswer)
			r.recent = &rc
		}
		sb.edges = append(sb.edges, r)
	}
	described := map[NodeKey]time.Time{} // when the attributes and owner taken were recorded
	for i := range nodes {
		n := &nodes[i]
		if n.Start.Before(from) || !n.Start.Before(at) {
			continue
		}
		sb.node(n.Key)
		sb.recorded(n, described)
	}
	if len(statuses) > 0 {
		sb.joinLag(statuses)
	}
	s := sb.build(at, window, max(window.Seconds(), 1))
	if !recentFrom.IsZero() {
		s.RecentSeconds = at.Sub(recentFrom).Seconds()
	}
	return s
}
