package graph

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// latencyIndex finds the bucket of a latency sketch without a logarithm:
// a table of the bucket index of every cell of float64 values that share
// an exponent and the top latencyIndexBits bits of the mantissa, for the
// latencies worth a table (2^-20 to 2^28 ms: about a nanosecond to three
// days). A cell that a bucket boundary cuts holds noLatencyIndex, and its
// values, like those outside the table, take the mapping's own Index: the
// index is the mapping's in every case (the mapping's logarithm is
// monotonic, so a cell whose first and last values share an index maps all
// its values there), so sketches are what DDSketch.Add makes and merge
// with any other. math.Log was 3% of the CPU at 800k spans/s. Read-only
// once built; safe for concurrent use.
type latencyIndex struct {
	m     mapping.IndexMapping
	cells []int32
}

const (
	latencyIndexBits = 8
	latencyMinExp    = -20
	latencyMaxExp    = 28 // exclusive
	noLatencyIndex   = math.MinInt32
)

func newLatencyIndex(m mapping.IndexMapping) *latencyIndex {
	const perExp = 1 << latencyIndexBits
	x := &latencyIndex{m: m, cells: make([]int32, (latencyMaxExp-latencyMinExp)*perExp)}
	for e := latencyMinExp; e < latencyMaxExp; e++ {
		for c := range perExp {
			lo := uint64(e+1023)<<52 | uint64(c)<<(52-latencyIndexBits)
			hi := lo | (1<<(52-latencyIndexBits) - 1)
			i, j := m.Index(math.Float64frombits(lo)), m.Index(math.Float64frombits(hi))
			cell := int32(noLatencyIndex)
			if i == j && i > noLatencyIndex && i <= math.MaxInt32 {
				cell = int32(i)
			}
			x.cells[(e-latencyMinExp)*perExp+c] = cell
		}
	}
	return x
}

// index returns the mapping's index of v, a positive latency in ms; ok is
// false when the table does not know it.
func (x *latencyIndex) index(v float64) (i int, ok bool) {
	b := math.Float64bits(v)
	e := int(b>>52) - 1023 // v is positive: no sign bit
	if e < latencyMinExp || e >= latencyMaxExp {
		return 0, false
	}
	c := x.cells[(e-latencyMinExp)<<latencyIndexBits|int(b>>(52-latencyIndexBits))&(1<<latencyIndexBits-1)]
	return int(c), c != noLatencyIndex
}

// add records nanos (non-negative) into sk as milliseconds, as sk.Add
// would.
func (x *latencyIndex) add(sk *ddsketch.DDSketch, nanos int64) {
	v := float64(nanos) / 1e6
	if i, ok := x.index(v); ok && v > 0 {
		sk.GetPositiveValueStore().Add(i)
		return
	}
	_ = sk.Add(v) // non-negative finite: cannot fail
}

// newSketch returns an empty latency sketch of x's mapping.
func (x *latencyIndex) newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketchFromStoreProvider(x.m, store.BufferedPaginatedStoreConstructor)
}
