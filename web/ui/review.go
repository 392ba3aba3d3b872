package ui

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// reviewFilter is what the Review page shows of the review: observations
// of one kind, one severity, one namespace ("" for each: all). It is read
// from the URL (?kind=&severity=&namespace=).
type reviewFilter struct {
	Kind, Severity string
	// Namespace, when HasNS, is the only namespace shown.
	Namespace string
	HasNS     bool
}

var filterWord = regexp.MustCompile(`^[a-z_]{1,64}$`)

// parseReviewFilter reads a reviewFilter from a URL query.
func parseReviewFilter(q url.Values) (reviewFilter, error) {
	f := reviewFilter{Kind: strings.TrimSpace(q.Get("kind")), Severity: strings.TrimSpace(q.Get("severity"))}
	if f.Kind != "" && !filterWord.MatchString(f.Kind) {
		return f, fmt.Errorf("kind %q: want a kind of observation like chatty_edge", f.Kind)
	}
	switch review.Severity(f.Severity) {
	case "", review.SeverityInfo, review.SeverityWarning:
	default:
		return f, fmt.Errorf("severity %q: want info or warning", f.Severity)
	}
	if ns := strings.TrimSpace(q.Get("namespace")); ns != "" { // empty: every namespace
		f.Namespace, f.HasNS = ns, true
		if len(f.Namespace) > maxParamLen {
			return f, fmt.Errorf("namespace: longer than %d characters", maxParamLen)
		}
	}
	return f, nil
}

// query returns f as URL parameters.
func (f reviewFilter) query() url.Values {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Severity != "" {
		q.Set("severity", f.Severity)
	}
	if f.HasNS {
		q.Set("namespace", f.Namespace)
	}
	return q
}

func (f reviewFilter) keeps(o review.Observation) bool {
	return (f.Kind == "" || string(o.Kind) == f.Kind) && (f.Severity == "" || string(o.Severity) == f.Severity) &&
		(!f.HasNS || o.Namespace == f.Namespace)
}

// reviewModel is the Review page: the observations of the communication
// review grouped by namespace, and drawn as markers on the map.
type reviewModel struct {
	// Filters: kinds (with their counts), severities and namespaces of
	// the whole review, each a link or an option; Keep are the view's
	// parameters the filter form carries.
	Kinds      []reviewChip
	Severities []option
	Namespaces []option
	KindOpts   []option
	Keep       []hidden
	All        string // the page without filters
	// Total observations in the review, Shown after the filters.
	Total, Shown int
	Groups       []reviewGroup
	Skipped      []string
	// Map is the graph with a marker on each subject; Undrawn counts the
	// observations whose subject the map does not draw on its own (a
	// collapsed namespace, the overview of a large map).
	Map     *mapModel
	MapErr  string
	Undrawn int
	// Note says what the page cannot show (a past time).
	Note string
	// Generated says when the review was made, and over which window.
	Generated string
}

// reviewChip is a link to one kind's observations.
type reviewChip struct {
	Kind, Href string
	Count      int
	Active     bool
}

// reviewGroup is one namespace's observations.
type reviewGroup struct {
	Namespace, DOMID string
	Rows             []reviewRow
}

// reviewRow is one observation.
type reviewRow struct {
	ID, DOMID, Kind, Severity string
	Subject, SubjectKind      string
	Href                      string
	Summary, Why, Remedy      string
	Evidence                  []evidenceItem
}

// evidenceItem is one number of an observation's evidence; a long one (a
// chain's hops, a pipeline's stages) is folded: Short shows, Value opens.
type evidenceItem struct{ Name, Value, Short string }

// maxEvidenceLen is the longest evidence value shown unfolded.
const maxEvidenceLen = 160

// reviewMark is a marker on the map: the observations on one subject.
type reviewMark struct {
	DOMID, Href, Title, Severity string
	X, Y                         float64
	Count                        int
	Edge                         bool
}

