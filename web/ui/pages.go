package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/web/api/client"
)

// chartSpan is how far back node and edge charts go.
func (u *UI) chartSpan(v View) time.Duration {
	span := time.Duration(u.o.HistoryPoints) * u.o.Refresh
	return min(span, time.Hour)
}

// chartFrom is where a chart's time axis starts: from, or later when the
// history kept starts later (a UI just started), so that a few minutes of
// points fill the chart instead of a sliver at its right edge; the axis
// spans at least a minute.
func chartFrom(from, now time.Time, pts []point) time.Time {
	if len(pts) > 0 && pts[0].T.After(from) {
		from = pts[0].T
	}
	if now.Sub(from) < time.Minute {
		from = now.Add(-time.Minute)
	}
	return from
}

func (u *UI) nodePage(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error) {
	p, err := u.buildNodePage(ctx, r.URL.Query().Get("id"), v, cur)
	if err != nil {
		return nil, "", err
	}
	return nodeBody(*p), p.Name, nil
}

func (u *UI) buildNodePage(ctx context.Context, id string, v View, cur current) (*nodePage, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: which node? (?id=)", errNotFound)
	}
	snap, err := u.graphFor(ctx, v, cur)
	if err != nil {
		return nil, err
	}
	p := &nodePage{Controls: u.controls("/node", v, []hidden{{"id", id}}, nil, false)}
	p.FocusHref = View{Window: v.Window, At: v.At, Refresh: v.Refresh, Focus: id, Hops: 2}.Href("/")
	n, ok := nodeByID(snap, id)
	if !ok {
		p.Missing = true
		p.Name, p.Kind = nameFromID(id), kindFromID(id)
	} else {
		p.Name, p.Kind, p.Namespace, p.System = n.Name, n.Kind.String(), n.Namespace, n.System
		p.Owner, p.Environment = n.Owner, n.Environment
		p.Figures = []kv{
			{"fan-in", fmt.Sprint(n.FanIn)}, {"fan-out", fmt.Sprint(n.FanOut)},
			{"instability", fmtFloat(n.Instability, 2)}, {"shortest paths through it (betweenness)", fmtShare(n.Betweenness)},
		}
		if n.BetweennessSkipped {
			p.Figures = p.Figures[:3] // not computed for a graph this large
		}
		// Its kept resource attributes, each a way to group it on the
		// overview.
		for _, k := range slices.Sorted(maps.Keys(n.Attributes)) {
			p.Figures = append(p.Figures, kv{k, n.Attributes[k]})
		}
	}
	var inRate, inReq, inErr, outRate float64
	for _, e := range snap.Edges {
		if e.Target == id {
			inRate += e.RatePerS
			inReq += float64(e.Requests)
			inErr += float64(e.Errors)
		}
		if e.Source == id {
			outRate += e.RatePerS
		}
	}
	errRatio := 0.0
	if inReq > 0 {
		errRatio = inErr / inReq
	}
	p.Figures = append([]kv{{"requests in", fmtRate(inRate)}, {"errors in", fmtPercent(errRatio)}, {"calls out", fmtRate(outRate)}}, p.Figures...)
	p.Upstream = edgeRows(snap, v, id, true)
	p.Downstream = edgeRows(snap, v, id, false)
	now := u.o.Clock()
	from := now.Add(-u.chartSpan(v))
	pts := u.hist.get("n:"+id, from)
	if !v.At.IsZero() {
		pts = nil
	}
	from = chartFrom(from, now, pts)
	p.Charts = []chart{
		lineChart("Requests in (per second)", "/s", from, now, []namedSeries{{Name: "in", Class: "s1", Points: pick(pts, func(p point) float64 { return p.Rate })}, {Name: "calls out", Class: "s2", Points: pick(pts, func(p point) float64 { return p.OutRate })}}, fmtRate),
		lineChart("Errors in (% of requests)", "%", from, now, []namedSeries{{Name: "errors", Class: "s3", Points: pick(pts, func(p point) float64 { return p.ErrorRatio })}}, fmtPercent),
		lineChart("Latency of its callers' slowest edge (ms)", "ms", from, now, []namedSeries{{Name: "p50", Class: "s1", Points: pick(pts, func(p point) float64 { return p.P50 })}, {Name: "p95", Class: "s2", Points: pick(pts, func(p point) float64 { return p.P95 })}, {Name: "p99", Class: "s3", Points: pick(pts, func(p point) float64 { return p.P99 })}}, fmtMs),
	}
	cfrom, cto := from, now
	if !v.At.IsZero() {
		cfrom, cto = v.At.Add(-u.chartSpan(v)), v.At
	}
	onNode := u.changesIn(ctx, cfrom, cto, func(c changes.Change) bool { return c.On(id) })
	withMarkers(p.Charts, markersOf(onNode, from, now))
	p.Recorded = changeItems(onNode)
	// A past view lists the findings of that time; when they cannot be
	// read the page lists none (the map and the findings page say why).
	fs, fnow, _ := u.findingsFor(ctx, v, cur)
	for _, f := range newestFirst(fs) {
		if f.Subject.NodeID == id || (f.Subject.EdgeID != "" && (strings.HasPrefix(f.Subject.EdgeID, id+"->") || strings.HasPrefix(f.Subject.EdgeID, id+"→"))) {
			p.Findings = append(p.Findings, findingRowOf(f, v, fnow))
		}
	}
	for _, f := range newestFirst(fs) {
		if f.Subject.EdgeID == "" || f.Subject.NodeID == id {
			continue
		}
		if e, ok := edgeByID(snap, f.Subject.EdgeID); ok && (e.Source == id || e.Target == id) && !slices.ContainsFunc(p.Findings, func(r findingRow) bool { return r.ID == f.ID }) {
			p.Findings = append(p.Findings, findingRowOf(f, v, fnow))
		}
	}
	return p, nil
}

