package otlp

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
)

func TestRequestPool(t *testing.T) {
	var p requestPool
	for _, tc := range []struct{ n, cap int }{
		{0, 4 << 10}, {1, 4 << 10}, {4 << 10, 4 << 10}, {4<<10 + 1, 8 << 10},
		{126_000, 128 << 10}, {16 << 20, 16 << 20}, {16<<20 + 1, 16<<20 + 1},
	} {
		b := p.Get(tc.n)
		require.Len(t, *b, tc.n)
		require.Equal(t, tc.cap, cap(*b), "Get(%d)", tc.n)
		p.Put(b)
	}
	p.Put(new([]byte))         // not the pool's: ignored
	p.Put(&[]byte{1, 2, 3})    // nor this
	b := make([]byte, 0, 5000) // nor a capacity between classes
	p.Put(&b)
	require.Equal(t, 8<<10, cap(*p.Get(5000)))

	// A request that arrived in several buffers is copied whole over a
	// dirty buffer.
	var data mem.BufferSlice
	var want []byte
	for i := range 3 {
		chunk := make([]byte, 3000)
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		want = append(want, chunk...)
		data = append(data, mem.SliceBuffer(chunk))
	}
	dirty := p.Get(len(want))
	for i := range *dirty {
		(*dirty)[i] = 0xff
	}
	p.Put(dirty)
	buf := data.MaterializeToBuffer(&p)
	require.Equal(t, want, buf.ReadOnlyData())
	buf.Free()
}
