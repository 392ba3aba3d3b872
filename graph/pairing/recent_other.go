//go:build !linux

package pairing

// slotMapping is nil off Linux: every table lives on the Go heap.
type slotMapping struct{}

// mapSlots returns n zeroed slots from the Go heap.
func mapSlots(n int) ([]seenSlot, *slotMapping) { return make([]seenSlot, n), nil }

// free does nothing: the garbage collector frees the heap's tables.
func (m *slotMapping) free() {}
