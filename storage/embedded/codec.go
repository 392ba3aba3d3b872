package embedded

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// On-disk layout.
//
// Keys of the time-ordered buckets (edges, nodes, lag) are 16 bytes: the row's time
// in Unix nanoseconds, big-endian with the sign bit flipped so that byte
// order is time order, then an 8-byte big-endian sequence from the bucket's
// NextSequence, so that rows of the same time written by different batches
// or collectors never overwrite each other.
//
// Edge buckets and lag samples are stored in a compact binary form
// (format byte, varints, bin indexes delta-encoded) rather than JSON. For
// a realistic edge bucket (server and client sketches of ~32 bins each,
// BenchmarkEncoding) the value is 185 bytes against 712 for its JSON, and
// encoding plus decoding it takes ~2-3µs against ~40µs; with key, bbolt's
// per-element header and page fill, a row takes ~250 bytes of the file.
// Size bounds the history kept under MaxBytes, and decoding the time to
// read an hour of history (720k rows for 1,000 edges), so both matter. The
// row's time is the key and is not repeated in the value.
//
// Edge values are written in format 2: format 1 followed, after the
// unanswered count, by the calls seen and the sampled calls seen
// (graph.EdgeBucket.Seen, Sampled). Values of format 1, written before
// those were kept, still decode, with Seen and Sampled 0 (graph: not
// sampled, every request seen).
//
// Nodes seen (one row per node and bucket it was recorded in) are stored
// the same way: format byte, width varint, kind byte, group and name, and
// the collector (usually empty), ~20 bytes a row. Format 2 follows with the
// kept resource attributes (a count, then key and value of each, sorted
// by key) and the owner (graph.NodeSeen.Attributes, Owner): about 150
// bytes a row with four typical attributes (namespace, deployment,
// environment, team) and the owner, against 22 without;
// values of format 1, written before, decode with neither.
//
// Findings are few and carry free-form evidence, so they are stored as
// JSON under their id, behind a fixed header of the times that range reads
// and retention filter on (so neither decodes JSON it does not return).

const (
	keyLen   = 16
	formatV1 = 1
	// edgeFormatV2 is the edge value format with calls seen and sampled.
	edgeFormatV2 = 2
	// nodeFormatV2 is the node value format with attributes and owner.
	nodeFormatV2 = 2
	findingHdr   = 1 + 3*8
	nanosNotSet  = math.MaxInt64
)

var (
	errCorrupt = errors.New("embedded: corrupt row")

	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// unixNanos is t in Unix nanoseconds, clamped to the int64 range (the zero
// time is the minimum).
func unixNanos(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// timePrefix is the 8-byte, byte-ordered prefix of keys at Unix nanos n.
func timePrefix(n int64) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n)^(1<<63))
	return b
}

// putKey writes the key of a row at n with sequence seq into dst[:16].
func putKey(dst []byte, n int64, seq uint64) {
	binary.BigEndian.PutUint64(dst, uint64(n)^(1<<63))
	binary.BigEndian.PutUint64(dst[8:], seq)
}

// keyNanos is the time of a row key.
func keyNanos(k []byte) (int64, error) {
	if len(k) != keyLen {
		return 0, fmt.Errorf("%w: key of %d bytes", errCorrupt, len(k))
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), nil
}

// ---- writing ----
//
// The encoders are append functions on plain slices (no pointer
// receiver), which keeps them free of write barriers.

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendNode(b []byte, k graph.NodeKey) []byte {
	return appendStr(appendStr(append(b, byte(k.Kind)), k.Group), k.Name)
}

func appendBins(b []byte, bins graph.Bins) ([]byte, error) {
	if len(bins.Index) != len(bins.Count) {
		return b, fmt.Errorf("embedded: bins with %d indexes and %d counts", len(bins.Index), len(bins.Count))
	}
	b = binary.AppendUvarint(b, uint64(len(bins.Index)))
	prev := int64(0)
	for _, i := range bins.Index {
		b = binary.AppendVarint(b, int64(i)-prev)
		prev = int64(i)
	}
	for _, c := range bins.Count {
		b = binary.AppendUvarint(b, c)
	}
	return b, nil
}

// appendEdge appends the value of edge bucket e (all but Start, which is
// the key) to dst.
func appendEdge(dst []byte, e *graph.EdgeBucket) ([]byte, error) {
	b := append(dst, edgeFormatV2)
	b = binary.AppendVarint(b, int64(e.Width))
	b = appendNode(b, e.Source)
	b = appendNode(b, e.Target)
	b = append(b, byte(e.Kind), byte(e.Protocol))
	b = appendStr(b, e.ConsumerGroup)
	b = binary.AppendUvarint(b, e.Requests)
	b = binary.AppendUvarint(b, e.Errors)
	b = binary.AppendUvarint(b, e.Retries)
	b = binary.AppendUvarint(b, e.Unanswered)
	b = binary.AppendUvarint(b, e.Seen)
	b = binary.AppendUvarint(b, e.Sampled)
	var err error
	for _, bins := range [...]*graph.Bins{&e.Server, &e.Client, &e.Delay, &e.UnansweredLatency} {
		if b, err = appendBins(b, *bins); err != nil {
			return dst, err
		}
	}
	return b, nil
}

