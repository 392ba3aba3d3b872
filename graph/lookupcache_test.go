package graph

import (
	"fmt"
	"testing"
)

// TestLookupCacheCollisions: edges and peer candidates whose keys share a
// slot of the lookup caches, looked up in turn, each get their own index
// (the slot names the other key half of the time).
func TestLookupCacheCollisions(t *testing.T) {
	g, _, _ := newTestGraph(t, Options{})
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.node(NodeKey{Kind: NodeService, Name: "a"}, 0)
	// Edges from a to nodes whose keys share edge a->b0's slot.
	var dsts []int32
	for i := 0; len(dsts) < 3; i++ {
		d := g.node(NodeKey{Kind: NodeService, Name: fmt.Sprint("b", i)}, 0)
		if len(dsts) > 0 && edgeCacheHash(&edgeKey{src: a, dst: d})%lookupCacheSize != edgeCacheHash(&edgeKey{src: a, dst: dsts[0]})%lookupCacheSize {
			continue
		}
		dsts = append(dsts, d)
	}
	var peers []NodeKey
	for i := 0; len(peers) < 3; i++ {
		k := NodeKey{Kind: NodeExternal, Name: fmt.Sprintf("10.0.%d.%d:8080", i/200, i%200)}
		if len(peers) > 0 && nodeCacheHash(&k)%lookupCacheSize != nodeCacheHash(&peers[0])%lookupCacheSize {
			continue
		}
		peers = append(peers, k)
	}
	edges := map[int32]*edgeState{}
	cands := map[string]int32{}
	for round := range 4 {
		for _, d := range dsts {
			e := g.edge(a, d, ProtocolHTTP, "")
			if e.key.dst != d {
				t.Fatalf("round %d: edge to %d is %+v", round, d, e.key)
			}
			if first, ok := edges[d]; ok && first != e {
				t.Fatalf("round %d: edge to %d changed", round, d)
			}
			edges[d] = e
		}
		for _, k := range peers {
			p := g.peerCandidate(k)
			if g.peerIx[p] != k {
				t.Fatalf("round %d: candidate of %v is %v", round, k, g.peerIx[p])
			}
			if first, ok := cands[k.Name]; ok && first != p {
				t.Fatalf("round %d: candidate of %v changed", round, k)
			}
			cands[k.Name] = p
		}
	}
}