func pick(pts []point, f func(point) float64) []sample {
	out := make([]sample, 0, len(pts))
	for _, p := range pts {
		out = append(out, sample{T: p.T, V: f(p)})
	}
	return out
}

func nodeByID(s *graph.Snapshot, id string) (graph.Node, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return graph.Node{}, false
}

func edgeByID(s *graph.Snapshot, id string) (graph.Edge, bool) {
	for _, e := range s.Edges {
		if e.ID == id {
			return e, true
		}
	}
	return graph.Edge{}, false
}

func nameFromID(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	} else if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if s, err := url.PathUnescape(id); err == nil {
		return s
	}
	return id
}

func kindFromID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return id[:i]
	}
	return "node"
}

func (u *UI) edgePage(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error) {
	p, err := u.buildEdgePage(ctx, r.URL.Query().Get("id"), v, cur)
	if err != nil {
		return nil, "", err
	}
	return edgeBody(*p), p.Source + " → " + p.Target, nil
}

func (u *UI) buildEdgePage(ctx context.Context, id string, v View, cur current) (*edgePage, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: which edge? (?id=)", errNotFound)
	}
	snap, err := u.graphFor(ctx, v, cur)
	if err != nil {
		return nil, err
	}
	p := &edgePage{Controls: u.controls("/edge", v, []hidden{{"id", id}}, nil, false)}
	e, ok := edgeByID(snap, id)
	if !ok {
		p.Missing = true
		p.Source, p.Target = id, ""
		for _, f := range cur.findings {
			if f.Subject.EdgeID == id {
				p.Source, p.Target = f.Subject.Source, f.Subject.Target
			}
		}
	} else {
		src, _ := nodeByID(snap, e.Source)
		dst, _ := nodeByID(snap, e.Target)
		p.Source, p.Target = src.Name, dst.Name
		p.SourceHref, p.TargetHref = detailHref("/node", v, e.Source), detailHref("/node", v, e.Target)
		p.Kind, p.Protocol, p.Group = e.Kind.String(), e.Protocol.String(), e.ConsumerGroup
		p.Figures = []kv{
			{"rate", fmtRate(e.RatePerS)}, {"requests", fmt.Sprint(e.Requests)},
			{"errors", fmt.Sprintf("%d (%s)", e.Errors, fmtPercent(e.ErrorRatio))},
		}
		if e.RetriesSeen || e.Retries > 0 {
			p.Figures = append(p.Figures, kv{"retries", fmt.Sprintf("%d (%s)", e.Retries, fmtPercent(e.RetryRatio))})
		} else {
			p.Figures = append(p.Figures, kv{"retries", "not visible on this edge (its calls carry no retry signal)"})
		}
		if e.Estimated && e.SampleRatio != nil {
			p.Figures = append(p.Figures, kv{"sampled", "estimates from sampled traces: " + fmtPercent(*e.SampleRatio) + " of the calls seen"})
		}
		for _, q := range []struct {
			name string
			q    *graph.Quantiles
		}{{"latency", e.Latency}, {"server side", e.ServerLatency}, {"client side", e.ClientLatency}, {"producer→consumer delay", e.Delay}} {
			if q.q != nil {
				p.Figures = append(p.Figures, kv{q.name + " p50/p95/p99", fmtMs(q.q.P50) + " / " + fmtMs(q.q.P95) + " / " + fmtMs(q.q.P99)})
			}
		}
		if e.Unanswered > 0 {
			p.Figures = append(p.Figures, kv{"unanswered (failed fast)", fmt.Sprint(e.Unanswered)})
		}
		if l := e.Lag; l != nil {
			add := func(k string, f *float64, format func(float64) string) {
				if f != nil {
					p.Figures = append(p.Figures, kv{k, format(*f)})
				}
			}
			add("lag (messages)", l.Messages, fmtCount)
			add("lag (time)", l.Seconds, fmtSeconds)
			add("drain time", l.DrainSeconds, fmtSeconds)
			add("consumers", l.Consumers, fmtCount)
			add("produce rate", l.ProduceRate, fmtRate)
			add("consume rate", l.ConsumeRate, fmtRate)
			st := l.Status.String()
			if l.Reason != "" {
				st += ": " + l.Reason
			}
			p.Figures = append(p.Figures, kv{"lag status", st})
		}
	}
	now := u.o.Clock()
	from := now.Add(-u.chartSpan(v))
	pts := u.hist.get("e:"+id, from)
	if !v.At.IsZero() {
		pts = nil
	}
	from = chartFrom(from, now, pts)
	p.Charts = []chart{
		lineChart("Rate (per second)", "/s", from, now, []namedSeries{{Name: "rate", Class: "s1", Points: pick(pts, func(p point) float64 { return p.Rate })}}, fmtRate),
		lineChart("Errors (% of calls)", "%", from, now, []namedSeries{{Name: "errors", Class: "s3", Points: pick(pts, func(p point) float64 { return p.ErrorRatio })}}, fmtPercent),
		lineChart("Latency (ms)", "ms", from, now, []namedSeries{{Name: "p50", Class: "s1", Points: pick(pts, func(p point) float64 { return p.P50 })}, {Name: "p95", Class: "s2", Points: pick(pts, func(p point) float64 { return p.P95 })}, {Name: "p99", Class: "s3", Points: pick(pts, func(p point) float64 { return p.P99 })}}, fmtMs),
	}
	if ok && e.RetriesSeen {
		p.Charts = append(p.Charts,
			lineChart("Retries (% of calls that repeat a failed call)", "%", from, now, []namedSeries{{Name: "retries", Class: "s3", Points: pick(pts, func(p point) float64 { return p.RetryRatio })}}, fmtPercent),
			lineChart("Attempts per request (retry amplification on this edge)", "×", from, now, []namedSeries{{Name: "attempts", Class: "s2", Points: pick(pts, func(p point) float64 { return p.Attempts })}}, fmtTimes))
	}
	if ok && e.Delay != nil {
		p.Charts = append(p.Charts,
			lineChart("Producer→consumer delay (ms)", "ms", from, now, []namedSeries{{Name: "p50", Class: "s1", Points: pick(pts, func(p point) float64 { return p.DelayP50 })}, {Name: "p95", Class: "s2", Points: pick(pts, func(p point) float64 { return p.DelayP95 })}}, fmtMs))
	}
	if ok && e.Kind == graph.EdgeAsync {
		p.Charts = append(p.Charts,
			lineChart("Consumer lag (messages)", "", from, now, []namedSeries{{Name: "lag", Class: "s2", Points: pick(pts, func(p point) float64 { return p.LagMessages })}}, fmtCount),
			lineChart("Lag and drain time (s)", "s", from, now, []namedSeries{{Name: "lag", Class: "s2", Points: pick(pts, func(p point) float64 { return p.LagSec })}, {Name: "drain", Class: "s3", Points: pick(pts, func(p point) float64 { return p.DrainSec })}}, fmtSeconds))
	}
	cfrom, cto := from, now
	if !v.At.IsZero() {
		cfrom, cto = v.At.Add(-u.chartSpan(v)), v.At
	}
	onEdge := u.changesIn(ctx, cfrom, cto, func(c changes.Change) bool {
		return c.EdgeID == id || ok && c.NodeID != "" && (c.NodeID == e.Source || c.NodeID == e.Target)
	})
	withMarkers(p.Charts, markersOf(onEdge, from, now))
	p.Recorded = changeItems(onEdge)
	fs, fnow, _ := u.findingsFor(ctx, v, cur) // as on the node page
	for _, f := range newestFirst(fs) {
		if f.Subject.EdgeID == id {
			p.Findings = append(p.Findings, findingRowOf(f, v, fnow))
		}
	}
	return p, nil
}

