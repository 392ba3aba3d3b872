package incident

import (
	"cmp"
	"slices"
	"strings"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// sloJoin places the slo_burn findings of one tick (detect.SLOBurn) in
// the union-find over the tick's firing findings. An SLO burning is what
// the users of an entry point feel, not a fault of its own: it joins the
// incident of a finding on its entry point's path (the oldest, when
// several are), and never connects two incidents that are otherwise
// apart, so that two unrelated faults behind one entry point stay two
// incidents. A burn with no such finding is an incident of its own,
// together with the burns of other entry points that one anomalous node
// explains.
type sloJoin struct {
	is      []bool
	causeAt map[int32][]int // anomalous candidate -> slo findings
}

func newSLOJoin(n int) *sloJoin { return &sloJoin{is: make([]bool, n), causeAt: map[int32][]int{}} }

// note records that finding i is an SLO burn, with its candidates.
func (s *sloJoin) note(i int, cands map[int32]string, an []anomaly) {
	s.is[i] = true
	for c := range cands {
		if an[c].score >= groupAnomaly {
			s.causeAt[c] = append(s.causeAt[c], i)
		}
	}
}

// join unions each SLO burn not yet with another kind of finding (the
// other findings' unions are done) with the oldest finding whose subject
// starts on its entry point's path, then the burns left alone that one
// anomalous node explains.
func (s *sloJoin) join(uf unionFind, w *walker, entry func(int) int32, topAt map[int32][]int) {
	withOthers := func() map[int]bool {
		m := map[int]bool{}
		for i := range s.is {
			if !s.is[i] {
				m[uf.find(i)] = true
			}
		}
		return m
	}
	others := withOthers()
	for i, isSLO := range s.is {
		if !isSLO || others[uf.find(i)] {
			continue
		}
		best := -1
		for v := range w.downstream(entry(i)) {
			for _, j := range topAt[v] {
				if r := uf.find(j); best < 0 || r < best {
					best = r
				}
			}
		}
		if best >= 0 {
			uf.union(i, best)
		}
	}
	others = withOthers()
	for _, is := range s.causeAt {
		for _, i := range is[1:] {
			if !others[uf.find(is[0])] && !others[uf.find(i)] {
				uf.union(is[0], i)
			}
		}
	}
}

// burning adds to an open incident's impact the objectives its slo_burn
// findings say burn, on their entry point's row (made when the entry's
// figures alone did not move enough to list it).
func (tr *Tracker) burning(t *topo, ef []edgeFeat, blaster *detect.Blaster, inc *tracked, byID map[string]*finding.Finding) {
	var rows map[string]int
	for _, id := range inc.order {
		m := inc.members[id]
		f := byID[id]
		if m.kind != finding.KindSLOBurn || !m.firing || f == nil {
			continue
		}
		slos := sloImpacts(f)
		if len(slos) == 0 {
			continue
		}
		if rows == nil {
			rows = map[string]int{}
			for i, x := range inc.inc.Impact {
				rows[x.EntryID] = i
			}
		}
		i, ok := rows[f.Subject.NodeID]
		if !ok {
			i = len(inc.inc.Impact)
			rows[f.Subject.NodeID] = i
			inc.inc.Impact = append(inc.inc.Impact, tr.entryImpact(t, ef, blaster, inc, f.Subject))
		}
		x := &inc.inc.Impact[i]
		x.SLOs = append(slices.Clone(x.SLOs), slos...)
		slices.SortFunc(x.SLOs, func(a, b finding.SLOImpact) int {
			return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(b.BurnRate, a.BurnRate), strings.Compare(a.Objective, b.Objective))
		})
	}
	if rows == nil {
		return
	}
	slices.SortStableFunc(inc.inc.Impact, func(a, b finding.Impact) int {
		// burning entries first, then as assess orders them
		return cmp.Compare(min(len(b.SLOs), 1), min(len(a.SLOs), 1))
	})
}

// entryImpact is the impact row of an entry point an SLO finding names:
// its figures before and now, and the share of its traffic that reaches
// the first root cause.
func (tr *Tracker) entryImpact(t *topo, ef []edgeFeat, blaster *detect.Blaster, inc *tracked, sub finding.Subject) finding.Impact {
	out := finding.Impact{Entry: sub.Node, EntryID: sub.NodeID}
	if top, ok := inc.inc.TopCause(); ok {
		if top.NodeID == sub.NodeID {
			out.Share = 1
		} else if br := blaster.Radius(finding.Subject{NodeID: top.NodeID}); br != nil {
			for _, a := range br.EntryPoints {
				if a.NodeID == sub.NodeID {
					out.Share = round(a.Share, 4)
				}
			}
		}
	}
	for _, x := range entries(t, ef) {
		if t.nodes[x.node].ID != sub.NodeID {
			continue
		}
		b := tr.base.peek(entryKey(sub.NodeID))
		errUsual, _ := b.usualOf(mEdgeErr, tr.o.MinSamples)
		p95Usual, _ := b.usualOf(mEdgeP95, tr.o.MinSamples)
		if x.req > 0 {
			out.ErrorRatio.Now = round(x.err/x.req, 4)
		}
		out.ErrorRatio.Before, out.P95Ms = round(errUsual, 4), finding.Before{Before: round(p95Usual, 1), Now: round(x.p95, 1)}
		out.RatePerS = round(x.rate, 3)
	}
	return out
}

// sloImpacts reads the burning objectives from an slo_burn finding's
// evidence (detect.SLOBurn; as decoded from JSON after a restart too).
func sloImpacts(f *finding.Finding) []finding.SLOImpact {
	list, _ := f.Evidence["objectives"].([]any)
	var out []finding.SLOImpact
	for _, v := range list {
		o, ok := v.(map[string]any)
		if !ok {
			continue
		}
		s := finding.SLOImpact{FindingID: f.ID}
		s.Objective, _ = o["name"].(string)
		s.SLI, _ = o["sli"].(string)
		s.Windows, _ = o["windows"].(string)
		s.Target, _ = o["target"].(float64)
		s.BurnRate, _ = o["burn_rate"].(float64)
		s.BurnRateShort, _ = o["burn_rate_short"].(float64)
		s.BudgetRemaining, _ = o["budget_remaining"].(float64)
		if sev, ok := o["severity"].(string); !ok || s.Severity.UnmarshalText([]byte(sev)) != nil {
			s.Severity = f.Severity
		}
		out = append(out, s)
	}
	return out
}
