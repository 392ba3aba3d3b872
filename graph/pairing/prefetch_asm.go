//go:build amd64 || arm64

package pairing

import "unsafe"

// prefetch2 asks the CPU to bring the two cache lines at addr (128 bytes)
// into its caches, and returns at once: a prefetch, unlike a load, does
// not hold up the instructions after it until the memory answers, so a
// loop of them has the CPU fetch as many lines at a time as it can track.
// It never faults, whatever addr. Implemented in prefetch_$GOARCH.s.
//
//go:noescape
func prefetch2(addr unsafe.Pointer)

// prefetchBucket starts fetching bucket b and returns 0.
func prefetchBucket(b []seenSlot) uint32 {
	prefetch2(unsafe.Pointer(&b[0]))
	return 0
}
