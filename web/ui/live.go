package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/websocket"

	"github.com/seed-a49a8342/cartograph/web/live"
)

// liveClient is one live page: what it shows and what it was sent. It is
// the page's live.Session; the connection's goroutine alone uses it.
type liveClient struct {
	u    *UI
	page string
	view View
	id   string // node or edge pages

	// What the page shows now: fragment id -> hash of its HTML, the
	// topology of its map, and the version of the state it was last
	// brought up to.
	sent     map[string]uint64
	topology string
	version  uint64
}

// fragment is one element to replace on the page, by id.
type fragment struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
	sum  uint64 // FNV-1a of HTML: what a page was sent, compared
}

func newFragment(id, html string) fragment {
	h := fnv.New64a()
	h.Write([]byte(html))
	return fragment{ID: id, HTML: html, sum: h.Sum64()}
}

// update is one message to a page: HTML elements and SVG elements (parsed
// by the page in the SVG namespace) to replace.
type update struct {
	HTML []fragment `json:"html,omitempty"`
	SVG  []fragment `json:"svg,omitempty"`
}

// serveLive serves a page's live updates: each brings the page from what
// it was last sent to the newest state, no more often than the page's
// refresh; the states in between are coalesced.
func (u *UI) serveLive(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v, err := parseView(q)
	page := q.Get("page")
	if err != nil || (page != "map" && page != "findings" && page != "node" && page != "edge" && page != "incidents" && page != "review") {
		http.Error(w, "bad live-update request", http.StatusBadRequest)
		return
	}
	id := q.Get("id")
	if page == "review" { // the page's filter: part of what it shows
		f, err := parseReviewFilter(q)
		if err != nil {
			http.Error(w, "bad live-update request", http.StatusBadRequest)
			return
		}
		id = f.query().Encode()
	}
	c := &liveClient{u: u, page: page, view: v, id: id, sent: map[string]uint64{}}
	u.live.Serve(w, r, c, v.Refresh)
}

// Next implements live.Session: what changed on the page since its last
// update (nothing for a page that is not live), encoded once for every
// page sent the same.
func (c *liveClient) Next(ctx context.Context) (live.Update, error) {
	var out live.Update
	if !c.view.Live() {
		return out, nil
	}
	prev := c.version
	msg, rd, sig := c.u.updateFor(ctx, c)
	if prev != 0 && c.version > prev+1 {
		out.Coalesced = int(c.version - prev - 1)
	}
	if len(msg.HTML)+len(msg.SVG) == 0 {
		return out, nil
	}
	pm, err := rd.prepared(sig, msg)
	if err != nil {
		return out, err
	}
	out.Messages = []*websocket.PreparedMessage{pm}
	return out, nil
}

// renderCache shares rendered fragments between pages with the same view
// of the same state: the first page to ask renders them, the others wait
// for it (after a refresh every live page asks at once).
type renderCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*renderEntry
}

type renderEntry struct {
	ready chan struct{} // closed once r is set
	r     *rendered
}

// rendered is the live parts of a page. Its fragments are immutable; the
// encoded updates are shared by pages sent the same fragments.
type rendered struct {
	topology string
	whole    []fragment // HTML fragments always compared
	mapWrap  fragment   // the whole map
	svg      []fragment // each node and edge

	mu      sync.Mutex
	encoded map[string]*websocket.PreparedMessage // by the ids of the fragments sent
}

// maxEncoded bounds the encoded updates a rendered page keeps: pages
// that were up to date get the same few (the changed nodes and edges, or
// the whole map).
const maxEncoded = 8

// prepared returns msg encoded for the websocket, shared with every page
// sent the same fragments of r (sig names them).
func (r *rendered) prepared(sig string, msg update) (*websocket.PreparedMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pm, ok := r.encoded[sig]; ok {
		return pm, nil
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("live update: %w", err)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil, fmt.Errorf("live update: %w", err)
	}
	if r.encoded == nil {
		r.encoded = map[string]*websocket.PreparedMessage{}
	}
	if len(r.encoded) < maxEncoded {
		r.encoded[sig] = pm
	}
	return pm, nil
}

func newRenderCache(max int) *renderCache {
	return &renderCache{max: max, m: map[string]*renderEntry{}}
}

func (rc *renderCache) get(key string, build func() *rendered) *rendered {
	rc.mu.Lock()
	e, ok := rc.m[key]
	if !ok {
		if len(rc.m) >= rc.max {
			clear(rc.m) // versions move on every refresh: old entries are dead
		}
		e = &renderEntry{ready: make(chan struct{})}
		rc.m[key] = e
	}
	rc.mu.Unlock()
	if !ok {
		e.r = build()
		close(e.ready)
	}
	<-e.ready
	return e.r
}