// newestFirst returns findings ordered by when they started, newest
// first: the one a person opening the page is after.
func newestFirst(fs []finding.Finding) []finding.Finding {
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b finding.Finding) int { return b.StartedAt.Compare(a.StartedAt) })
	return fs
}

var couplingColumns = []struct{ key, text string }{
	{"name", "node"}, {"kind", "kind"}, {"fan_in", "fan-in"}, {"fan_out", "fan-out"}, {"instability", "instability"},
	{"betweenness", "centrality rank"}, {"share", "shortest paths through it"},
}

// couplingPageRows is the number of rows of a page of the coupling table.
const couplingPageRows = 50

func (u *UI) archPage(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error) {
	q := r.URL.Query()
	c, err := u.o.Source.Coupling(ctx, v.Window)
	if err != nil {
		return nil, "", err
	}
	sortKey, dir := q.Get("sort"), q.Get("dir")
	if sortKey == "share" {
		sortKey = "betweenness" // the same order
	}
	if !slices.ContainsFunc(couplingColumns, func(c struct{ key, text string }) bool { return c.key == sortKey }) {
		sortKey = "betweenness"
	}
	if dir != "asc" {
		dir = "desc"
	}
	filter := strings.TrimSpace(q.Get("q"))
	if len(filter) > maxParamLen {
		return nil, "", fmt.Errorf("q: at most %d bytes", maxParamLen)
	}
	page := 1
	if s := q.Get("cpage"); s != "" {
		var err error
		if page, err = strconv.Atoi(s); err != nil || page < 1 {
			return nil, "", fmt.Errorf("cpage %q: want a page number from 1", s)
		}
	}
	ctl := u.controls("/architecture", v, nil, nil, false)
	ctl.NoRefresh = true // the page is read when it is loaded
	p := archPage{Controls: ctl, Generated: fmtTime(c.GeneratedAt), Filter: filter, Sort: sortKey, Dir: dir}
	// tableQuery is the table's state in a link: the sort, the filter and
	// the page, with the view's time.
	tableQuery := func(sort, dir, filter string, page int) string {
		qq := timeOnly(v).Query()
		qq.Set("sort", sort)
		qq.Set("dir", dir)
		if filter != "" {
			qq.Set("q", filter)
		}
		if page > 1 {
			qq.Set("cpage", strconv.Itoa(page))
		}
		return "/architecture?" + qq.Encode() + "#coupling"
	}
	for _, col := range couplingColumns {
		key := col.key
		if key == "share" {
			key = "betweenness"
		}
		nd := "desc"
		if key == sortKey && dir == "desc" {
			nd = "asc"
		}
		text := col.text
		if col.key == sortKey {
			text += map[string]string{"asc": " ▲", "desc": " ▼"}[dir]
		}
		p.Columns = append(p.Columns, column{Text: text, Href: tableQuery(key, nd, filter, 1), Active: key == sortKey})
	}
	rank := centralityRanks(c.Nodes)
	nodes := slices.DeleteFunc(slices.Clone(c.Nodes), func(n client.CouplingNode) bool {
		return filter != "" && !strings.Contains(strings.ToLower(n.Name), strings.ToLower(filter))
	})
	val := func(n client.CouplingNode, key string) float64 {
		switch key {
		case "fan_in":
			return float64(n.FanIn)
		case "fan_out":
			return float64(n.FanOut)
		case "instability":
			return n.Instability
		default:
			if n.Betweenness == nil {
				return 0
			}
			return *n.Betweenness
		}
	}
	slices.SortStableFunc(nodes, func(a, b client.CouplingNode) int {
		var c int
		switch sortKey {
		case "name":
			c = cmp.Compare(a.Name, b.Name)
		case "kind":
			c = cmp.Compare(a.Kind.String(), b.Kind.String())
		default:
			c = cmp.Compare(val(a, sortKey), val(b, sortKey))
		}
		if dir == "desc" {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		return c
	})
	names := map[string]string{}
	for _, n := range c.Nodes {
		names[n.ID] = n.Name
	}
	p.Total, p.Matching = len(c.Nodes), len(nodes)
	p.Pages = max(1, (len(nodes)+couplingPageRows-1)/couplingPageRows)
	p.Page = min(page, p.Pages)
	start := (p.Page - 1) * couplingPageRows
	if p.Page > 1 {
		p.Prev = tableQuery(sortKey, dir, filter, p.Page-1)
	}
	if p.Page < p.Pages {
		p.Next = tableQuery(sortKey, dir, filter, p.Page+1)
	}
	p.First, p.Last = start+1, min(start+couplingPageRows, len(nodes))
	p.Skipped = c.BetweennessSkipped
	tq := timeOnly(v).Query()
	for _, k := range slices.Sorted(maps.Keys(tq)) {
		p.Keep = append(p.Keep, hidden{Name: k, Value: tq.Get(k)})
	}
	for _, n := range nodes[start:p.Last] {
		row := couplingRow{
			Name: n.Name, Href: detailHref("/node", v, n.ID), Kind: n.Kind.String(),
			FanIn: fmt.Sprint(n.FanIn), FanOut: fmt.Sprint(n.FanOut),
			Instability: fmtFloat(n.Instability, 2), Rank: "—", Share: "—", // skipped: the graph is too large for it
		}
		if n.Betweenness != nil {
			row.Rank = fmt.Sprintf("%d of %d", rank[n.ID], len(c.Nodes))
			row.Share = fmtShare(*n.Betweenness)
		}
		p.Rows = append(p.Rows, row)
	}
	nameList := func(ids []string) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = cmpOr(names[id], id)
		}
		return strings.Join(out, " → ")
	}
	for _, cy := range c.Cycles {
		p.Cycles = append(p.Cycles, nameList(cy)+" → "+cmpOr(names[cy[0]], cy[0]))
	}
	p.Chain = nameList(c.LongestSyncChain)

	// The diff, when asked for. Its window is any duration the collector
	// accepts (at least two of its buckets): a window the UI cannot read
	// is refused with a message, never replaced by another.
	dwin := 5 * time.Minute
	p.DWindow = fmtDuration(dwin)
	var dwinErr error
	if s := strings.TrimSpace(q.Get("dwindow")); s != "" {
		p.DWindow = s
		if d, err := parseDuration(s); err != nil || d <= 0 {
			dwinErr = fmt.Errorf("window %q: want a positive duration like 10s, 5m or 1h", s)
		} else {
			dwin = d
		}
	}
	for _, d := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour} {
		p.DiffWindows = append(p.DiffWindows, option{Value: fmtDuration(d), Text: fmtDuration(d)})
	}
	now := u.o.Clock().UTC()
	from, to := now.Add(-time.Hour), now
	p.From, p.To = from.Format("2006-01-02T15:04"), to.Format("2006-01-02T15:04")
	if q.Get("from") != "" || q.Get("to") != "" {
		from, err1 := parseAt(q.Get("from"))
		to, err2 := parseAt(q.Get("to"))
		if err := cmp.Or(err1, err2, dwinErr); err != nil {
			p.DiffErr = err.Error()
		} else {
			p.From, p.To = from.Format("2006-01-02T15:04"), to.Format("2006-01-02T15:04")
			u.addDiff(ctx, &p, from, to, dwin, v)
		}
	} else if dwinErr != nil {
		p.DiffErr = dwinErr.Error()
	}
	return archBody(p), "Architecture", nil
}