func (u *UI) reviewPage(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error) {
	f, err := parseReviewFilter(r.URL.Query())
	if err != nil {
		return nil, "", err
	}
	m, err := u.buildReview(ctx, f, v, cur)
	if err != nil {
		return nil, "", err
	}
	keep := []hidden{}
	for name, vs := range f.query() {
		keep = append(keep, hidden{Name: name, Value: vs[0]})
	}
	slices.SortFunc(keep, func(a, b hidden) int { return cmp.Compare(a.Name, b.Name) })
	return reviewBody(m, u.controls("/review", v, keep, nil, false)), "Review", nil
}

// reviewOf returns the live review of view v's window, read once per
// refresh and shared by every page.
func (u *UI) reviewOf(ctx context.Context, v View, cur current) (*review.Report, error) {
	u.mu.RLock()
	c, ok := u.reviews[v.Window]
	u.mu.RUnlock()
	if ok && c.version == cur.version {
		return c.rep, c.err
	}
	rep, err := u.o.Source.Review(ctx, v.Window)
	u.mu.Lock()
	if u.reviews == nil || len(u.reviews) >= 16 {
		u.reviews = map[time.Duration]*reviewAt{}
	}
	u.reviews[v.Window] = &reviewAt{version: cur.version, rep: rep, err: err}
	u.mu.Unlock()
	return rep, err
}

// reviewAt is a review read for one version of the state.
type reviewAt struct {
	version uint64
	rep     *review.Report
	err     error
}

