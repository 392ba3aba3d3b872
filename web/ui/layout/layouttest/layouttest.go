// Package layouttest is rectangle geometry for tests of layouts and of the
// maps drawn from them: which boxes overlap, which lie inside others. It is
// plain functions on values, safe for concurrent use.
package layouttest

import (
	"cmp"
	"fmt"
	"slices"
)

// Box is a rectangle: its top-left corner and size, and what it stands for.
type Box struct {
	ID         string
	X, Y, W, H float64
}

func (b Box) String() string {
	return fmt.Sprintf("%s [%.1f,%.1f %.1fx%.1f]", b.ID, b.X, b.Y, b.W, b.H)
}

// eps is how close two edges may come and still only touch: layouts are
// rounded to a hundredth of a point and maps drawn to a tenth.
const eps = 0.1

// Overlap reports whether a and b share area; boxes that only touch do not.
func Overlap(a, b Box) bool {
	return a.X < b.X+b.W-eps && b.X < a.X+a.W-eps && a.Y < b.Y+b.H-eps && b.Y < a.Y+a.H-eps
}

// Overlaps returns every overlapping pair of boxes, the left one first,
// sweeping along x.
func Overlaps(bs []Box) [][2]Box {
	s := slices.Clone(bs)
	slices.SortFunc(s, func(a, b Box) int { return cmp.Compare(a.X, b.X) })
	var out [][2]Box
	for i := range s {
		for j := i + 1; j < len(s) && s[j].X < s[i].X+s[i].W; j++ {
			if Overlap(s[i], s[j]) {
				out = append(out, [2]Box{s[i], s[j]})
			}
		}
	}
	return out
}

// CrossOverlaps returns every pair of a box of as and a box of bs that
// overlap.
func CrossOverlaps(as, bs []Box) [][2]Box {
	var out [][2]Box
	for _, a := range as {
		for _, b := range bs {
			if Overlap(a, b) {
				out = append(out, [2]Box{a, b})
			}
		}
	}
	return out
}

// Contains reports whether inner lies inside outer.
func Contains(outer, inner Box) bool {
	return inner.X >= outer.X-eps && inner.Y >= outer.Y-eps && inner.X+inner.W <= outer.X+outer.W+eps && inner.Y+inner.H <= outer.Y+outer.H+eps
}