// appendNodeSeen appends the value of node row n (all but Start, the key)
// to dst.
func appendNodeSeen(dst []byte, n *graph.NodeSeen) []byte {
	b := append(dst, nodeFormatV2)
	b = binary.AppendVarint(b, int64(n.Width))
	b = appendNode(b, n.Key)
	b = appendStr(b, n.Collector)
	b = binary.AppendUvarint(b, uint64(len(n.Attributes)))
	for _, k := range slices.Sorted(maps.Keys(n.Attributes)) {
		b = appendStr(appendStr(b, k), n.Attributes[k])
	}
	return appendStr(b, n.Owner)
}

// appendLag appends the value of sample s (all but Time, the key) to dst.
func appendLag(dst []byte, s *lag.Sample) []byte {
	b := append(dst, formatV1)
	b = appendStr(b, s.System)
	b = appendStr(b, s.Destination)
	b = appendStr(b, s.Group)
	b = binary.AppendVarint(b, int64(s.Partition))
	for _, v := range [...]float64{s.Lag, s.Committed, s.End, s.Consumers, s.Produced, s.Consumed} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	b = appendStr(b, s.Source)
	b = binary.AppendUvarint(b, uint64(len(s.Subjects)))
	for _, sub := range s.Subjects {
		b = appendStr(b, sub)
	}
	return b
}

// findingTimes are the times of a finding that reads and retention filter
// on, in Unix nanos; resolved is nanosNotSet while unresolved.
type findingTimes struct {
	started, resolved, lastSeen int64
}

// end is when the finding last mattered: its resolution, or the last time
// it was seen while it is unresolved.
func (t findingTimes) end() int64 {
	if t.resolved != nanosNotSet {
		return t.resolved
	}
	return max(t.lastSeen, t.started)
}

// encodeFinding returns the value of finding f: header and JSON.
func encodeFinding(f *finding.Finding) ([]byte, error) {
	js, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("embedded: encode finding %q: %w", f.ID, err)
	}
	t := findingTimes{started: unixNanos(f.StartedAt), resolved: nanosNotSet, lastSeen: unixNanos(f.LastSeen)}
	if f.ResolvedAt != nil {
		t.resolved = unixNanos(*f.ResolvedAt)
	}
	v := make([]byte, 0, findingHdr+len(js))
	v = append(v, formatV1)
	v = binary.BigEndian.AppendUint64(v, uint64(t.started))
	v = binary.BigEndian.AppendUint64(v, uint64(t.resolved))
	v = binary.BigEndian.AppendUint64(v, uint64(t.lastSeen))
	return append(v, js...), nil
}

// decodeFindingTimes reads the header of a finding value.
func decodeFindingTimes(v []byte) (findingTimes, error) {
	if len(v) < findingHdr || v[0] != formatV1 {
		return findingTimes{}, fmt.Errorf("%w: finding header", errCorrupt)
	}
	return findingTimes{
		started:  int64(binary.BigEndian.Uint64(v[1:])),
		resolved: int64(binary.BigEndian.Uint64(v[9:])),
		lastSeen: int64(binary.BigEndian.Uint64(v[17:])),
	}, nil
}

// decodeFinding decodes a finding value.
func decodeFinding(v []byte) (finding.Finding, error) {
	var f finding.Finding
	if _, err := decodeFindingTimes(v); err != nil {
		return f, err
	}
	if err := json.Unmarshal(v[findingHdr:], &f); err != nil {
		return f, fmt.Errorf("%w: finding: %w", errCorrupt, err)
	}
	return f, nil
}

// ---- reading ----

// reader decodes values; the first error sticks and later reads return
// zero values. Strings go through intern (when set), which lets a range
// read share the node names repeated on every row.
type reader struct {
	b      []byte
	err    error
	intern map[string]string
	// idx and cnt are slabs the bins of successive rows are cut from, so
	// a range read allocates per slab, not per sketch.
	idx []int32
	cnt []uint64
}

// slab is the bins one slab holds.
const slab = 4096

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("short value")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail("short float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// count reads a length and checks that at least per*n bytes remain, so a
// corrupt length cannot make the decoder allocate more than the value.
func (r *reader) count(per int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/per) {
		r.fail("length beyond value")
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.count(1)
	if n == 0 {
		return ""
	}
	b := r.b[:n]
	r.b = r.b[n:]
	if r.intern == nil {
		return string(b)
	}
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.intern) < maxIntern {
		r.intern[s] = s
	}
	return s
}