func parseAt(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want 2026-01-02T15:04 (UTC)", s)
}

func (u *UI) addDiff(ctx context.Context, p *archPage, from, to time.Time, window time.Duration, v View) {
	d, err := u.o.Source.Diff(ctx, from, to, window)
	var refused *client.StatusError
	if errors.As(err, &refused) && refused.Code/100 == 4 {
		p.DiffErr = "The collector refused this diff: " + refused.Message
		return
	}
	if err != nil {
		p.DiffErr = "The diff cannot be read: " + err.Error()
		return
	}
	after, err := u.o.Source.Graph(ctx, window, to)
	if err != nil {
		p.DiffErr = "The graph at " + fmtTime(to) + " cannot be read: " + err.Error()
		return
	}
	m, err := buildMap(ctx, u.o.Layouter, mapInput{Snap: after, View: View{Window: window, At: to, Hops: 2}, MaxNodes: u.o.MaxNodes, Diff: &d.Diff, Base: "/"})
	if err != nil {
		p.DiffErr = "The diff cannot be drawn: " + err.Error()
		return
	}
	p.Diff = m
	if cs := u.changesIn(ctx, from, to, nil); len(cs) > 0 {
		p.Recorded = changeItems(cs)
		p.Timeline = &timeline{XStart: from.UTC().Format("15:04"), XEnd: to.UTC().Format("15:04"), Markers: markersOf(cs, from, to)}
	}
	if od := d.Observations; od != nil {
		p.ObsDiff = &obsDiff{Note: od.Note,
			Appeared: observationRows(od.Appeared, after, View{Window: window}),
			WentAway: observationRows(od.WentAway, after, View{Window: window})}
		if od.Note == "" {
			p.ObsDiff.Head = "Reviews of " + fmtTime(od.From) + " and " + fmtTime(od.To) + " compared"
		}
	}
	p.AddedNodes, p.RemovedNodes, p.AddedEdges, p.RemovedEdges = len(d.AddedNodes), len(d.RemovedNodes), len(d.AddedEdges), len(d.RemovedEdges)
	names := map[string]string{}
	for _, n := range after.Nodes {
		names[n.ID] = n.Name
	}
	for _, n := range d.RemovedNodes {
		names[n.ID] = n.Name
	}
	edgeName := func(src, dst string) string { return cmpOr(names[src], src) + " → " + cmpOr(names[dst], dst) }
	for _, n := range d.AddedNodes {
		p.Added = append(p.Added, n.Kind.String()+" "+n.Name)
	}
	for _, e := range d.AddedEdges {
		p.Added = append(p.Added, edgeName(e.Source, e.Target)+" ("+fmtRate(e.RatePerS)+")")
	}
	for _, n := range d.RemovedNodes {
		p.Removed = append(p.Removed, n.Kind.String()+" "+n.Name)
	}
	for _, e := range d.RemovedEdges {
		p.Removed = append(p.Removed, edgeName(e.Source, e.Target)+" (was "+fmtRate(e.RatePerS)+")")
	}
	for _, c := range d.ChangedEdges {
		row := changeRow{
			Edge:   edgeName(c.Source, c.Target),
			Rate:   fmtRate(c.Rate.From) + " → " + fmtRate(c.Rate.To),
			Errors: fmtPercent(c.ErrorRatio.From) + " → " + fmtPercent(c.ErrorRatio.To),
		}
		if c.P95 != nil {
			row.P95 = fmtMs(c.P95.From) + " → " + fmtMs(c.P95.To)
		}
		for _, what := range c.Changed {
			switch what {
			case "rate_per_s":
				row.Rate += " ●"
			case "error_ratio":
				row.Errors += " ●"
			case "p95_ms":
				row.P95 += " ●"
			}
		}
		p.Changes = append(p.Changes, row)
	}
}

