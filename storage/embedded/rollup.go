package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/seed-a49a8342/cartograph/graph"
)

// The one-minute rollup.
//
// Every Commit also adds its edge buckets into one row per edge and minute
// (bucket "edges_1m") and its node rows into one row per node and minute
// ("nodes_1m"), in the same transaction, so the rollup is exactly as
// durable as the rows it sums. A bucket belongs to the minute it starts
// in, so "the rollup rows of the minutes in [a, b)" are exactly "the
// buckets starting in [a, b)". Counts add up and the DDSketch bins merge
// by adding the counts of equal indexes, which is exact: a read of whole
// minutes from the rollup gives the same graph as the raw buckets.
//
// Rollup keys are 16 bytes like the raw ones: the minute's time prefix,
// then a 64-bit FNV-1a hash of the edge (or node) identity instead of a
// sequence, so that a Commit finds the row to add to with one Get. The
// value holds the full identity; should two identities of one minute hash
// alike, the second takes the next free hash value (linear probing).
//
// Reads (Edges, Nodes) of ranges at least Options.RollupAfter long take
// their whole minutes from the rollup and only the partial minutes at
// either end from the raw rows: an hour of 5-second buckets reads 60 rows
// per edge instead of 720. Shorter ranges (the live window restored at
// start, merged detection) read raw rows, each of its own width.
//
// A file written before the rollup existed (format 1) is upgraded when
// opened: the rollup starts at the minute after its newest raw row (kept
// in meta as rollup.from), and reads of earlier minutes use the raw rows.

var (
	bucketEdges1m = []byte("edges_1m")
	bucketNodes1m = []byte("nodes_1m")

	metaRollupFrom = []byte("rollup.from")
)

// Row kinds of the rollup, the kind label of the metrics.
const (
	kindEdge1m = "edge_1m"
	kindNode1m = "node_1m"
)

// rollupWidth is the width of a rollup row.
const rollupWidth = time.Minute

// DefaultRollupAfter is the default of Options.RollupAfter.
const DefaultRollupAfter = 10 * time.Minute

// minuteOf is the start of the minute (Unix nanos) that n falls in
// (math.MinInt64 in the first minute of the int64 range, which has no
// whole start).
func minuteOf(n int64) int64 {
	const m = int64(rollupWidth)
	if n < math.MinInt64+m {
		return math.MinInt64
	}
	q := n / m
	if n%m != 0 && n < 0 {
		q--
	}
	return q * m
}

// edgeIdentity is what rows of one edge share (graph.SnapshotOf's merge
// key).
type edgeIdentity struct {
	src, dst graph.NodeKey
	proto    graph.Protocol
	group    string
}

func identityOf(e *graph.EdgeBucket) edgeIdentity {
	return edgeIdentity{e.Source, e.Target, e.Protocol, e.ConsumerGroup}
}

func hashNode(h interface{ Write([]byte) (int, error) }, k graph.NodeKey) {
	var b [binary.MaxVarintLen64 + 1]byte
	b[0] = byte(k.Kind)
	_, _ = h.Write(binary.AppendUvarint(b[:1], uint64(len(k.Group))))
	_, _ = h.Write([]byte(k.Group))
	_, _ = h.Write(binary.AppendUvarint(b[:0], uint64(len(k.Name))))
	_, _ = h.Write([]byte(k.Name))
}

// hash is the identity's stable 64-bit hash (the same in every process).
func (id edgeIdentity) hash() uint64 {
	h := fnv.New64a()
	hashNode(h, id.src)
	hashNode(h, id.dst)
	_, _ = h.Write([]byte{byte(id.proto)})
	_, _ = h.Write(binary.AppendUvarint(nil, uint64(len(id.group))))
	_, _ = h.Write([]byte(id.group))
	return h.Sum64()
}

func nodeHash(k graph.NodeKey) uint64 {
	h := fnv.New64a()
	hashNode(h, k)
	return h.Sum64()
}

// rollupKey is the key of the rollup row of minute m with hash h.
func rollupKey(m int64, h uint64) []byte {
	k := make([]byte, keyLen)
	putKey(k, m, h)
	return k
}

