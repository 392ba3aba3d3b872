package pairing

import (
	"runtime"
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on the platforms Go
// runs Linux on with 4 KiB base pages (x86-64, arm64).
const hugePage = 2 << 20

// slotMapping owns a table of slots mapped outside the Go heap. The
// mapping is released by free, or, when its owner forgets it, by a
// cleanup once the slotMapping is unreachable. Owned by one recentSpans.
type slotMapping struct {
	mem     []byte // the whole mapping, as mmap returned it
	cleanup runtime.Cleanup
}

// mapSlots returns n zeroed slots. A table of at least a huge page is
// mapped outside the Go heap and advised for transparent huge pages
// (madvise(MADV_HUGEPAGE)): each span looks up one random bucket of a
// table of tens of megabytes, and with 4 KiB pages almost every lookup
// also misses the TLB, a page walk that costs as much again (twice over
// in a virtual machine). Go's heap is not advised for huge pages, so on a
// machine whose transparent_hugepage setting is "madvise" (Debian's and
// most distributions' default) only such a mapping gets them. The slots
// hold no pointers, so the garbage collector has nothing to find there.
// A smaller table, or one the kernel refuses to map, comes from the heap
// and m is nil.
func mapSlots(n int) (slots []seenSlot, m *slotMapping) {
	size := n * int(unsafe.Sizeof(seenSlot{}))
	if size < hugePage {
		return make([]seenSlot, n), nil
	}
	// Map one huge page more than needed so that the slots can start
	// on a huge-page boundary: a 2 MiB page needs 2 MiB of aligned range.
	mem, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]seenSlot, n), nil
	}
	off := 0
	if r := int(uintptr(unsafe.Pointer(&mem[0])) % hugePage); r != 0 {
		off = hugePage - r
	}
	// A kernel without transparent huge pages refuses the advice: the
	// mapping still works with small pages.
	_ = syscall.Madvise(mem[off:off+size], syscall.MADV_HUGEPAGE)
	m = &slotMapping{mem: mem}
	m.cleanup = runtime.AddCleanup(m, func(mem []byte) { _ = syscall.Munmap(mem) }, mem)
	return unsafe.Slice((*seenSlot)(unsafe.Pointer(&mem[off])), n), m
}

// free unmaps the table now. The slots must not be used afterwards. A nil
// m (a table on the heap) is left to the garbage collector.
func (m *slotMapping) free() {
	if m == nil || m.mem == nil {
		return
	}
	m.cleanup.Stop()
	mem := m.mem
	m.mem = nil
	_ = syscall.Munmap(mem)
}
