package ui

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/a-h/templ"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// incidentsModel is the Incidents page: every incident kept, open first,
// and one of them in full (the one asked for, else the newest open one).
type incidentsModel struct {
	Open, Resolved []incidentRow
	Selected       *incidentDetail
	// Note says what the page cannot show (a past time, an unknown id).
	Note string
}

// incidentRow is one incident in the list.
type incidentRow struct {
	ID, DOMID, Href       string
	State, Severity       string
	Cause, CauseKind, Age string
	Findings              string
	Selected              bool
}

// incidentDetail is one incident in full: it leads with its root cause
// and what users feel, then draws its subgraph.
type incidentDetail struct {
	ID, DOMID, State, Severity string
	// Head says when it started, how long it lasts, when it resolved.
	Head   string
	Cause  *causeRow
	Others []causeRow
	Impact []impactRow
	// Map is the incident's subgraph (the map's incident view), its
	// cause ringed; MapHref opens it on the map page; MapErr says why it
	// is not drawn.
	Map     *mapModel
	MapHref string
	MapErr  string
	// Findings are its findings, newest state first.
	Findings []findingRow
	Changes  []string
}

// causeRow is one probable root cause.
type causeRow struct {
	Name, Kind, Href         string
	Score                    string
	Anomaly, Explains, Onset string
	Reasons                  []string
}

// impactRow is what the users of one entry point feel.
type impactRow struct {
	Entry, Href        string
	ErrBefore, ErrNow  string
	P95Before, P95Now  string
	Share              string
	ErrWorse, P95Worse bool
	// SLOs say which of its service level objectives burn, in words.
	SLOs []string
}

func (u *UI) incidentsPage(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error) {
	m := u.buildIncidents(ctx, r.URL.Query().Get("id"), v, cur)
	return incidentsBody(m, u.controls("/incidents", v, nil, nil, false)), "Incidents", nil
}

// buildIncidents is the Incidents page of view v, with incident id (""
// for the newest open one) in full.
func (u *UI) buildIncidents(ctx context.Context, id string, v View, cur current) incidentsModel {
	var m incidentsModel
	now := u.o.Clock()
	if !v.At.IsZero() {
		m.Note = "Incidents are kept in memory, not in storage: this page shows them as they are now, not as of " + fmtTime(v.At) + "."
	}
	sev := map[string]finding.Severity{}
	byID := map[string]finding.Finding{}
	for _, f := range cur.findings {
		byID[f.ID] = f
	}
	worst := func(inc finding.Incident) finding.Severity {
		s := finding.SeverityWarning
		for _, fid := range inc.Findings {
			s = max(s, byID[fid].Severity)
		}
		return s
	}
	var sel *finding.Incident
	for i := range cur.incidents {
		inc := &cur.incidents[i]
		sev[inc.ID] = worst(*inc)
		if inc.ID == id || id == "" && sel == nil && inc.State == finding.IncidentOpen {
			sel = inc
		}
	}
	if id != "" && sel == nil {
		m.Note = fmt.Sprintf("No incident %q: resolved incidents are kept for a while, then forgotten.", id)
	}
	live := timeOnly(v)
	live.At = time.Time{}
	for _, inc := range cur.incidents {
		row := incidentRow{ID: inc.ID, DOMID: domID("i-", inc.ID), State: inc.State.String(), Severity: sev[inc.ID].String(),
			Href: detailHref("/incidents", live, inc.ID), Age: fmtAge(now, inc.StartedAt),
			Findings: plural(len(inc.Findings), "finding"), Selected: sel != nil && sel.ID == inc.ID}
		if c, ok := inc.TopCause(); ok {
			row.Cause, row.CauseKind = c.Name(), kindFromID(c.NodeID)
		}
		if inc.State == finding.IncidentOpen {
			m.Open = append(m.Open, row)
		} else {
			m.Resolved = append(m.Resolved, row)
		}
	}
	if sel != nil {
		m.Selected = u.incidentDetailOf(ctx, *sel, sev[sel.ID], byID, live, cur, now)
	}
	return m
}