// buildReview is the Review page of view v, filtered by f.
func (u *UI) buildReview(ctx context.Context, f reviewFilter, v View, cur current) (reviewModel, error) {
	var m reviewModel
	live := timeOnly(v)
	if !v.At.IsZero() {
		m.Note = "The review reads the call patterns of the traces sampled over the live window: this page shows it as it is now, not as of " + fmtTime(v.At) + " (the Architecture page's diff shows what appeared and went away between two times)."
		live.At = time.Time{}
	}
	rep, err := u.reviewOf(ctx, View{Window: v.Window}, cur)
	if err != nil {
		return m, fmt.Errorf("the review cannot be read: %w", err)
	}
	m.Generated = fmtTime(rep.GeneratedAt) + " over " + fmtDuration(time.Duration(rep.WindowSeconds*float64(time.Second)))
	m.Skipped = rep.Skipped
	m.Total = len(rep.Observations)
	href := func(g reviewFilter) string {
		q := live.Query()
		for k, vs := range g.query() {
			q[k] = vs
		}
		if len(q) == 0 {
			return "/review"
		}
		return "/review?" + q.Encode()
	}
	m.All = href(reviewFilter{})
	kinds := map[string]int{}
	nss := map[string]bool{}
	for _, o := range rep.Observations {
		kinds[string(o.Kind)]++
		nss[o.Namespace] = true
	}
	if f.Kind != "" {
		if _, ok := kinds[f.Kind]; !ok {
			kinds[f.Kind] = 0
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		g := f
		g.Kind = k
		if f.Kind == k {
			g.Kind = "" // the active chip clears it
		}
		m.Kinds = append(m.Kinds, reviewChip{Kind: k, Count: kinds[k], Href: href(g), Active: f.Kind == k})
		m.KindOpts = append(m.KindOpts, option{Value: k, Text: fmt.Sprintf("%s (%d)", k, kinds[k]), Selected: f.Kind == k})
	}
	for _, s := range []string{"warning", "info"} {
		m.Severities = append(m.Severities, option{Value: s, Text: s, Selected: f.Severity == s})
	}
	if f.HasNS {
		nss[f.Namespace] = true
	}
	for _, ns := range slices.Sorted(maps.Keys(nss)) {
		text := ns
		if ns == "" {
			text = "(no namespace)"
		}
		m.Namespaces = append(m.Namespaces, option{Value: ns, Text: text, Selected: f.HasNS && f.Namespace == ns})
	}
	for name, vs := range live.Query() {
		if name != "hops" {
			m.Keep = append(m.Keep, hidden{Name: name, Value: vs[0]})
		}
	}
	slices.SortFunc(m.Keep, func(a, b hidden) int { return cmp.Compare(a.Name, b.Name) })

	snap, gerr := u.graphFor(ctx, View{Window: v.Window}, cur)
	var shown []review.Observation
	for _, o := range rep.Observations {
		if f.keeps(o) {
			shown = append(shown, o)
		}
	}
	m.Shown = len(shown)
	byNS := map[string]*reviewGroup{}
	var order []string
	for _, o := range shown {
		g, ok := byNS[o.Namespace]
		if !ok {
			g = &reviewGroup{Namespace: o.Namespace, DOMID: domID("ns-", o.Namespace)}
			byNS[o.Namespace] = g
			order = append(order, o.Namespace)
		}
		g.Rows = append(g.Rows, reviewRowOf(o, snap, live))
	}
	slices.Sort(order)
	for _, ns := range order {
		m.Groups = append(m.Groups, *byNS[ns])
	}

	if gerr != nil {
		m.MapErr = "The map cannot be drawn: " + gerr.Error()
		return m, nil
	}
	mv := live.With(func(w *View) { w.Refresh = v.Refresh })
	mm, err := buildMap(ctx, u.o.Layouter, mapInput{Snap: snap, View: mv, MaxNodes: u.o.MaxNodes, Base: "/"})
	if err != nil {
		m.MapErr = "The map cannot be drawn: " + err.Error()
		return m, nil
	}
	mm.Marks, m.Undrawn = reviewMarks(shown, snap, mm, live)
	m.Map = mm
	return m, nil
}

// reviewRowOf is observation o as a row of the page.
func reviewRowOf(o review.Observation, snap *graph.Snapshot, v View) reviewRow {
	row := reviewRow{ID: o.ID, DOMID: domID("o-", o.ID), Kind: string(o.Kind), Severity: string(o.Severity),
		Summary: o.Summary, Why: o.Why, Remedy: o.Remedy}
	switch {
	case o.Subject.NodeID != "":
		row.Subject, row.SubjectKind = cmpOr(o.Subject.Node, o.Subject.NodeID), kindFromID(o.Subject.NodeID)
		row.Href = detailHref("/node", v, o.Subject.NodeID)
	case o.Subject.EdgeID != "":
		row.Subject, row.SubjectKind = o.Subject.Source+" → "+o.Subject.Target, "edge"
		if e, ok := subjectEdge(o.Subject.EdgeID, snap); ok {
			row.Href = detailHref("/edge", v, e.ID)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Evidence)) {
		it := evidenceItem{Name: strings.ReplaceAll(k, "_", " "), Value: evidenceValue(o.Evidence[k])}
		if r := []rune(it.Value); len(r) > maxEvidenceLen {
			it.Short = string(r[:maxEvidenceLen/2]) + "…"
			if l, ok := o.Evidence[k].([]any); ok {
				it.Short = plural(len(l), "item") + ": " + it.Short
			}
		}
		row.Evidence = append(row.Evidence, it)
	}
	return row
}

// subjectEdge returns the graph edge an observation's edge subject
// ("source->target", any protocol) stands for: the busiest of them.
func subjectEdge(id string, snap *graph.Snapshot) (graph.Edge, bool) {
	if snap == nil {
		return graph.Edge{}, false
	}
	src, dst, ok := strings.Cut(id, "->")
	if !ok {
		return graph.Edge{}, false
	}
	var best graph.Edge
	found := false
	for _, e := range snap.Edges {
		if e.ID == id || e.Source == src && e.Target == dst {
			if !found || e.Requests > best.Requests {
				best, found = e, true
			}
		}
	}
	return best, found
}

// evidenceValue writes one evidence value short: numbers plainly, a
// distribution as its quantiles, a list joined.
func evidenceValue(v any) string {
	switch x := v.(type) {
	case float64:
		return trimFloat(x)
	case float32:
		return trimFloat(float64(x))
	case int, int64, uint64, uint32, int32:
		return fmt.Sprint(x)
	case string:
		return x
	case bool:
		return fmt.Sprint(x)
	case []string:
		return strings.Join(x, ", ")
	case []any:
		parts := make([]string, len(x))
		sep := ", "
		for i, e := range x {
			parts[i] = evidenceValue(e)
			if _, ok := e.(map[string]any); ok {
				sep = "; "
			}
		}
		return strings.Join(parts, sep)
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" "+evidenceValue(x[k]))
		}
		return strings.Join(parts, ", ")
	case map[string]float64:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" "+trimFloat(x[k]))
		}
		return strings.Join(parts, ", ")
	case map[string]int:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" "+fmt.Sprint(x[k]))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

