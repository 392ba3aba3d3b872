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
)

// hub serves live updates to pages. Each page holds one connection and a
// one-slot wake-up: a change while the page is still being written to, or
// sooner than the refresh the page asked for, folds into the next update,
// so a slow page gets the newest state and never holds up others.
type hub struct {
	u        *UI
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[*liveClient]struct{}
	closed  bool
}

type liveClient struct {
	page   string
	view   View
	id     string // node or edge pages
	notify chan struct{}
	done   chan struct{}

	// What the page shows now: fragment id -> hash of its HTML, and the
	// topology of its map.
	sent     map[string]uint64
	topology string
	conn     *websocket.Conn
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

func newHub(u *UI) *hub {
	h := &hub{u: u, clients: map[*liveClient]struct{}{}}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 16 << 10,
		CheckOrigin: h.checkOrigin,
		// permessage-deflate, as browsers offer it: a redrawn map is
		// about a tenth of its size compressed, and each update is
		// compressed once for every page it goes to (PreparedMessage).
		EnableCompression: true,
	}
	return h
}

// checkOrigin accepts pages of this host and the allowed origins; requests
// without Origin come from non-browser clients and are accepted.
func (h *hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range h.u.o.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v, err := parseView(q)
	page := q.Get("page")
	if err != nil || (page != "map" && page != "findings" && page != "node" && page != "edge") {
		http.Error(w, "bad live-update request", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	full := len(h.clients) >= h.u.o.MaxClients || h.closed
	h.mu.Unlock()
	if full {
		http.Error(w, "too many live pages", http.StatusServiceUnavailable)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	c := &liveClient{page: page, view: v, id: q.Get("id"), notify: make(chan struct{}, 1), done: make(chan struct{}), sent: map[string]uint64{}, conn: conn}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	h.u.metrics.clients.Inc()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
		h.u.metrics.clients.Dec()
		conn.Close()
	}()
	conn.SetReadLimit(1024)
	go func() {
		defer close(c.done)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	c.notify <- struct{}{} // bring the page up to date at once
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-r.Context().Done():
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.u.o.WriteTimeout)); err != nil {
				return
			}
			continue
		case <-c.notify:
		}
		if !v.Live() {
			continue
		}
		if wait := v.Refresh - time.Since(last); !last.IsZero() && wait > 0 {
			h.u.metrics.coalesced.Inc()
			select {
			case <-c.done:
				return
			case <-time.After(wait):
			}
			select {
			case <-c.notify: // folded into this update
			default:
			}
		}
		msg, rd, sig := h.u.updateFor(r.Context(), c)
		last = time.Now()
		if len(msg.HTML)+len(msg.SVG) == 0 {
			continue
		}
		pm, err := rd.prepared(sig, msg)
		if err != nil {
			h.u.o.Logger.Warn("encoding a live update", "err", err)
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(h.u.o.WriteTimeout))
		if err := conn.WritePreparedMessage(pm); err != nil {
			h.u.o.Logger.Debug("live page dropped", "err", err)
			return
		}
		h.u.metrics.sent.Inc()
	}
}

// wakeAll tells every page that the state changed. It never blocks.
func (h *hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.notify <- struct{}{}:
		default:
			h.u.metrics.coalesced.Inc()
		}
	}
}

// closeAll ends every connection (the pages reconnect to whoever serves
// next).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping"), time.Now().Add(time.Second))
		c.conn.Close()
	}
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
// r, they determine the message).
func (u *UI) updateFor(ctx context.Context, c *liveClient) (msg update, r *rendered, sig string) {
	start := time.Now()
	defer func() { u.metrics.renderTime.WithLabelValues("live-" + c.page).Observe(time.Since(start).Seconds()) }()
	cur := u.state()
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
			newFragment("map-notes", `<div id="map-notes">`+renderString(ctx, mapNotes(mp.Notes, mp.Hidden))+`</div>`),
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
		m := buildFindings(cur.findings, v, u.o.Clock(), 200)
		r.whole = append(r.whole, newFragment("findings", renderString(ctx, findingsPanel(m))))
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
