package pairing

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestPendIndexAgainstMap drives a pendIndex and a Go map with the same
// random inserts, lookups and deletions, through several doublings and
// back, and requires the same answers and the table's invariants: every
// key found from its home cell, no more than half the cells used.
func TestPendIndexAgainstMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys int // distinct keys drawn from
		// sameTrace puts every key in one trace (a sender that reuses
		// its trace id), counting trace ids up otherwise.
		sameTrace bool
	}{
		{"few keys, churn", 50, false},
		{"many keys, growth", 20_000, false},
		{"one trace", 5_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			keys := make([]key, tc.keys)
			for i := range keys {
				if !tc.sameTrace {
					binary.BigEndian.PutUint64(keys[i].trace[8:], uint64(i))
				}
				binary.BigEndian.PutUint64(keys[i].span[:], uint64(i)+1)
			}
			var entries []entry
			at := func(s int32) *entry { return &entries[s] }
			x := newPendIndex()
			want := map[key]int32{}
			for step := range 200_000 {
				k := keys[rng.IntN(len(keys))]
				h := x.hash(&k)
				got, _ := x.find(&k, h, at)
				w, ok := want[k]
				if !ok {
					w = noSlot
				}
				if got != w {
					t.Fatalf("step %d: find = %d, want %d", step, got, w)
				}
				// Grow for the first half, then mostly delete.
				del := rng.IntN(100) < 30
				if step > 100_000 {
					del = rng.IntN(100) < 70
				}
				switch {
				case ok && del:
					x.remove(h, w)
					delete(want, k)
				case !ok && !del:
					entries = append(entries, entry{key: k, self: int32(len(entries))})
					s := int32(len(entries) - 1)
					x.insert(h, s)
					want[k] = s
				}
				if x.n != len(want) {
					t.Fatalf("step %d: n = %d, want %d", step, x.n, len(want))
				}
			}
			if 2*x.n > len(x.cells) {
				t.Errorf("%d of %d cells used", x.n, len(x.cells))
			}
			used := 0
			for _, c := range x.cells {
				if c != 0 {
					used++
				}
			}
			if used != x.n {
				t.Errorf("%d cells used, n = %d", used, x.n)
			}
			for k, s := range want {
				if got, _ := x.find(&k, x.hash(&k), at); got != s {
					t.Fatalf("final: find = %d, want %d", got, s)
				}
			}
		})
	}
}

// TestPendIndexSeeded: two indexes hash the same key differently, so
// that ids chosen to collide under one seed do not under another.
func TestPendIndexSeeded(t *testing.T) {
	a, b := newPendIndex(), newPendIndex()
	same := 0
	for i := range 64 {
		var k key
		binary.BigEndian.PutUint64(k.span[:], uint64(i))
		if a.hash(&k) == b.hash(&k) {
			same++
		}
	}
	if same > 1 {
		t.Errorf("%d of 64 keys hash alike under two seeds", same)
	}
}