func trimFloat(f float64) string {
	s := fmtFloat(f, 3)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// reviewMarks places a marker on each subject of obs the map draws: the
// top right corner of a node, the label of an edge; several observations
// on one subject share a marker with their count. It returns the markers
// and how many observations have none (their subject is not drawn on its
// own).
func reviewMarks(obs []review.Observation, snap *graph.Snapshot, m *mapModel, v View) ([]reviewMark, int) {
	nodes := make(map[string]mapNode, len(m.Nodes))
	for _, n := range m.Nodes {
		nodes[n.ID] = n
	}
	edges := make(map[string]mapEdge, len(m.Edges))
	for _, e := range m.Edges {
		if e.Merged <= 1 {
			edges[e.ID] = e
		}
	}
	type acc struct {
		mark  reviewMark
		kinds []string
	}
	marks := map[string]*acc{}
	var order []string
	undrawn := 0
	for _, o := range obs {
		var key string
		var mk reviewMark
		switch {
		case o.Subject.NodeID != "":
			n, ok := nodes[o.Subject.NodeID]
			if !ok {
				undrawn++
				continue
			}
			key = "n:" + n.ID
			mk = reviewMark{X: n.X + nodeW/2 - 2, Y: n.Y - nodeH/2 + 2, Href: detailHref("/node", v, n.ID)}
		case o.Subject.EdgeID != "":
			ge, ok := subjectEdge(o.Subject.EdgeID, snap)
			e, drawn := edges[ge.ID]
			if !ok || !drawn {
				undrawn++
				continue
			}
			key = "e:" + e.ID
			mk = reviewMark{X: e.LX + labelW/2, Y: e.LY - labelH/2, Href: detailHref("/edge", v, ge.ID), Edge: true}
		default:
			undrawn++
			continue
		}
		a, ok := marks[key]
		if !ok {
			mk.DOMID = domID("m-", key)
			a = &acc{mark: mk}
			marks[key] = a
			order = append(order, key)
		}
		a.mark.Count++
		if o.Severity == review.SeverityWarning || a.mark.Severity == "" {
			a.mark.Severity = string(o.Severity)
		}
		a.kinds = append(a.kinds, string(o.Kind)+" ("+string(o.Severity)+")")
		if a.mark.Title == "" {
			a.mark.Title = markSubject(o)
		}
	}
	out := make([]reviewMark, 0, len(order))
	for _, key := range order {
		a := marks[key]
		a.mark.Title = fmt.Sprintf("%s: %s — %s", a.mark.Title, plural(a.mark.Count, "observation"), strings.Join(a.kinds, ", "))
		out = append(out, a.mark)
	}
	return out, undrawn
}

func markSubject(o review.Observation) string {
	if o.Subject.NodeID != "" {
		return cmpOr(o.Subject.Node, o.Subject.NodeID)
	}
	return o.Subject.Source + " → " + o.Subject.Target
}

// observationRows are the observations of a diff as rows.
func observationRows(obs []review.Observation, snap *graph.Snapshot, v View) []reviewRow {
	rows := make([]reviewRow, 0, len(obs))
	for _, o := range obs {
		rows = append(rows, reviewRowOf(o, snap, v))
	}
	return rows
}

func anyActive(ks []reviewChip) bool {
	return slices.ContainsFunc(ks, func(k reviewChip) bool { return k.Active })
}

func anySelected(os []option) bool {
	return slices.ContainsFunc(os, func(o option) bool { return o.Selected && o.Value != "" })
}

// currentAttr marks the active link for assistive technology.
func currentAttr(active bool) templ.Attributes {
	if active {
		return templ.Attributes{"aria-current": "true"}
	}
	return templ.Attributes{}
}
