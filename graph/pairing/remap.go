package pairing

// The store refers to its caller's nodes, edges and peer candidates by
// index (pending halves, waiting consumers, aliases, the span table). When
// the caller retires some and renumbers the rest, it asks which are still
// referenced (Referenced), keeps those, and has the store rewrite its
// indices (Remap).

// Referenced marks, in nodes, edges and peers (indexed as the caller
// numbers them), what a pending half-edge or a waiting consumer refers
// to: those must not be retired, however old.
func (s *Store) Referenced(nodes, edges, peers []bool) {
	keep := func(keep []bool, i int32) {
		if i >= 0 {
			keep[i] = true
		}
	}
	for i := s.half.head; i != noSlot; {
		en := s.half.at(i)
		if en.has != 0 { // else consumers wait alone: h is not set
			keep(nodes, en.h.Node)
		}
		switch {
		case en.has&hasProducer != 0:
			keep(nodes, en.h.Peer)
		case en.has&hasClient != 0:
			keep(peers, en.h.Peer)
		}
		for _, w := range s.half.waiting(en) {
			keep(nodes, w.Node)
			keep(edges, w.Edge)
		}
		i = en.next
	}
}

// Remap rewrites every node, edge and peer index the store holds through
// the remaps of the caller's renumbering (old index -> new, -1: retired):
// pending half-edges and their waiters, aliases, the nodes known to answer
// sampled-out calls and the span table. Aliases to or from a retired node
// or peer are forgotten, and so are the recent spans of retired nodes:
// they are older than the caller's idle horizon, far past their own.
func (s *Store) Remap(nodes, edges, peers []int32) {
	for i := s.half.head; i != noSlot; {
		en := s.half.at(i)
		if en.has != 0 {
			en.h.Node = remapIndex(nodes, en.h.Node)
		}
		switch {
		case en.has&hasProducer != 0:
			en.h.Peer = remapIndex(nodes, en.h.Peer)
		case en.has&hasClient != 0:
			en.h.Peer = remapIndex(peers, en.h.Peer)
		}
		ws := s.half.waiting(en)
		for j := range ws {
			ws[j].Node, ws[j].Edge = remapIndex(nodes, ws[j].Node), remapIndex(edges, ws[j].Edge)
		}
		i = en.next
	}

	aliases := make(map[aliasKey]alias, len(s.aliases))
	s.answered = s.answered[:0]
	for k, a := range s.aliases {
		p := remapIndex(peers, k.peer)
		caller := k.caller
		if caller >= 0 {
			caller = remapIndex(nodes, caller)
		}
		callee := a.callee
		if callee >= 0 {
			callee = remapIndex(nodes, callee)
		}
		if p < 0 || caller < 0 && k.caller >= 0 || callee < 0 && a.callee >= 0 {
			continue
		}
		a.callee = callee
		aliases[aliasKey{caller, p}] = a
		for len(s.answered) <= int(p) {
			s.answered = append(s.answered, false)
		}
		s.answered[p] = true
	}
	s.aliases = aliases

	orphaned := make(map[int32]bool, len(s.orphaned))
	for n := range s.orphaned {
		if m := remapIndex(nodes, n); m >= 0 {
			orphaned[m] = true
		}
	}
	s.orphaned = orphaned
	s.recent.remapNodes(nodes)
}

// remapIndex returns the new index of i (-1 stays -1).
func remapIndex(remap []int32, i int32) int32 {
	if i < 0 || int(i) >= len(remap) {
		return -1
	}
	return remap[i]
}
