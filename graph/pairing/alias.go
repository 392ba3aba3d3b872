package pairing

// A client span names the peer it calls as its instrumentation sees it (a
// host and port, a peer.service), not the service that answers there. When
// a server span answers it, the store learns that calls from that caller
// to that peer candidate reach that service (an alias), so that a later
// call that goes unanswered is charged to the service, not to a virtual
// node named after the address.

// aliasKey is a caller and a peer candidate it addresses; caller -1 stands
// for every caller.
type aliasKey struct{ caller, peer int32 }

// alias is what a caller's calls to a peer candidate were answered by.
type alias struct {
	callee int32 // the service node, or aliasAmbiguous
	// disagree: a call was answered by a server span kept at another
	// sampling weight than its client span: the samplers of caller and
	// callee decide independently, so a kept client span may lose its
	// server span to sampling.
	disagree bool
}

// aliasAmbiguous marks a caller's peer answered by more than one service
// (a gateway routing by path, an address reused by another service).
const aliasAmbiguous = -2

// aliasOf returns the service node that answers calls from caller to peer
// candidate p: the one this caller has seen answer there, else the one
// every caller saw answer there; a negative value when none or more than
// one did.
func (s *Store) aliasOf(caller, p int32) int32 {
	if p < 0 || int(p) >= len(s.answered) || !s.answered[p] {
		return -1 // nobody answered there: no map lookup on the hot path
	}
	if a, ok := s.aliases[aliasKey{caller, p}]; ok {
		return a.callee
	}
	if a, ok := s.aliases[aliasKey{-1, p}]; ok {
		return a.callee
	}
	return -1
}

// samplersDisagree reports whether the samplers of caller and callee are
// known not to agree (consistent, parent-based sampling keeps or drops a
// trace's spans together): a pair kept at two weights, or a sampled
// server span of callee whose caller's span was not kept. Then a kept
// client span without its server span is most likely one whose server
// span was sampled out.
func (s *Store) samplersDisagree(caller, p, callee int32) bool {
	return s.aliases[aliasKey{caller, p}].disagree || s.orphaned[callee]
}

// learnAlias records that calls from node caller addressed to peer
// candidate p were answered by service node svc, for that caller and for
// every caller; disagree says the pair was kept at two sampling weights.
// Per caller first, because one address (localhost through a sidecar, a
// gateway routing by path, a reused pod IP) leads different callers to
// different services; an address that several services answered is no
// alias for callers that have not seen it answered themselves. A
// candidate that stands for many peers teaches nothing.
func (s *Store) learnAlias(caller, p, svc int32, disagree bool) {
	if p < 0 || caller == svc || s.peers.ManyPeers(p) {
		return
	}
	for len(s.answered) <= int(p) {
		s.answered = append(s.answered, false)
	}
	s.answered[p] = true
	for _, k := range [2]aliasKey{{caller, p}, {-1, p}} {
		a, ok := s.aliases[k]
		switch {
		case !ok:
			if len(s.aliases) >= s.maxAliases {
				s.dropped[DropAliasesFull]++
				return
			}
			a.callee = svc
		case a.callee != svc && a.callee != aliasAmbiguous:
			a.callee = aliasAmbiguous
		}
		a.disagree = a.disagree || disagree
		s.aliases[k] = a
	}
}