// mergeBins returns the bins of a and b added up (both ascending by
// index; so is the result).
func mergeBins(a, b graph.Bins) graph.Bins {
	if len(b.Index) == 0 {
		return graph.Bins{Index: append([]int32(nil), a.Index...), Count: append([]uint64(nil), a.Count...)}
	}
	if len(a.Index) == 0 {
		return graph.Bins{Index: append([]int32(nil), b.Index...), Count: append([]uint64(nil), b.Count...)}
	}
	out := graph.Bins{Index: make([]int32, 0, max(len(a.Index), len(b.Index))), Count: make([]uint64, 0, max(len(a.Index), len(b.Index)))}
	i, j := 0, 0
	for i < len(a.Index) || j < len(b.Index) {
		switch {
		case j == len(b.Index) || (i < len(a.Index) && a.Index[i] < b.Index[j]):
			out.Index, out.Count = append(out.Index, a.Index[i]), append(out.Count, a.Count[i])
			i++
		case i == len(a.Index) || b.Index[j] < a.Index[i]:
			out.Index, out.Count = append(out.Index, b.Index[j]), append(out.Count, b.Count[j])
			j++
		default:
			out.Index, out.Count = append(out.Index, a.Index[i]), append(out.Count, a.Count[i]+b.Count[j])
			i++
			j++
		}
	}
	return out
}

// addBucket adds b's counts and bins into acc (same edge). Either may be
// a row written before calls seen were kept (Seen 0: every request seen):
// acc gets the calls both saw (graph.EdgeBucket.SeenCalls), so that adding
// such a row to a sampled one keeps the calls it saw.
func addBucket(acc *graph.EdgeBucket, b *graph.EdgeBucket) {
	acc.Seen = acc.SeenCalls() + b.SeenCalls()
	acc.Sampled += b.Sampled
	acc.Requests += b.Requests
	acc.Errors += b.Errors
	acc.Retries += b.Retries
	acc.Unanswered += b.Unanswered
	acc.Server = mergeBins(acc.Server, b.Server)
	acc.Client = mergeBins(acc.Client, b.Client)
	acc.Delay = mergeBins(acc.Delay, b.Delay)
	acc.UnansweredLatency = mergeBins(acc.UnansweredLatency, b.UnansweredLatency)
}

// rollupAcc sums the edge buckets and nodes of one batch per minute
// before they are added to the stored rollup.
type rollupAcc struct {
	edges     map[edgeMinute]*graph.EdgeBucket
	edgeOrder []edgeMinute
	nodes     map[nodeMinute]*graph.NodeSeen // the newest row of the minute
	nodeOrder []nodeMinute
}

type edgeMinute struct {
	minute int64
	id     edgeIdentity
}

type nodeMinute struct {
	minute int64
	key    graph.NodeKey
}

func (r *rollupAcc) addEdge(b *graph.EdgeBucket) {
	if r.edges == nil {
		r.edges = map[edgeMinute]*graph.EdgeBucket{}
	}
	k := edgeMinute{minuteOf(unixNanos(b.Start)), identityOf(b)}
	acc := r.edges[k]
	if acc == nil {
		acc = &graph.EdgeBucket{Start: time.Unix(0, k.minute).UTC(), Width: rollupWidth,
			Source: b.Source, Target: b.Target, Kind: b.Kind, Protocol: b.Protocol, ConsumerGroup: b.ConsumerGroup}
		r.edges[k] = acc
		r.edgeOrder = append(r.edgeOrder, k)
	}
	addBucket(acc, b)
}

func (r *rollupAcc) addNode(n *graph.NodeSeen) {
	if r.nodes == nil {
		r.nodes = map[nodeMinute]*graph.NodeSeen{}
	}
	k := nodeMinute{minuteOf(unixNanos(n.Start)), n.Key}
	old := r.nodes[k]
	if old == nil {
		r.nodeOrder = append(r.nodeOrder, k)
	}
	if old == nil || newerDescription(n, old) {
		r.nodes[k] = &graph.NodeSeen{Start: n.Start, Attributes: n.Attributes, Owner: n.Owner} // the attributes are read only
	}
}

// newerDescription reports whether n describes its node (attributes,
// owner) and is no older than old, or old does not.
func newerDescription(n, old *graph.NodeSeen) bool {
	has := func(x *graph.NodeSeen) bool { return len(x.Attributes) > 0 || x.Owner != "" }
	return has(n) && (!has(old) || !n.Start.Before(old.Start))
}

// sameDescription reports whether a and b carry the same attributes and
// owner.
func sameDescription(a, b *graph.NodeSeen) bool {
	return a.Owner == b.Owner && maps.Equal(a.Attributes, b.Attributes)
}

// maxProbe bounds linear probing; 64-bit hashes of the identities of one
// minute collide practically never, so reaching it means a corrupt file.
const maxProbe = 64

