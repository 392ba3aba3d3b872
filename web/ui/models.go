package ui

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// View models: plain data the templ components draw. One builder per page.

type link struct {
	Href, Text string
	Active     bool
}

type pageFrame struct {
	Title, Page string
	Nav         []link
	Live        bool
	WS          string // the live-update socket of this page
	AtText      string
	Status      status
}

type status struct {
	Problems []string
}

type option struct {
	Value, Text string
	Selected    bool
}

type hidden struct{ Name, Value string }

type controls struct {
	Action             string
	Keep               []hidden
	Windows, Refreshes []option
	At                 string
	Map                bool
	Search, Hops       string
	Focus              []option
	Groups             []option // what the overview groups by
	Envs               []option // the environments to show (none: one or none known)
	Reset              string
	// NoRefresh leaves the refresh out: the page is not updated live.
	NoRefresh bool
}

type mapPage struct {
	Controls controls
	Map      *mapModel
	Bar      mapBar
	Findings findingsModel
}

// mapBar is the line above the map: what it leaves out, the links
// to the incident view (or back to the whole map) and to turn dimming
// off or on. Links are empty when they do not apply.
type mapBar struct {
	Notes         []string
	Hidden        []link
	Incident, Dim link
	// Overview leads from a drill-in back to the overview.
	Overview link
}

type kv struct{ Key, Value string }

type findingRow struct {
	ID, DOMID, Kind, KindText, Severity, State string
	Summary, SubjectText, SubjectHref          string
	Evidence                                   []kv
	Blast, Age, Since                          string
	// PeakNote says how bad the finding got when that is not what it
	// shows (a resolved one shows its peak; Last is then its last
	// evaluation); Timeline lists the steps of its life.
	PeakNote, Last, Timeline string
	// IncidentHref is the incident view of a firing finding.
	IncidentHref string
	// Owner is the team that must act (finding.Finding.Owner).
	Owner string
}

type findingsModel struct {
	Firing, Pending, Resolved []findingRow
	Err                       string
	// AsOf, in a past view, says the findings are those of that time.
	AsOf string
}

type placedBadge struct {
	badge
	X, Y, W float64
}

type edgeRow struct {
	Peer, PeerHref, Kind, Rate, Errors, P95, Lag, Href, Health string
}

type operationRow struct {
	Name, Traces, P50, P95, Top string
}

type nodePage struct {
	Controls              controls
	Owner, Environment    string
	Name, Kind, Namespace string
	System, FocusHref     string
	Missing               bool
	Figures               []kv
	Charts                []chart
	Upstream, Downstream  []edgeRow
	Operations            []operationRow
	Findings              []findingRow
	Recorded              []changeItem // changes on it within the charts' span
}

type edgePage struct {
	Controls               controls
	Source, Target         string
	SourceHref, TargetHref string
	Kind, Protocol, Group  string
	Missing                bool
	Figures                []kv
	Charts                 []chart
	Findings               []findingRow
	Recorded               []changeItem // changes on it or its ends within the charts' span
}

type column struct {
	Text, Href string
	Active     bool
}

type couplingRow struct {
	Name, Href, Kind, FanIn, FanOut, Instability string
	// Rank is its centrality rank ("3 of 1796"), Share the share of the
	// shortest paths between other nodes through it ("0.0312%").
	Rank, Share string
}

type changeRow struct{ Edge, Rate, Errors, P95 string }

type archPage struct {
	Controls  controls
	Generated string
	Columns   []column
	Rows      []couplingRow
	// The table's filter (a part of a node's name), sort and page: rows
	// First to Last of the Matching nodes (of Total), page Page of Pages,
	// with links to the pages before and after.
	Filter, Sort, Dir                         string
	Total, Matching, First, Last, Page, Pages int
	Prev, Next                                string
	// Skipped says the graph was too large for centrality.
	Skipped bool
	// Keep are the view's parameters the table's form carries.
	Keep        []hidden
	Cycles      []string
	Chain       string
	From, To    string
	DiffWindows []option // suggested windows
	DWindow     string   // the diff window as asked for
	DiffErr     string
	Diff        *mapModel
	// ObsDiff are the review's observations that appeared or went away
	// (nil: the collector keeps no review history).
	ObsDiff                  *obsDiff
	AddedNodes, RemovedNodes int
	AddedEdges, RemovedEdges int
	Added, Removed           []string
	Changes                  []changeRow
	// Recorded are the changes recorded from the diff's earlier time to
	// its later one, drawn on Timeline.
	Recorded []changeItem
	Timeline *timeline
}

