package embedded

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

func TestKeysSortByTime(t *testing.T) {
	times := []int64{math.MinInt64, -5, -1, 0, 1, 5, math.MaxInt64}
	var prev []byte
	for _, n := range times {
		k := make([]byte, keyLen)
		putKey(k, n, 7)
		got, err := keyNanos(k)
		require.NoError(t, err)
		require.Equal(t, n, got)
		if prev != nil {
			require.Less(t, string(prev), string(k))
		}
		prev = k
	}
	require.Equal(t, int64(math.MinInt64), unixNanos(time.Time{}))
	require.Equal(t, int64(math.MaxInt64), unixNanos(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)))
	require.Equal(t, t0.UnixNano(), unixNanos(t0))
}

func TestEdgeCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, e := range []graph.EdgeBucket{
		{Start: t0},
		edge(t0, "a", "b", 3),
		realisticEdge(rng, t0, 42),
		{Start: t0, Requests: 40, Errors: 4, Seen: 10, Sampled: 10}, // sampled: an estimate
		{Start: t0, Requests: 7, Seen: 7},
		{Start: t0, Width: -1, Source: graph.NodeKey{Kind: 255, Name: "\x00é"}, Kind: 255, Protocol: 255,
			Server: graph.Bins{Index: []int32{math.MaxInt32, math.MinInt32}, Count: []uint64{0, math.MaxUint64}}},
	} {
		v, err := appendEdge(nil, &e)
		require.NoError(t, err)
		var r reader
		got, err := decodeEdge(&r, t0.UnixNano(), v)
		require.NoError(t, err)
		require.Equal(t, e, got)
		// Every strict prefix is rejected, not misread.
		for n := range len(v) {
			_, err := decodeEdge(&r, 0, v[:n])
			require.ErrorIs(t, err, errCorrupt, "prefix of %d bytes", n)
		}
		_, err = decodeEdge(&r, 0, append(v, 0))
		require.ErrorIs(t, err, errCorrupt, "trailing byte")
	}
}

func TestLagCodec(t *testing.T) {
	s := sample(t0, "g", 5)
	s.Subjects = []string{"a.>", "b.*"}
	s.Partition = math.MinInt32
	v := appendLag(nil, &s)
	var r reader
	got, err := decodeLag(&r, t0.UnixNano(), v)
	require.NoError(t, err)
	require.Equal(t, s, got)
	for n := range len(v) {
		_, err := decodeLag(&r, 0, v[:n])
		require.ErrorIs(t, err, errCorrupt)
	}
}

func FuzzDecodeEdge(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, e := range []graph.EdgeBucket{edge(t0, "a", "b", 1), realisticEdge(rng, t0, 1)} {
		v, err := appendEdge(nil, &e)
		require.NoError(f, err)
		f.Add(v)
		f.Add(appendEdgeV1(nil, &e))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r := reader{intern: map[string]string{}}
		e, err := decodeEdge(&r, 0, v)
		if err != nil {
			return
		}
		// What decodes re-encodes to a value that decodes the same.
		v2, err := appendEdge(nil, &e)
		require.NoError(t, err)
		e2, err := decodeEdge(&r, 0, v2)
		require.NoError(t, err)
		require.Equal(t, e, e2)
	})
}

func FuzzDecodeLag(f *testing.F) {
	s := sample(t0, "g", 1)
	s.Subjects = []string{"x"}
	f.Add(appendLag(nil, &s))
	f.Fuzz(func(t *testing.T, v []byte) {
		var r reader
		got, err := decodeLag(&r, 0, v)
		if err != nil {
			return
		}
		got2, err := decodeLag(&r, 0, appendLag(nil, &got))
		require.NoError(t, err)
		if got.Lag == got.Lag && got.Committed == got.Committed && got.End == got.End &&
			got.Consumers == got.Consumers && got.Produced == got.Produced && got.Consumed == got.Consumed {
			require.Equal(t, got, got2) // NaN != NaN
		}
	})
}

// appendEdgeV1 is appendEdge of the builds before calls seen were kept
// (edge value format 1): testdata/edge-v1.hex is a value one wrote.
func appendEdgeV1(dst []byte, e *graph.EdgeBucket) []byte {
	b := append(dst, formatV1)
	b = binary.AppendVarint(b, int64(e.Width))
	b = appendNode(b, e.Source)
	b = appendNode(b, e.Target)
	b = append(b, byte(e.Kind), byte(e.Protocol))
	b = appendStr(b, e.ConsumerGroup)
	for _, n := range [...]uint64{e.Requests, e.Errors, e.Retries, e.Unanswered} {
		b = binary.AppendUvarint(b, n)
	}
	for _, bins := range [...]graph.Bins{e.Server, e.Client, e.Delay, e.UnansweredLatency} {
		b, _ = appendBins(b, bins)
	}
	return b
}

// TestEdgeCodecReadsFormatV1: a value written before calls seen were kept
// decodes with Seen and Sampled 0, which the graph reads as not sampled.
func TestEdgeCodecReadsFormatV1(t *testing.T) {
	raw, err := os.ReadFile("testdata/edge-v1.hex")
	require.NoError(t, err)
	v, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	want := edge(t0, "web", "api", 40)
	want.Retries, want.Unanswered = 2, 1
	require.Equal(t, v, appendEdgeV1(nil, &want), "appendEdgeV1 writes what the old build wrote")

	var r reader
	got, err := decodeEdge(&r, t0.UnixNano(), v)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Zero(t, got.Seen)
	snap := graph.SnapshotOf(t0.Add(time.Minute), time.Minute, []graph.EdgeBucket{got})
	require.Len(t, snap.Edges, 1)
	require.False(t, snap.Edges[0].Estimated)
	require.Nil(t, snap.Edges[0].SampleRatio)
	for n := range len(v) {
		_, err := decodeEdge(&r, 0, v[:n])
		require.ErrorIs(t, err, errCorrupt, "prefix of %d bytes", n)
	}
}