// write adds the batch's sums into the rollup buckets of tx and returns
// how many rows of each it created.
func (r *rollupAcc) write(tx *bolt.Tx) (newEdges, newNodes int, err error) {
	eb, nb := tx.Bucket(bucketEdges1m), tx.Bucket(bucketNodes1m)
	eb.FillPercent, nb.FillPercent = fillPercent, fillPercent
	rd := reader{}
	var buf []byte
	for _, k := range r.edgeOrder {
		acc := r.edges[k]
		h := k.id.hash()
		var key []byte
		for probe := range maxProbe + 1 {
			if probe == maxProbe {
				return newEdges, newNodes, fmt.Errorf("%w: %d rollup rows of minute %v share a hash", errCorrupt, maxProbe, acc.Start)
			}
			key = rollupKey(k.minute, h+uint64(probe))
			v := eb.Get(key)
			if v == nil {
				newEdges++
				break
			}
			old, err := decodeEdge(&rd, k.minute, v)
			if err != nil {
				return newEdges, newNodes, fmt.Errorf("rollup of %v: %w", acc.Start, err)
			}
			if identityOf(&old) == k.id {
				addBucket(acc, &old)
				break
			}
		}
		if buf, err = appendEdge(buf[:0], acc); err != nil {
			return newEdges, newNodes, err
		}
		if err := eb.Put(key, bytes.Clone(buf)); err != nil {
			return newEdges, newNodes, err
		}
	}
	for _, k := range r.nodeOrder {
		h := nodeHash(k.key)
		for probe := range maxProbe + 1 {
			if probe == maxProbe {
				return newEdges, newNodes, fmt.Errorf("%w: %d rollup rows of minute %v share a hash", errCorrupt, maxProbe, time.Unix(0, k.minute).UTC())
			}
			key := rollupKey(k.minute, h+uint64(probe))
			latest := r.nodes[k]
			n := graph.NodeSeen{Start: time.Unix(0, k.minute).UTC(), Width: rollupWidth, Key: k.key,
				Attributes: latest.Attributes, Owner: latest.Owner}
			v := nb.Get(key)
			if v == nil {
				if err := nb.Put(key, appendNodeSeen(nil, &n)); err != nil {
					return newEdges, newNodes, err
				}
				newNodes++
				break
			}
			old, err := decodeNodeSeen(&rd, k.minute, v)
			if err != nil {
				return newEdges, newNodes, fmt.Errorf("node rollup of %v: %w", time.Unix(0, k.minute).UTC(), err)
			}
			if old.Key == k.key {
				// The minute's row describes the node as its newest row
				// that has attributes or an owner did.
				if len(n.Attributes) == 0 && n.Owner == "" || sameDescription(&n, &old) {
					break
				}
				if err := nb.Put(key, appendNodeSeen(nil, &n)); err != nil {
					return newEdges, newNodes, err
				}
				break
			}
		}
	}
	return newEdges, newNodes, nil
}

// getRollupFrom reads where the rollup starts (Unix nanos of a minute).
func getRollupFrom(meta *bolt.Bucket) int64 {
	v := meta.Get(metaRollupFrom)
	if len(v) != 8 {
		return math.MinInt64
	}
	return int64(binary.BigEndian.Uint64(v))
}

// upgradeToRollup starts the rollup of a format 1 file at the minute after
// its newest raw edge or node row: minutes before read raw rows.
func upgradeToRollup(tx *bolt.Tx) error {
	from := int64(math.MinInt64)
	for _, name := range [][]byte{bucketEdges, bucketNodes} {
		if k, _ := tx.Bucket(name).Cursor().Last(); k != nil {
			t, err := keyNanos(k)
			if err != nil {
				return err
			}
			from = max(from, minuteOf(t)+int64(rollupWidth))
		}
	}
	return tx.Bucket(bucketMeta).Put(metaRollupFrom, binary.BigEndian.AppendUint64(nil, uint64(from)))
}

// rollupRange splits [lo, hi) (Unix nanos) into [lo, a) + [a, b) + [b,
// hi), [a, b) the whole minutes in it at or after from that the rollup
// serves; a = b = hi when there are none.
func rollupRange(lo, hi, from int64) (a, b int64) {
	a = minuteOf(lo)
	if a < lo && a < math.MaxInt64-int64(rollupWidth) {
		a += int64(rollupWidth)
	}
	a = max(a, from)
	b = minuteOf(hi)
	if a >= b {
		return hi, hi
	}
	return a, b
}

// useRollup reports whether a read of [from, to) takes its whole minutes
// from the rollup.
func (s *Store) useRollup(from, to time.Time) bool {
	return s.o.RollupAfter > 0 && to.Sub(from) >= s.o.RollupAfter
}