// obsDiff is the graph diff's part of the communication review.
type obsDiff struct {
	// Head says which reviews were compared; Note why none could be.
	Head, Note         string
	Appeared, WentAway []reviewRow
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH    = 420.0, 130.0
	chartPad          = 44.0
	chartPadB         = 16.0
	maxBadgesPerShape = 3
	badgeH            = 18.0
)

type chart struct {
	Title, Last, YMax, XStart, XEnd string
	Empty                           bool
	Series                          []chartSeries
	// Markers are the changes recorded on the node or edge within the
	// chart's time axis.
	Markers []marker
}

type chartSeries struct {
	Name, Class, Points string
}

// Template helpers.

func f1(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func boolAttr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func viewBox(m *mapModel) string {
	return fmt.Sprintf("-8 -8 %.0f %.0f", m.W+16, m.H+16)
}

func cylinder(x, y float64) string {
	l, r, t, b := x-nodeW/2, x+nodeW/2, y-nodeH/2+5, y+nodeH/2-5
	return fmt.Sprintf("M%.1f,%.1f A%.1f,5 0 0,1 %.1f,%.1f V%.1f A%.1f,5 0 0,1 %.1f,%.1f Z M%.1f,%.1f A%.1f,5 0 0,0 %.1f,%.1f",
		l, t, nodeW/2, r, t, b, nodeW/2, l, b, l, t, nodeW/2, r, t)
}

func parallelogram(x, y float64) string {
	const s = 10
	l, r, t, b := x-nodeW/2, x+nodeW/2, y-nodeH/2, y+nodeH/2
	return fmt.Sprintf("%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f", l+s, t, r, t, r-s, b, l, b)
}

func stripes(x, y float64) string {
	r, t, b := x+nodeW/2, y-nodeH/2, y+nodeH/2
	return fmt.Sprintf("M%.1f,%.1f V%.1f M%.1f,%.1f V%.1f M%.1f,%.1f V%.1f", r-8, t, b, r-14, t, b, r-20, t, b)
}

var kindTags = map[string]string{
	"service": "service", "topic": "topic", "queue": "queue", "database": "database",
	"external": "external", "client": "client", "namespace": "namespace",
}

// halfW and halfH are half a node's shape's width and height.
func (n mapNode) halfW() float64 {
	if n.Kind == "group" {
		return groupW / 2
	}
	return nodeW / 2
}

func (n mapNode) halfH() float64 {
	if n.Kind == "group" {
		return groupH / 2
	}
	return nodeH / 2
}

func kindTag(n mapNode) string {
	if n.Kind == "group" {
		return n.GroupKind // its figures say how many nodes
	}
	t := kindTags[n.Kind]
	if n.System != "" {
		t += " · " + n.System
	}
	if n.Members > 0 {
		t += fmt.Sprintf(" · %d nodes", n.Members)
	}
	if n.IdleFor != "" {
		t += " · idle " + n.IdleFor
	}
	return t
}

func nodeTitle(n mapNode) string {
	t := n.Kind + " " + n.Name
	if n.Kind == "group" {
		t = n.GroupKind + " " + n.Name + ": " + n.Stat + "\nclick to open"
		if n.GroupKind == "groups" {
			t = n.Name + ": " + n.Stat + "\nclick to see them"
		}
	}
	if n.Namespace != "" && n.Kind != "namespace" {
		t += " (namespace " + n.Namespace + ")"
	}
	if n.Environment != "" {
		t += "\nenvironment: " + n.Environment
	}
	if n.Owner != "" {
		t += "\nowner: " + n.Owner
	}
	if n.IdleFor != "" {
		t += "\nidle: no traffic for " + n.IdleFor
	}
	for _, b := range n.Badges {
		t += "\n" + b.Title
	}
	return t
}

// clip shortens s to n runes with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clipMiddle shortens s to n runes by cutting its middle, where names
// differ least ("redis-recommendation/0" -> "redis-recom…ation/0"): the
// start and the end (a host's suffix, a database index) stay readable.
func clipMiddle(s string, n int) string {
	if utf8.RuneCountInString(s) <= n || n < 3 {
		return clip(s, n)
	}
	r := []rune(s)
	head := (n - 1 + 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

func countText(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ing") {
		return strconv.Itoa(n) + " " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// placeBadges lines badges up from (x, y), the bottom-left of the row.
func placeBadges(bs []badge, x, y float64) []placedBadge {
	out := make([]placedBadge, 0, min(len(bs), maxBadgesPerShape))
	for i, b := range bs {
		if i == maxBadgesPerShape {
			out[len(out)-1].Text = fmt.Sprintf("+%d more", len(bs)-i+1)
			break
		}
		w := float64(utf8.RuneCountInString(b.Text))*7.4 + 16
		out = append(out, placedBadge{badge: b, X: x, Y: y, W: w})
		x += w + 4
	}
	return out
}

// buildFindings sorts findings for the panel: firing by severity then age
// (oldest first: the first thing that broke), pending, then resolved, most
// recent first, at most maxResolved of them.
func buildFindings(fs []finding.Finding, v View, now time.Time, maxResolved int) findingsModel {
	var m findingsModel
	if !v.At.IsZero() {
		m.AsOf = "As they were at " + fmtTime(v.At) + ", a past time: ages are counted from then."
	}
	for _, f := range fs {
		row := findingRowOf(f, v, now)
		switch f.State {
		case finding.StateFiring:
			m.Firing = append(m.Firing, row)
		case finding.StatePending:
			m.Pending = append(m.Pending, row)
		case finding.StateResolved:
			m.Resolved = append(m.Resolved, row)
		}
	}
	byID := map[string]finding.Finding{}
	for _, f := range fs {
		byID[f.ID] = f
	}
	sev := func(r findingRow) int {
		if r.Severity == "critical" {
			return 0
		}
		return 1
	}
	started := func(r findingRow) time.Time { return byID[r.ID].StartedAt }
	resolved := func(r findingRow) time.Time {
		if t := byID[r.ID].ResolvedAt; t != nil {
			return *t
		}
		return time.Time{}
	}
	for _, list := range []*[]findingRow{&m.Firing, &m.Pending} {
		slices.SortStableFunc(*list, func(a, b findingRow) int {
			if c := cmp.Compare(sev(a), sev(b)); c != 0 {
				return c
			}
			if c := started(a).Compare(started(b)); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
	}
	slices.SortStableFunc(m.Resolved, func(a, b findingRow) int { return resolved(b).Compare(resolved(a)) })
	if len(m.Resolved) > maxResolved {
		m.Resolved = m.Resolved[:maxResolved]
	}
	return m
}

func findingRowOf(f finding.Finding, v View, now time.Time) findingRow {
	r := findingRow{
		ID: f.ID, DOMID: domID("f-", f.ID), Kind: f.Kind.String(), KindText: kindText[f.Kind],
		Severity: f.Severity.String(), State: f.State.String(), Summary: f.Summary, Owner: f.Owner,
	}
	switch {
	case f.Subject.Source != "" || f.Subject.Target != "":
		r.SubjectText = f.Subject.Source + " → " + f.Subject.Target
		if f.Subject.EdgeID != "" {
			r.SubjectHref = detailHref("/edge", v, f.Subject.EdgeID)
		}
	default:
		r.SubjectText = f.Subject.Node
		if f.Subject.NodeID != "" {
			r.SubjectHref = detailHref("/node", v, f.Subject.NodeID)
		}
	}
	if r.SubjectHref == "" {
		r.SubjectHref = "/"
	}
	evidence := f.Evidence
	switch f.State {
	case finding.StateResolved:
		if f.ResolvedAt != nil {
			r.Age = "resolved " + fmtAge(now, *f.ResolvedAt)
			r.Since = "resolved at " + fmtTime(*f.ResolvedAt) + ", started " + fmtTime(f.StartedAt)
			if f.FiredAt != nil {
				r.Age += ", lasted " + fmtSeconds(f.ResolvedAt.Sub(*f.FiredAt).Seconds())
			}
		}
		// A resolved finding is read for how bad it got, not for how it
		// looked on its way out.
		if pk := f.Peak; pk != nil {
			r.Severity, r.Summary, evidence = pk.Severity.String(), pk.Summary, pk.Evidence
			r.PeakNote = "at its worst, " + fmtTime(pk.At)
			if f.Summary != pk.Summary {
				r.Last = f.Summary
			}
		}
	default: // the age is set below
		if pk := f.Peak; pk != nil && pk.Severity > f.Severity {
			r.PeakNote = "was " + pk.Severity.String() + " at " + fmtTime(pk.At) + ": " + pk.Summary
		}
	}
	if len(f.Timeline) > 1 {
		steps := make([]string, 0, len(f.Timeline))
		for i, c := range f.Timeline {
			st := c.State.String()
			if i > 0 && c.State == f.Timeline[i-1].State {
				st = c.Severity.String() // a change of severity
			} else if c.State != finding.StateResolved {
				st += " (" + c.Severity.String() + ")"
			}
			steps = append(steps, fmtTime(c.At)+" "+st)
		}
		r.Timeline = strings.Join(steps, " → ")
	}
	if f.State == finding.StateFiring {
		r.IncidentHref = timeOnly(v).With(func(w *View) { w.Incident = f.ID }).Href("/")
	}
	if f.State != finding.StateResolved {
		r.Age = "since " + strings.TrimSuffix(fmtAge(now, f.StartedAt), " ago")
		r.Since = "started at " + fmtTime(f.StartedAt)
	}
	keys := make([]string, 0, len(evidence))
	for k := range evidence {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(r.Evidence) == 8 {
			break
		}
		switch evidence[k].(type) {
		case map[string]any, []any:
			continue // nested structures are for the API, not the panel
		}
		r.Evidence = append(r.Evidence, kv{Key: strings.ReplaceAll(k, "_", " "), Value: fmtEvidence(evidence[k])})
	}
	if b := f.BlastRadius; b != nil && len(b.EntryPoints)+len(b.Upstream) > 0 {
		var parts []string
		for i, a := range b.EntryPoints {
			if i == 4 {
				parts = append(parts, fmt.Sprintf("+%d more", len(b.EntryPoints)-i))
				break
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", a.Node, fmtPercent(a.Share)))
		}
		r.Blast = fmt.Sprintf("%d upstream, entry points: %s", len(b.Upstream), strings.Join(parts, ", "))
		if len(b.EntryPoints) == 0 {
			r.Blast = fmt.Sprintf("%d upstream", len(b.Upstream))
		}
	}
	return r
}

// lineChart draws series sharing one y scale. Each series is (t, v) points.
func lineChart(title, unit string, from, to time.Time, series []namedSeries, format func(float64) string) chart {
	c := chart{Title: title, XStart: from.UTC().Format("15:04"), XEnd: to.UTC().Format("15:04")}
	maxV := 0.0
	n := 0
	for _, s := range series {
		for _, p := range s.Points {
			if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
				maxV = max(maxV, p.V)
				n++
			}
		}
	}
	if n < 2 {
		c.Empty = true
		return c
	}
	if maxV == 0 {
		maxV = 1
	}
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	plotW, plotH := chartW-chartPad, chartH-chartPadB-6
	for _, s := range series {
		var b strings.Builder
		last := math.NaN()
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) || p.T.Before(from) {
				continue
			}
			x := chartPad + plotW*p.T.Sub(from).Seconds()/span
			y := 6 + plotH*(1-p.V/maxV)
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
			last = p.V
		}
		c.Series = append(c.Series, chartSeries{Name: s.Name, Class: s.Class, Points: strings.TrimSpace(b.String())})
		if len(series) == 1 && !math.IsNaN(last) {
			c.Last = "now " + format(last)
		}
	}
	c.YMax = format(maxV)
	_ = unit
	return c
}

type namedSeries struct {
	Name, Class string
	Points      []sample
}

type sample struct {
	T time.Time
	V float64
}

// edgeRows lists edges of a node, with links.
func edgeRows(s *graph.Snapshot, v View, id string, upstream bool) []edgeRow {
	name := map[string]string{}
	for _, n := range s.Nodes {
		name[n.ID] = n.Name
	}
	var rows []edgeRow
	for _, e := range s.Edges {
		peer := ""
		switch {
		case upstream && e.Target == id:
			peer = e.Source
		case !upstream && e.Source == id:
			peer = e.Target
		default:
			continue
		}
		r := edgeRow{
			Peer: name[peer], PeerHref: detailHref("/node", v, peer), Kind: e.Kind.String(),
			Rate: fmtRate(e.RatePerS), Errors: fmtPercent(e.ErrorRatio), Href: detailHref("/edge", v, e.ID), Health: health(e),
		}
		if e.Protocol.String() != "" {
			r.Kind += " · " + e.Protocol.String()
		}
		if e.Latency != nil {
			r.P95 = fmtMs(e.Latency.P95)
		}
		r.Lag = lagLabel(e)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b edgeRow) int { return cmp.Compare(a.Peer, b.Peer) })
	return rows
}