func renderString(ctx context.Context, c templ.Component) string {
	var b bytes.Buffer
	_ = c.Render(ctx, &b)
	return b.String()
}

// updateFor returns what changed on c's page since its last update, the
// rendered page it comes from, and the ids of its fragments (sig: with
// r, they determine the message); c records it as sent.
func (u *UI) updateFor(ctx context.Context, c *liveClient) (msg update, r *rendered, sig string) {
	start := time.Now()
	defer func() { u.metrics.renderTime.WithLabelValues("live-" + c.page).Observe(time.Since(start).Seconds()) }()
	cur := u.state()
	c.version = cur.version
	key := strings.Join([]string{c.page, c.view.Key(), c.id, itoa(cur.version)}, "|")
	// Other pages may wait for this render: it outlives this page.
	shared := context.WithoutCancel(ctx)
	r = u.renders.get(key, func() *rendered { return u.renderPage(shared, c.page, c.id, c.view, cur) })
	var ids strings.Builder
	changed := func(f fragment) bool {
		if c.sent[f.ID] == f.sum {
			return false
		}
		c.sent[f.ID] = f.sum
		return true
	}
	add := func(to *[]fragment, kind byte, f fragment) {
		*to = append(*to, f)
		ids.WriteByte(kind)
		ids.WriteString(f.ID)
	}
	for _, f := range r.whole {
		if changed(f) {
			add(&msg.HTML, 'h', f)
		}
	}
	if r.mapWrap.ID != "" {
		if r.topology != c.topology {
			c.topology = r.topology
			add(&msg.HTML, 'h', r.mapWrap)
			for _, f := range r.svg {
				changed(f)
			}
		} else {
			for _, f := range r.svg {
				if changed(f) {
					add(&msg.SVG, 's', f)
				}
			}
		}
	}
	return msg, r, ids.String()
}

// renderPage renders the live parts of a page.
func (u *UI) renderPage(ctx context.Context, page, id string, v View, cur current) *rendered {
	r := &rendered{}
	r.whole = append(r.whole,
		newFragment("status", renderString(ctx, statusBanner(cur.status))),
		newFragment("nav", renderString(ctx, navBar(nav(page, v, cur)))),
	)
	switch page {
	case "map":
		mp, err := u.buildMapPage(ctx, v, cur)
		if err != nil {
			r.whole[0] = newFragment("status", renderString(ctx, statusBanner(status{Problems: append(cur.status.Problems, "The map cannot be drawn: "+err.Error())})))
			return r
		}
		r.whole = append(r.whole,
			newFragment("findings", renderString(ctx, findingsPanel(mp.Findings))),
			newFragment("map-notes", `<div id="map-notes">`+renderString(ctx, mapNotes(mp.Bar))+`</div>`),
		)
		r.topology = mp.Map.Topology
		if mp.Map.Empty {
			r.topology = "empty"
		}
		r.mapWrap = newFragment("map-wrap", `<div id="map-wrap" class="map-wrap">`+renderString(ctx, mapSVG(mp.Map))+`</div>`)
		for _, n := range mp.Map.Nodes {
			r.svg = append(r.svg, newFragment(n.DOMID, renderString(ctx, nodeG(n))))
		}
		for _, e := range mp.Map.Edges {
			r.svg = append(r.svg, newFragment(e.DOMID, renderString(ctx, edgeG(e))))
		}
	case "findings":
		r.whole = append(r.whole, newFragment("findings", renderString(ctx, findingsPanel(u.findingsModelFor(ctx, v, cur)))))
	case "incidents":
		r.whole = append(r.whole, newFragment("incidents", renderString(ctx, incidentsContent(u.buildIncidents(ctx, id, v, cur)))))
	case "review":
		f, _ := parseReviewFilter(mustQuery(id)) // checked by serveLive
		if m, err := u.buildReview(ctx, f, v, cur); err == nil {
			r.whole = append(r.whole, newFragment("review", renderString(ctx, reviewContent(m))))
		}
	case "node":
		if p, err := u.buildNodePage(ctx, id, v, cur); err == nil {
			r.whole = append(r.whole, newFragment("detail", renderString(ctx, nodeDetail(*p))))
		}
	case "edge":
		if p, err := u.buildEdgePage(ctx, id, v, cur); err == nil {
			r.whole = append(r.whole, newFragment("detail", renderString(ctx, edgeDetail(*p))))
		}
	}
	return r
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// mustQuery parses a query this package encoded.
func mustQuery(s string) url.Values {
	q, _ := url.ParseQuery(s)
	return q
}
