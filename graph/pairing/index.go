package pairing

import (
	"encoding/binary"
	"math/rand/v2"
)

// pendIndex maps the key of a pending half-edge to its slot in the slab:
// an open-addressing table with linear probing, in place of a Go map,
// whose hashing of a 24-byte key (aeshash over the whole key, then a probe
// of the map's groups) was the largest single cost of pairing a span. A
// cell holds the low 32 bits of the key's hash and the slot plus one (0:
// empty), so a probe compares hashes without reading the entry, and
// growing or deleting (backward shift, no tombstones) re-places cells
// without reading entries either.
//
// The hash is keyed by a random seed per index: ids come from senders,
// and without the seed a sender could choose ids that all land in one
// run of the table. The table keeps at most half its cells used; it
// doubles as the store fills and never shrinks, so its size follows the
// most half-edges held at once, itself bounded by Options.MaxItems (8 bytes
// per cell, 16-32 per half-edge held). Owned by one slab.
type pendIndex struct {
	cells []uint64
	mask  uint32
	n     int
	seed  uint64
}

// minPendCells is the size a pendIndex starts at.
const minPendCells = 1 << 10

func newPendIndex() pendIndex {
	return pendIndex{cells: make([]uint64, minPendCells), mask: minPendCells - 1, seed: rand.Uint64()}
}

// hash returns k's hash under the index's seed. The span id and the
// trace id's first half are mixed apart so that the two can run at once;
// no choice of ids cancels out without the seed.
func (x *pendIndex) hash(k *key) uint32 {
	a := mix64(binary.LittleEndian.Uint64(k.trace[:8]) ^ x.seed)
	c := mix64(binary.LittleEndian.Uint64(k.span[:]) ^ x.seed)
	return uint32(mix64(a ^ c ^ binary.LittleEndian.Uint64(k.trace[8:])))
}

func cell(h uint32, slot int32) uint64 { return uint64(h)<<32 | uint64(uint32(slot)+1) }

func cellSlot(c uint64) int32 { return int32(uint32(c)) - 1 }

func cellHash(c uint64) uint32 { return uint32(c >> 32) }

// find returns the slot of k, or noSlot, and the cell where the search
// ended: k's own, or the empty cell where k would go. at reads the entry
// of a slot.
func (x *pendIndex) find(k *key, h uint32, at func(int32) *entry) (slot int32, pos uint32) {
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		c := x.cells[i]
		if c == 0 {
			return noSlot, i
		}
		if cellHash(c) == h {
			if s := cellSlot(c); at(s).key == *k {
				return s, i
			}
		}
	}
}

// insert records slot under hash h, for a key the index does not hold.
func (x *pendIndex) insert(h uint32, slot int32) {
	if 2*(x.n+1) > len(x.cells) {
		x.grow()
	}
	i := h & x.mask
	for x.cells[i] != 0 {
		i = (i + 1) & x.mask
	}
	x.cells[i] = cell(h, slot)
	x.n++
}

// grow doubles the table.
func (x *pendIndex) grow() {
	old := x.cells
	x.cells = make([]uint64, 2*len(old))
	x.mask = uint32(len(x.cells) - 1)
	for _, c := range old {
		if c == 0 {
			continue
		}
		i := cellHash(c) & x.mask
		for x.cells[i] != 0 {
			i = (i + 1) & x.mask
		}
		x.cells[i] = c
	}
}

// remove forgets slot, recorded under hash h.
func (x *pendIndex) remove(h uint32, slot int32) {
	for i := h & x.mask; x.cells[i] != 0; i = (i + 1) & x.mask {
		if cellSlot(x.cells[i]) == slot {
			x.deleteAt(i)
			return
		}
	}
}

// deleteAt empties cell pos and moves back the cells after it that would
// otherwise no longer be found (a probe stops at the first empty cell).
func (x *pendIndex) deleteAt(pos uint32) {
	x.n--
	hole := pos
	for i := (pos + 1) & x.mask; ; i = (i + 1) & x.mask {
		c := x.cells[i]
		if c == 0 {
			break
		}
		// c may fill the hole if its home cell is not in (hole, i]:
		// a probe for it starts at home and passes the hole.
		if home := cellHash(c) & x.mask; (i-home)&x.mask >= (i-hole)&x.mask {
			x.cells[hole] = c
			hole = i
		}
	}
	x.cells[hole] = 0
}
