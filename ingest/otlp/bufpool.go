package otlp

import (
	"math/bits"
	"sync"
)

// Size classes of requestPool: powers of two from 4 KiB to 16 MiB.
const (
	minPoolShift = 12
	maxPoolShift = 24
	numPoolSizes = maxPoolShift - minPoolShift + 1
)

// requestPool is the gRPC codec's pool of buffers for whole requests
// (a grpc/mem.BufferPool), in power-of-two size classes, handed out
// without clearing: the codec copies a request over the buffer, every byte
// of it. gRPC's own tiered pools clear a buffer's whole capacity on every
// Get, 512 KiB for a 126 KB request in pdata's tiers: 1.8% of the
// collector's CPU at full load. A buffer is less than twice the size of the
// request it holds.
type requestPool struct {
	sizes [numPoolSizes]sync.Pool // of *[]byte with capacity 1 << (minPoolShift + class)
}

// poolClass returns the size class of a buffer of n bytes, -1 above the
// largest.
func poolClass(n int) int {
	if n > 1<<maxPoolShift {
		return -1
	}
	if n <= 1<<minPoolShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minPoolShift
}

// Get returns a buffer of length n whose bytes are whatever the pool's
// last user left in them.
func (p *requestPool) Get(n int) *[]byte {
	c := poolClass(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.sizes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(minPoolShift+c))
	return &b
}

// Put returns a buffer Get handed out; others are left to the garbage
// collector.
func (p *requestPool) Put(b *[]byte) {
	c := poolClass(cap(*b))
	if c < 0 || cap(*b) != 1<<(minPoolShift+c) {
		return
	}
	p.sizes[c].Put(b)
}
