package ui

import (
	"strings"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Roles a node or an edge plays in the findings the map is drawn for.
const (
	roleSubject = "subject" // what a finding is about
	roleBlast   = "blast"   // in a finding's blast radius (or between such nodes)
	roleDim     = "dim"     // touched by no firing finding while one fires
)

// incident is what the findings a map is drawn for touch: their subjects
// and blast radii, each with the worst severity of the findings touching
// it. It is built per map and not shared.
type incident struct {
	// Findings is how many findings it was built from.
	Findings int
	// Subjects are subject nodes: a node finding's node, and the target of
	// an edge finding (the callee that fails, the consumer that lags).
	Subjects map[string]finding.Severity
	// SubjectEdges are edge findings' edges, by edge id.
	SubjectEdges map[string]finding.Severity
	// Blast are the nodes upstream of a subject whose traffic passes
	// through it (an edge finding's source among them).
	Blast map[string]finding.Severity
	// Causes are an incident's first root cause (a node), when the view
	// names an incident: drawn as a subject and marked the cause, even
	// when it raised no finding of its own.
	Causes map[string]finding.Severity
	// Missing is set when the view asked for one finding, or one
	// incident, that is not among those known.
	Missing bool
	// NotFiring is set when the view asked for one finding that is not
	// firing, or one incident that is resolved (drawn all the same).
	NotFiring bool
	// Of is the incident the view names, if it does.
	Of *finding.Incident
}

// incidentOf collects what the findings of view v touch: every firing
// finding, the one v.Incident names, or those of the incident it names
// (an id of incs, "inc-..."), with that incident's first root cause.
// edges are the graph's edges (an edge finding's target is found through
// them).
func incidentOf(fs []finding.Finding, v View, edges []graph.Edge, incs []finding.Incident) *incident {
	inc := &incident{Subjects: map[string]finding.Severity{}, SubjectEdges: map[string]finding.Severity{}, Blast: map[string]finding.Severity{}, Causes: map[string]finding.Severity{}}
	var members map[string]bool // the findings of the incident the view names
	if strings.HasPrefix(v.Incident, incidentPrefix) {
		members = map[string]bool{}
		for i := range incs {
			if incs[i].ID == v.Incident {
				inc.Of = &incs[i]
				for _, id := range incs[i].Findings {
					members[id] = true
				}
			}
		}
		if inc.Of == nil {
			inc.Missing = true
			return inc
		}
		inc.NotFiring = inc.Of.State != finding.IncidentOpen
	}
	var byID map[string]graph.Edge // built for the first edge finding
	edgeOf := func(id string) (graph.Edge, bool) {
		if byID == nil {
			byID = make(map[string]graph.Edge, len(edges))
			for _, e := range edges {
				byID[e.ID] = e
			}
		}
		e, ok := byID[id]
		return e, ok
	}
	worst := func(m map[string]finding.Severity, id string, s finding.Severity) {
		if id != "" && s > m[id] {
			m[id] = s
		}
	}
	one := v.Incident != "" && v.Incident != IncidentAll && members == nil
	found := false
	var worstOf finding.Severity
	for _, f := range fs {
		if members != nil {
			if !members[f.ID] {
				continue
			}
			worstOf = max(worstOf, f.Severity)
		} else if one {
			if f.ID != v.Incident {
				continue
			}
			found = true
			inc.NotFiring = f.State != finding.StateFiring
		} else if f.State != finding.StateFiring {
			continue
		}
		inc.Findings++
		switch {
		case f.Subject.EdgeID != "":
			worst(inc.SubjectEdges, f.Subject.EdgeID, f.Severity)
			if e, ok := edgeOf(f.Subject.EdgeID); ok {
				worst(inc.Subjects, e.Target, f.Severity)
				worst(inc.Blast, e.Source, f.Severity)
			}
		case f.Subject.NodeID != "":
			worst(inc.Subjects, f.Subject.NodeID, f.Severity)
		}
		if b := f.BlastRadius; b != nil {
			for _, a := range b.Upstream {
				worst(inc.Blast, a.NodeID, f.Severity)
			}
			for _, a := range b.EntryPoints {
				worst(inc.Blast, a.NodeID, f.Severity)
			}
		}
	}
	inc.Missing = inc.Missing || one && !found
	if inc.Of != nil {
		if c, ok := inc.Of.TopCause(); ok && c.NodeID != "" {
			inc.Causes[c.NodeID] = max(worstOf, finding.SeverityWarning)
		}
	}
	for id := range inc.Subjects {
		delete(inc.Blast, id) // a subject is marked as one, not as its own blast
	}
	for id := range inc.Causes {
		delete(inc.Blast, id)
	}
	return inc
}

// incidentPrefix starts every incident's id (detect/incident), so that a
// view's incident= tells an incident from a finding.
const incidentPrefix = "inc-"

// cause reports whether node id is the root cause of the incident drawn.
func (inc *incident) cause(id string) bool {
	_, ok := inc.Causes[id]
	return ok
}

// affected reports whether the node id is a subject, in a blast radius,
// or the cause of the incident drawn.
func (inc *incident) affected(id string) bool {
	_, s := inc.Subjects[id]
	_, b := inc.Blast[id]
	return s || b || inc.cause(id)
}

// nodeRole returns the role and severity of node id ("" for a node no
// finding touches while none fires, or when dimming is off).
func (inc *incident) nodeRole(id string, dim bool) (role, severity string) {
	if s, ok := inc.Subjects[id]; ok {
		return roleSubject, max(s, inc.Causes[id]).String()
	}
	if s, ok := inc.Causes[id]; ok {
		return roleSubject, s.String()
	}
	if s, ok := inc.Blast[id]; ok {
		return roleBlast, s.String()
	}
	if dim && inc.Findings > 0 {
		return roleDim, ""
	}
	return "", ""
}

// edgeRole returns the role and severity of an edge drawn for the graph
// edges ids, whose ends are ends (one pair per id): a subject when it
// stands for a finding's edge, in the blast radius when both ends of one
// of them are affected.
func (inc *incident) edgeRole(ids []string, ends [][2]string, dim bool) (role, severity string) {
	var worst, blast finding.Severity
	for i, id := range ids {
		worst = max(worst, inc.SubjectEdges[id])
		if src, dst := ends[i][0], ends[i][1]; inc.affected(src) && inc.affected(dst) {
			blast = max(blast, inc.Subjects[src], inc.Blast[src], inc.Subjects[dst], inc.Blast[dst], inc.Causes[src], inc.Causes[dst])
		}
	}
	switch {
	case worst > 0:
		return roleSubject, worst.String()
	case blast > 0:
		return roleBlast, blast.String()
	case dim && inc.Findings > 0:
		return roleDim, ""
	}
	return "", ""
}
