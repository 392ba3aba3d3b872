package pairing

import (
	"testing"
	"unsafe"
)

// TestMapSlots: a table of a huge page or more is mapped outside the
// heap, zeroed, starts on a huge-page boundary and survives a grow that
// frees it; a smaller one comes from the heap.
func TestMapSlots(t *testing.T) {
	small, m := mapSlots(minSeenSlots)
	if m != nil || len(small) != minSeenSlots {
		t.Fatalf("a %d-slot table: mapping %v, %d slots; want the heap", minSeenSlots, m, len(small))
	}
	n := hugePage / int(unsafe.Sizeof(seenSlot{})) * 2
	slots, m := mapSlots(n)
	if m == nil {
		t.Skip("the kernel refused an anonymous mapping")
	}
	if len(slots) != n {
		t.Fatalf("%d slots, want %d", len(slots), n)
	}
	if a := uintptr(unsafe.Pointer(&slots[0])); a%hugePage != 0 {
		t.Errorf("slots start at %#x, not on a huge-page boundary", a)
	}
	for i := range slots {
		if slots[i] != (seenSlot{}) {
			t.Fatalf("slot %d not zero", i)
		}
		slots[i].at = uint32(i) + 1
	}
	m.free()
	m.free() // a second free does nothing

	// A table that grows from the heap through mapped sizes keeps every
	// span it held.
	r := newRecentSpans(1<<20, 100, 0)
	for len(r.slots) < 1<<15 {
		r.grow()
	}
	spans := make([]SpanRef, 10_000)
	for i := range spans {
		s := &spans[i]
		s.Trace[0], s.Trace[1], s.Trace[2] = byte(i), byte(i>>8), byte(i>>16)
		s.Span[7] = 1
		r.remember(&s.Trace, s.Span, KindServer, 1, false, 0, 1e9)
	}
	held := 0
	for i := range spans {
		if r.find(&spans[i].Trace, spans[i].Span, 0) != nil {
			held++
		}
	}
	if held < len(spans)*99/100 {
		t.Fatalf("a table of %d slots holds %d of %d spans", len(r.slots), held, len(spans))
	}
	for r.grow(); len(r.slots) < 1<<20; r.grow() {
	}
	if r.mapping == nil {
		t.Fatalf("a %d-slot table is not mapped", len(r.slots))
	}
	after := 0
	for i := range spans {
		if r.find(&spans[i].Trace, spans[i].Span, 0) != nil {
			after++
		}
	}
	if after != held {
		t.Errorf("%d spans held after growing to %d slots, %d before", after, len(r.slots), held)
	}
}
