package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// View is what a page shows, read from its URL so that a link shows what
// its sender saw. The zero View is the live map with the defaults.
type View struct {
	// Window is the graph's window (0: the collector's default).
	Window time.Duration
	// At, when set, shows the graph as it was (from storage); the page is
	// then not updated live.
	At time.Time
	// Refresh is how often the page is updated (0: paused).
	Refresh time.Duration
	// Focus is a node id whose neighbourhood alone is shown, Hops up and
	// down from it.
	Focus string
	Hops  int
	// Hide lists node ids not drawn (a gateway that talks to everything).
	Hide []string
	// Collapse lists namespaces drawn as one node (maps small enough to
	// draw whole); Expand lists the groups opened on the overview (maps
	// of more nodes than Options.MaxNodes): drawn in full, with the groups
	// they talk to around them.
	Collapse, Expand []string
	// Group is what the overview groups nodes by: "" (or "namespace"):
	// namespaces; else a resource attribute kept on nodes
	// (--node-attributes), e.g. "team".
	Group string
	// Env is the deployment environment the map shows (the services of
	// that environment and what they talk to: graph.Snapshot.InEnvironment);
	// "" shows the whole graph, and says so when it mixes environments;
	// EnvAll ("all") shows the whole graph on purpose.
	Env string
	// GroupPage is the page of groups the overview draws when there are
	// more than Options.MaxGroups (1: the first).
	GroupPage int
	// Search highlights nodes whose name contains it (case-insensitive).
	Search string
	// Incident, when set, draws only what firing findings touch: their
	// subjects, their blast radii and the edges between them. IncidentAll
	// ("1") takes every firing finding; anything else is one finding's id.
	Incident string
	// NoDim keeps the map at full strength while findings fire (by
	// default what no firing finding touches is dimmed).
	NoDim bool
}

// EnvAll is the Env of a view that shows every environment on one map.
const EnvAll = "all"

// IncidentAll is the Incident of a view that shows every firing finding.
const IncidentAll = "1"

// Bounds of what a URL may ask for.
const (
	defaultRefresh = time.Second
	maxHops        = 6
	maxGroupPage   = 10_000
	maxListParams  = 200
	maxParamLen    = 512
)

// parseView reads a View from a URL query; unknown or malformed values get
// an error that names them.
func parseView(q url.Values) (View, error) {
	v := View{Refresh: defaultRefresh, Hops: 2}
	var err error
	if s := q.Get("window"); s != "" {
		if v.Window, err = parseDuration(s); err != nil || v.Window < time.Second {
			return v, fmt.Errorf("window %q: want a duration like 60s, 5m or 1h", s)
		}
	}
	if s := q.Get("at"); s != "" {
		if v.At, err = time.Parse(time.RFC3339, s); err != nil {
			if v.At, err = time.ParseInLocation("2006-01-02T15:04", s, time.UTC); err != nil {
				return v, fmt.Errorf("at %q: want a time like 2026-01-02T15:04:05Z", s)
			}
		}
	}
	if q.Has("refresh") {
		s := q.Get("refresh")
		switch s {
		case "", "0", "off":
			v.Refresh = 0
		default:
			if v.Refresh, err = parseDuration(s); err != nil || v.Refresh < time.Second {
				return v, fmt.Errorf("refresh %q: want off or a duration of 1s or more", s)
			}
		}
	}
	v.Focus = q.Get("focus")
	if s := q.Get("hops"); s != "" {
		if v.Hops, err = strconv.Atoi(s); err != nil || v.Hops < 0 || v.Hops > maxHops {
			return v, fmt.Errorf("hops %q: want 0 to %d", s, maxHops)
		}
	}
	v.Search = strings.TrimSpace(q.Get("q"))
	v.Group = strings.TrimSpace(q.Get("group"))
	if v.Group == "namespace" || v.Group == "service.namespace" {
		v.Group = ""
	}
	v.Env = strings.TrimSpace(q.Get("env"))
	v.GroupPage = 1
	if s := q.Get("gpage"); s != "" {
		if v.GroupPage, err = strconv.Atoi(s); err != nil || v.GroupPage < 1 || v.GroupPage > maxGroupPage {
			return v, fmt.Errorf("gpage %q: want 1 to %d", s, maxGroupPage)
		}
	}
	v.Incident = strings.TrimSpace(q.Get("incident"))
	if v.Incident == "all" {
		v.Incident = IncidentAll
	}
	switch s := q.Get("dim"); s {
	case "", "on", "1":
	case "off", "0":
		v.NoDim = true
	default:
		return v, fmt.Errorf("dim %q: want on or off", s)
	}
	for name, dst := range map[string]*[]string{"hide": &v.Hide, "collapse": &v.Collapse, "expand": &v.Expand} {
		vals := q[name]
		if len(vals) > maxListParams {
			return v, fmt.Errorf("%s: at most %d values", name, maxListParams)
		}
		for _, s := range vals {
			if s != "" {
				*dst = append(*dst, s)
			}
		}
		slices.Sort(*dst)
		*dst = slices.Compact(*dst)
	}
	for _, s := range slices.Concat([]string{v.Focus, v.Search, v.Incident, v.Group, v.Env}, v.Hide, v.Collapse, v.Expand) {
		if len(s) > maxParamLen {
			return v, fmt.Errorf("a parameter is longer than %d bytes", maxParamLen)
		}
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// Query returns v as URL parameters, defaults omitted.
func (v View) Query() url.Values {
	q := url.Values{}
	if v.Window > 0 {
		q.Set("window", fmtDuration(v.Window))
	}
	if !v.At.IsZero() {
		q.Set("at", v.At.UTC().Format(time.RFC3339))
	}
	if v.Refresh != defaultRefresh {
		if v.Refresh == 0 {
			q.Set("refresh", "off")
		} else {
			q.Set("refresh", fmtDuration(v.Refresh))
		}
	}
	if v.Focus != "" {
		q.Set("focus", v.Focus)
		if v.Hops != 2 {
			q.Set("hops", strconv.Itoa(v.Hops))
		}
	}
	if v.Search != "" {
		q.Set("q", v.Search)
	}
	if v.Incident != "" {
		q.Set("incident", v.Incident)
	}
	if v.Group != "" {
		q.Set("group", v.Group)
	}
	if v.Env != "" {
		q.Set("env", v.Env)
	}
	if v.GroupPage > 1 {
		q.Set("gpage", strconv.Itoa(v.GroupPage))
	}
	if v.NoDim {
		q.Set("dim", "off")
	}
	for _, s := range v.Hide {
		q.Add("hide", s)
	}
	for _, s := range v.Collapse {
		q.Add("collapse", s)
	}
	for _, s := range v.Expand {
		q.Add("expand", s)
	}
	return q
}

// Key identifies the rendering of v: views with equal keys look the same.
func (v View) Key() string { return v.Query().Encode() }

// With returns a copy of v changed by f, for building links.
func (v View) With(f func(*View)) View {
	c := v
	c.Hide = slices.Clone(v.Hide)
	c.Collapse = slices.Clone(v.Collapse)
	c.Expand = slices.Clone(v.Expand)
	f(&c)
	return c
}

// Href returns path with v's parameters.
func (v View) Href(path string) string {
	if q := v.Query().Encode(); q != "" {
		return path + "?" + q
	}
	return path
}

// Live reports whether the view is updated as the graph changes.
func (v View) Live() bool { return v.At.IsZero() && v.Refresh > 0 }

func fmtDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	default:
		return d.String()
	}
}
