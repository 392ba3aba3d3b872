package graph

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLatencyIndexIsTheMappings: the table gives the mapping's own index
// for the values at both ends of every cell, one ULP beyond them, and a
// million random latencies over the table's range and beyond it; and a
// sketch filled through it holds the same bins as one filled by
// DDSketch.Add.
func TestLatencyIndexIsTheMappings(t *testing.T) {
	m := newLatencyMapping()
	x := newLatencyIndex(m)
	check := func(v float64) {
		t.Helper()
		if i, ok := x.index(v); ok && i != m.Index(v) {
			t.Fatalf("index(%v) = %d, the mapping's %d", v, i, m.Index(v))
		}
	}
	known := 0
	for e := latencyMinExp; e < latencyMaxExp; e++ {
		for c := range 1 << latencyIndexBits {
			lo := uint64(e+1023)<<52 | uint64(c)<<(52-latencyIndexBits)
			hi := lo | (1<<(52-latencyIndexBits) - 1)
			for _, b := range []uint64{lo - 1, lo, lo + 1, hi - 1, hi, hi + 1} {
				check(math.Float64frombits(b))
			}
			if _, ok := x.index(math.Float64frombits(lo)); ok {
				known++
			}
		}
	}
	if share := float64(known) / float64(len(x.cells)); share < 0.7 {
		t.Errorf("the table knows %.0f%% of its cells, want most", 100*share)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		check(math.Exp2(rng.Float64()*60 - 25))
	}
	viaTable, viaAdd := x.newSketch(), x.newSketch()
	for range 100_000 {
		nanos := int64(rng.ExpFloat64() * float64(20*time.Millisecond))
		if rng.IntN(100) == 0 {
			nanos = rng.Int64N(3) // zero and tiny latencies
		}
		x.add(viaTable, nanos)
		if err := viaAdd.Add(float64(nanos) / 1e6); err != nil {
			t.Fatal(err)
		}
	}
	a, b := viaTable.ToProto(), viaAdd.ToProto()
	if a.String() != b.String() {
		t.Errorf("sketches differ:\n%v\n%v", a, b)
	}
}