// incidentDetailOf builds incident inc in full.
func (u *UI) incidentDetailOf(ctx context.Context, inc finding.Incident, sev finding.Severity, byID map[string]finding.Finding, v View, cur current, now time.Time) *incidentDetail {
	d := &incidentDetail{ID: inc.ID, DOMID: domID("d-", inc.ID), State: inc.State.String(), Severity: sev.String(), Changes: inc.Changes}
	if len(inc.Changes) > 0 {
		// Say what the cited changes were, not only their ids.
		said := map[string]string{}
		for _, c := range u.changesIn(ctx, inc.StartedAt.Add(-time.Hour), now, nil) {
			said[c.ID] = fmtTime(c.At) + ": " + c.Summary
		}
		d.Changes = make([]string, len(inc.Changes))
		for i, id := range inc.Changes {
			d.Changes[i] = cmpOr(said[id], id)
		}
	}
	d.Head = "started " + fmtTime(inc.StartedAt) + " (" + fmtAge(now, inc.StartedAt) + "), "
	if inc.ResolvedAt != nil {
		d.Head += "resolved " + fmtTime(*inc.ResolvedAt) + " after " + fmtDur(inc.ResolvedAt.Sub(inc.StartedAt))
	} else {
		d.Head += "open for " + fmtDur(now.Sub(inc.StartedAt))
	}
	for i, c := range inc.RootCauses {
		row := causeRow{Name: c.Name(), Kind: kindFromID(c.NodeID), Href: detailHref("/node", v, c.NodeID),
			Score:   fmtFloat(c.Score, 2),
			Anomaly: fmtFloat(c.Anomaly, 2), Explains: fmtPercent(c.Explains), Onset: fmtFloat(c.Onset, 2), Reasons: c.Reasons}
		if i == 0 {
			d.Cause = &row
		} else {
			d.Others = append(d.Others, row)
		}
	}
	for _, im := range inc.Impact {
		d.Impact = append(d.Impact, impactRow{Entry: im.Entry, Href: detailHref("/node", v, im.EntryID),
			ErrBefore: fmtPercent(im.ErrorRatio.Before), ErrNow: fmtPercent(im.ErrorRatio.Now),
			P95Before: fmtMs(im.P95Ms.Before), P95Now: fmtMs(im.P95Ms.Now), Share: fmtPercent(im.Share),
			ErrWorse: im.ErrorRatio.Now > im.ErrorRatio.Before, P95Worse: im.P95Ms.Now > im.P95Ms.Before, SLOs: sloTexts(im.SLOs)})
	}
	var fs []finding.Finding
	for _, fid := range inc.Findings {
		if f, ok := byID[fid]; ok {
			fs = append(fs, f)
		}
	}
	rank := map[finding.State]int{finding.StateFiring: 0, finding.StatePending: 1, finding.StateResolved: 2}
	slices.SortStableFunc(fs, func(a, b finding.Finding) int {
		if c := rank[a.State] - rank[b.State]; c != 0 {
			return c
		}
		return a.StartedAt.Compare(b.StartedAt)
	})
	for _, f := range fs {
		d.Findings = append(d.Findings, findingRowOf(f, v, now))
	}
	mv := v.With(func(w *View) { w.Incident = inc.ID; w.Focus = "" })
	d.MapHref = mv.Href("/")
	snap, err := u.graphFor(ctx, View{Window: v.Window}, cur)
	if err == nil {
		d.Map, err = buildMap(ctx, u.o.Layouter, mapInput{Snap: snap, Findings: cur.findings, Incidents: cur.incidents, View: mv, MaxNodes: u.o.MaxNodes, Base: "/"})
	}
	if err != nil {
		d.MapErr = "The incident's subgraph cannot be drawn: " + err.Error()
	} else if !d.Map.Incident {
		d.MapErr = "None of the incident's nodes is in the graph's window any more."
		d.Map = nil
	}
	return d
}

// firstReason is a cause's most telling reason.
func firstReason(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[0]
}

func fmtInt(n int) string { return fmt.Sprint(n) }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return d.Round(time.Minute).String()
}

// sloTexts says what each burning objective of an entry point does:
// "SLO checkout-availability (99.9% availability) burns its error budget
// 31.5x as fast as allowed over 1h/5m (critical); 94% of it left".
func sloTexts(slos []finding.SLOImpact) []string {
	var out []string
	for _, s := range slos {
		out = append(out, fmt.Sprintf("SLO %s (%g%% %s) burns its error budget %.1fx as fast as allowed over %s (%s); %s of it left",
			s.Objective, s.Target, s.SLI, s.BurnRate, s.Windows, s.Severity, fmtPercent(max(0, s.BudgetRemaining))))
	}
	return out
}
