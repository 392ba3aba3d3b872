package ui

import (
	"bytes"
	"context"
	"encoding/json"
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
		msg := h.u.updateFor(r.Context(), c)
		last = time.Now()
		if len(msg.HTML)+len(msg.SVG) == 0 {
			continue
		}
		b, err := json.Marshal(msg)
		if err != nil {
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(h.u.o.WriteTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
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
// of the same state.
type renderCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*rendered
}

type rendered struct {
	topology string
	whole    []fragment // HTML fragments always compared
	mapWrap  fragment   // the whole map
	svg      []fragment // each node and edge
}

func newRenderCache(max int) *renderCache {
	return &renderCache{max: max, m: map[string]*rendered{}}
}

func (rc *renderCache) get(key string, build func() *rendered) *rendered {
	rc.mu.Lock()
	r, ok := rc.m[key]
	rc.mu.Unlock()
	if ok {
		return r
	}
	r = build()
	rc.mu.Lock()
	if len(rc.m) >= rc.max {
		clear(rc.m) // versions move on every refresh: old entries are dead
	}
	rc.m[key] = r
	rc.mu.Unlock()
	return r
}

func renderString(ctx context.Context, c templ.Component) string {
	var b bytes.Buffer
	_ = c.Render(ctx, &b)
	return b.String()
}

// updateFor returns what changed on c's page since its last update.
func (u *UI) updateFor(ctx context.Context, c *liveClient) update {
	start := time.Now()
	defer func() { u.metrics.renderTime.WithLabelValues("live-" + c.page).Observe(time.Since(start).Seconds()) }()
	cur := u.state()
	key := strings.Join([]string{c.page, c.view.Key(), c.id, itoa(cur.version)}, "|")
	r := u.renders.get(key, func() *rendered { return u.renderPage(ctx, c.page, c.id, c.view, cur) })
	var msg update
	changed := func(f fragment) bool {
		h := fnv.New64a()
		h.Write([]byte(f.HTML))
		sum := h.Sum64()
		if c.sent[f.ID] == sum {
			return false
		}
		c.sent[f.ID] = sum
		return true
	}
	for _, f := range r.whole {
		if changed(f) {
			msg.HTML = append(msg.HTML, f)
		}
	}
	if r.mapWrap.ID != "" {
		if r.topology != c.topology {
			c.topology = r.topology
			msg.HTML = append(msg.HTML, r.mapWrap)
			for _, f := range r.svg {
				changed(f)
			}
		} else {
			for _, f := range r.svg {
				if changed(f) {
					msg.SVG = append(msg.SVG, f)
				}
			}
		}
	}
	return msg
}

// renderPage renders the live parts of a page.
func (u *UI) renderPage(ctx context.Context, page, id string, v View, cur current) *rendered {
	r := &rendered{}
	r.whole = append(r.whole,
		fragment{ID: "status", HTML: renderString(ctx, statusBanner(cur.status))},
		fragment{ID: "nav", HTML: renderString(ctx, navBar(nav(page, v, cur)))},
	)
	switch page {
	case "map":
		mp, err := u.buildMapPage(ctx, v, cur)
		if err != nil {
			r.whole[0].HTML = renderString(ctx, statusBanner(status{Problems: append(cur.status.Problems, "The map cannot be drawn: "+err.Error())}))
			return r
		}
		r.whole = append(r.whole,
			fragment{ID: "findings", HTML: renderString(ctx, findingsPanel(mp.Findings))},
			fragment{ID: "map-notes", HTML: `<div id="map-notes">` + renderString(ctx, mapNotes(mp.Notes, mp.Hidden)) + `</div>`},
		)
		r.topology = mp.Map.Topology
		if mp.Map.Empty {
			r.topology = "empty"
		}
		r.mapWrap = fragment{ID: "map-wrap", HTML: `<div id="map-wrap" class="map-wrap">` + renderString(ctx, mapSVG(mp.Map)) + `</div>`}
		for _, n := range mp.Map.Nodes {
			r.svg = append(r.svg, fragment{ID: n.DOMID, HTML: renderString(ctx, nodeG(n))})
		}
		for _, e := range mp.Map.Edges {
			r.svg = append(r.svg, fragment{ID: e.DOMID, HTML: renderString(ctx, edgeG(e))})
		}
	case "findings":
		m := buildFindings(cur.findings, v, u.o.Clock(), 200)
		r.whole = append(r.whole, fragment{ID: "findings", HTML: renderString(ctx, findingsPanel(m))})
	case "node":
		if p, err := u.buildNodePage(ctx, id, v, cur); err == nil {
			r.whole = append(r.whole, fragment{ID: "detail", HTML: renderString(ctx, nodeDetail(*p))})
		}
	case "edge":
		if p, err := u.buildEdgePage(ctx, id, v, cur); err == nil {
			r.whole = append(r.whole, fragment{ID: "detail", HTML: renderString(ctx, edgeDetail(*p))})
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
