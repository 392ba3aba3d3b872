package graph

// lookupCache remembers, by a cheap hash of a key, the index the key last
// had in one of the graph's string-keyed maps (edges, peer candidates),
// so that the key's next lookup compares it with the entry at that index
// instead of hashing it whole (strings and all) for the map: the two map
// lookups of every client span were 7% of the CPU of pairing
// telemetrygen-shaped traffic. A slot holds an index plus one (0: empty);
// what it names is checked against the key on every use, so renumbering
// and retiring entries (retire.go) need not touch it: a stale slot is a
// miss. Fixed size. Owned by the Graph, under its lock.
type lookupCache [lookupCacheSize]int32

const lookupCacheSize = 256

func (c *lookupCache) get(h uint32) int32 { return c[h%lookupCacheSize] - 1 }

func (c *lookupCache) put(h uint32, i int32) { c[h%lookupCacheSize] = i + 1 }

// edgeCacheHash is the lookupCache hash of an edge key: the group, a
// consumer group, counts by its length alone.
func edgeCacheHash(k *edgeKey) uint32 {
	h := uint32(k.src)*0x9e3779b1 ^ uint32(k.dst)*0x85ebca6b ^ uint32(k.proto)*0xc2b2ae35 ^ uint32(len(k.group))
	return h ^ h>>15 ^ h>>23
}

// nodeCacheHash is the lookupCache hash of a peer candidate's key: its
// kind, lengths, and the bytes where names of one kind differ most (the
// ends, where ports and numbered hosts differ, and the middle).
func nodeCacheHash(k *NodeKey) uint32 {
	h := uint32(k.Kind)*0x9e3779b1 ^ uint32(len(k.Name))*0x85ebca6b ^ uint32(len(k.Group))*0xc2b2ae35
	if n := len(k.Name); n > 0 {
		h ^= uint32(k.Name[n-1]) | uint32(k.Name[n/2])<<8 | uint32(k.Name[0])<<16
		if n > 2 {
			h ^= uint32(k.Name[n-2]) << 24
		}
	}
	h *= 0x27d4eb2f
	return h ^ h>>15 ^ h>>23
}
