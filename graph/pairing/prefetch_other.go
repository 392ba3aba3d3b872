//go:build !amd64 && !arm64

package pairing

// prefetchBucket reads bucket b's two cache lines (no prefetch
// instruction is reachable from Go here) and returns a value the caller
// must keep, so that the loads are not optimised away.
func prefetchBucket(b []seenSlot) uint32 {
	return b[0].at + b[seenWays-1].at
}
