package critpath

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/seed-a49a8342/cartograph/graph"
)

// maxNodeIDs bounds the node id cache; it starts over when full.
const maxNodeIDs = 1 << 16

// results keeps, per entry operation, the analysed traces in time buckets.
type results struct {
	s *Sampler

	mu      sync.Mutex
	entries map[entryKey]*entry
	ids     map[graph.NodeKey]string
	swept   int64 // epoch of the last sweep for aged-out entries
	// calls are the call patterns by time bucket (calls.go); nil until
	// the first trace with a call.
	calls []callBucket
}

type entryKey struct {
	node string // entry node id
	op   string // root span name
}

type entry struct {
	last    int64 // newest epoch recorded
	buckets []bucket
}

// bucket holds what the traces completed in one epoch add up to; latencies
// in milliseconds.
type bucket struct {
	epoch  int64
	traces int64
	sumMs  float64            // end-to-end latencies
	lat    *ddsketch.DDSketch // end-to-end latencies; nil until used
	self   map[string]float64 // node id -> self time on the critical path
}

func (r *results) init(s *Sampler) {
	r.s = s
	r.entries = make(map[entryKey]*entry)
	r.ids = make(map[graph.NodeKey]string)
	r.swept = math.MinInt64
}

// id returns k's node id, cached. Caller holds mu.
func (r *results) id(k graph.NodeKey) string {
	if id, ok := r.ids[k]; ok {
		return id
	}
	if len(r.ids) >= maxNodeIDs {
		clear(r.ids)
	}
	id := k.ID()
	r.ids[k] = id
	return id
}

// record adds the trace a has just analysed to the bucket of epoch.
func (r *results) record(a *analyzer, epoch int64) {
	m := r.s.m
	r.mu.Lock()
	defer r.mu.Unlock()
	k := entryKey{node: r.id(a.entry), op: a.op}
	e := r.entries[k]
	if e == nil {
		if len(r.entries) >= r.s.o.MaxEntries {
			r.sweep(epoch)
		}
		if len(r.entries) >= r.s.o.MaxEntries {
			m.dropped.WithLabelValues(dropEntryLimit).Inc()
			return
		}
		e = &entry{last: epoch, buckets: make([]bucket, r.s.slots)}
		for i := range e.buckets {
			e.buckets[i].epoch = math.MinInt64
		}
		r.entries[k] = e
	}
	e.last = max(e.last, epoch)
	b := e.at(epoch)
	ms := float64(a.dur) / 1e6
	b.traces++
	b.sumMs += ms
	if b.lat == nil {
		b.lat = ddsketch.NewDDSketchFromStoreProvider(r.s.mapping, store.BufferedPaginatedStoreConstructor)
	}
	_ = b.lat.Add(ms) // non-negative finite: cannot fail
	if b.self == nil {
		b.self = make(map[string]float64, len(a.out))
	}
	for _, ns := range a.out {
		id := r.id(ns.key)
		if _, ok := b.self[id]; !ok && len(b.self) >= maxNodesPerEntry {
			m.nodesDropped.Inc()
			continue
		}
		b.self[id] += float64(ns.ns) / 1e6
	}
	r.recordCallsLocked(a.calls, epoch)
	m.completed.Inc()
}

// at returns the bucket of epoch, resetting a slot that held an older one.
func (e *entry) at(epoch int64) *bucket {
	b := &e.buckets[int(uint64(epoch)%uint64(len(e.buckets)))]
	if b.epoch != epoch {
		b.epoch, b.traces, b.sumMs = epoch, 0, 0
		if b.lat != nil {
			b.lat.Clear()
		}
		clear(b.self)
	}
	return b
}

// sweep forgets the entries with no bucket left in the ring at epoch cur,
// at most once per epoch. Caller holds mu.
func (r *results) sweep(cur int64) {
	if r.swept == cur {
		return
	}
	r.swept = cur
	oldest := cur - int64(r.s.slots) + 1
	for k, e := range r.entries {
		if e.last < oldest {
			delete(r.entries, k)
		}
	}
}

// paths merges the buckets with epochs in [from, to] into one EntryPath
// per entry seen there.
func (r *results) paths(from, to int64) []graph.EntryPath {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(to)
	out := make([]graph.EntryPath, 0, len(r.entries))
	self := make(map[string]float64)
	for k, e := range r.entries {
		if e.last < from {
			continue
		}
		var traces int64
		var sumMs float64
		var lat *ddsketch.DDSketch
		clear(self)
		for i := range e.buckets {
			b := &e.buckets[i]
			if b.epoch < from || b.epoch > to || b.traces == 0 {
				continue
			}
			traces += b.traces
			sumMs += b.sumMs
			if lat == nil {
				lat = b.lat.Copy()
			} else {
				_ = lat.MergeWith(b.lat) // same mapping: cannot fail
			}
			for id, ms := range b.self {
				self[id] += ms
			}
		}
		if traces == 0 {
			continue
		}
		p := graph.EntryPath{Node: k.node, Operation: k.op, Traces: int(traces)}
		if q, err := lat.GetValuesAtQuantiles([]float64{0.5, 0.95}); err == nil {
			p.P50Ms, p.P95Ms = round3(q[0]), round3(q[1])
		}
		p.Shares = make([]graph.PathShare, 0, len(self))
		for id, ms := range self {
			if !(ms > 0) {
				continue
			}
			var share float64
			if sumMs > 0 {
				share = min(math.Round(ms/sumMs*1e4)/1e4, 1)
			}
			p.Shares = append(p.Shares, graph.PathShare{Node: id, SelfMs: round3(ms / float64(traces)), Share: share})
		}
		slices.SortFunc(p.Shares, func(a, b graph.PathShare) int {
			if c := cmp.Compare(b.Share, a.Share); c != 0 {
				return c
			}
			if c := cmp.Compare(b.SelfMs, a.SelfMs); c != 0 {
				return c
			}
			return strings.Compare(a.Node, b.Node)
		})
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b graph.EntryPath) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Operation, b.Operation)
	})
	return out
}

// round3 rounds to microsecond precision, as the graph does.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