// maxIntern bounds the strings one range read shares.
const maxIntern = 100_000

func (r *reader) node() graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeKind(r.byte()), Group: r.str(), Name: r.str()}
}

func (r *reader) bins() graph.Bins {
	n := r.count(2) // each bin takes at least one byte of index and one of count
	if n == 0 {
		return graph.Bins{}
	}
	if len(r.idx) < n {
		r.idx, r.cnt = make([]int32, max(n, slab)), make([]uint64, max(n, slab))
	}
	bins := graph.Bins{Index: r.idx[:n:n], Count: r.cnt[:n:n]}
	b := r.b
	prev := int64(0)
	for i := range n {
		d, k := binary.Varint(b)
		if k <= 0 {
			r.fail("bad bin index")
			return graph.Bins{}
		}
		b = b[k:]
		if prev += d; prev < math.MinInt32 || prev > math.MaxInt32 {
			r.fail("bin index out of range")
			return graph.Bins{}
		}
		bins.Index[i] = int32(prev)
	}
	for i := range n {
		c, k := binary.Uvarint(b)
		if k <= 0 {
			r.fail("bad bin count")
			return graph.Bins{}
		}
		b = b[k:]
		bins.Count[i] = c
	}
	r.b = b
	r.idx, r.cnt = r.idx[n:], r.cnt[n:]
	return bins
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

// decodeEdge decodes an edge value stored at Unix nanos start, of format
// 2 or 1 (Seen and Sampled 0).
func decodeEdge(r *reader, start int64, v []byte) (graph.EdgeBucket, error) {
	r.b, r.err = v, nil
	format := r.byte()
	if format != formatV1 && format != edgeFormatV2 {
		return graph.EdgeBucket{}, fmt.Errorf("%w: unknown edge format", errCorrupt)
	}
	e := graph.EdgeBucket{Start: time.Unix(0, start).UTC()}
	e.Width = time.Duration(r.varint())
	e.Source = r.node()
	e.Target = r.node()
	e.Kind = graph.EdgeKind(r.byte())
	e.Protocol = graph.Protocol(r.byte())
	e.ConsumerGroup = r.str()
	e.Requests = r.uvarint()
	e.Errors = r.uvarint()
	e.Retries = r.uvarint()
	e.Unanswered = r.uvarint()
	if format == edgeFormatV2 {
		e.Seen = r.uvarint()
		e.Sampled = r.uvarint()
	}
	e.Server = r.bins()
	e.Client = r.bins()
	e.Delay = r.bins()
	e.UnansweredLatency = r.bins()
	if err := r.done(); err != nil {
		return graph.EdgeBucket{}, err
	}
	return e, nil
}

// decodeNodeSeen decodes a node value stored at Unix nanos start, of
// format 2 or 1 (no attributes, no owner).
func decodeNodeSeen(r *reader, start int64, v []byte) (graph.NodeSeen, error) {
	r.b, r.err = v, nil
	format := r.byte()
	if format != formatV1 && format != nodeFormatV2 {
		return graph.NodeSeen{}, fmt.Errorf("%w: unknown node format", errCorrupt)
	}
	n := graph.NodeSeen{Start: time.Unix(0, start).UTC()}
	n.Width = time.Duration(r.varint())
	n.Key = r.node()
	n.Collector = r.str()
	if format == nodeFormatV2 {
		if c := r.count(2); c > 0 { // each attribute takes at least two length bytes
			n.Attributes = make(map[string]string, c)
			for range c {
				k := r.str()
				n.Attributes[k] = r.str()
			}
		}
		n.Owner = r.str()
	}
	if err := r.done(); err != nil {
		return graph.NodeSeen{}, err
	}
	return n, nil
}

// decodeLag decodes a lag value stored at Unix nanos t.
func decodeLag(r *reader, t int64, v []byte) (lag.Sample, error) {
	r.b, r.err = v, nil
	if r.byte() != formatV1 {
		return lag.Sample{}, fmt.Errorf("%w: unknown lag format", errCorrupt)
	}
	s := lag.Sample{Time: time.Unix(0, t).UTC()}
	s.System = r.str()
	s.Destination = r.str()
	s.Group = r.str()
	p := r.varint()
	if p < math.MinInt32 || p > math.MaxInt32 {
		r.fail("partition out of range")
	}
	s.Partition = int32(p)
	for _, f := range [...]*float64{&s.Lag, &s.Committed, &s.End, &s.Consumers, &s.Produced, &s.Consumed} {
		*f = r.float()
	}
	s.Source = r.str()
	if n := r.count(1); n > 0 {
		s.Subjects = make([]string, n)
		for i := range s.Subjects {
			s.Subjects[i] = r.str()
		}
	}
	if err := r.done(); err != nil {
		return lag.Sample{}, err
	}
	return s, nil
}
