package graph

// OffHeapBytes returns the bytes g holds outside the Go heap (the table of
// recent spans when it is mapped for huge pages), which runtime.MemStats
// does not see. For tests and benchmarks.
func OffHeapBytes(g *Graph) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.store.Stats().OffHeapBytes
}