// centralityRanks ranks nodes by betweenness, 1 the most central; nodes
// of equal betweenness share a rank (1, 2, 2, 4).
func centralityRanks(nodes []client.CouplingNode) map[string]int {
	bw := func(n client.CouplingNode) float64 {
		if n.Betweenness == nil {
			return 0
		}
		return *n.Betweenness
	}
	sorted := slices.Clone(nodes)
	slices.SortStableFunc(sorted, func(a, b client.CouplingNode) int { return cmp.Compare(bw(b), bw(a)) })
	ranks := make(map[string]int, len(nodes))
	for i, n := range sorted {
		if i > 0 && bw(n) == bw(sorted[i-1]) {
			ranks[n.ID] = ranks[sorted[i-1].ID]
			continue
		}
		ranks[n.ID] = i + 1
	}
	return ranks
}

// fmtShare writes a normalised betweenness (the share of the shortest
// paths between other nodes that pass through a node) as a percentage to
// three significant digits: "12.5%", "0.0312%", "0".
func fmtShare(b float64) string {
	p := b * 100
	if p <= 0 || math.IsNaN(p) || math.IsInf(p, 0) {
		return "0"
	}
	decimals := max(0, 2-int(math.Floor(math.Log10(p))))
	return strconv.FormatFloat(p, 'f', decimals, 64) + "%"
}
