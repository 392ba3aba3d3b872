// Package live fans state out to websocket clients. Each connection has a
// one-slot wake-up: when woken it asks its Session what the client lacks
// and writes that, so a change arriving while a client is still being
// written to folds into its next update. A slow client gets the newest
// state, coalesced, and never holds up the publisher or the other clients.
//
// The package knows nothing of what is sent: its users (the API's change
// stream, the UI's live pages) supply a Session per connection.
package live

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons Serve refuses a connection, passed to Options.Refuse.
var (
	// ErrFull: the hub already holds Options.MaxClients connections.
	ErrFull = errors.New("live: too many clients")
	// ErrClosed: CloseAll was called; the hub takes no more clients.
	ErrClosed = errors.New("live: closed")
)

const (
	// pingInterval is how often a connection is pinged: a peer that went
	// away without closing is noticed when a ping cannot be written.
	pingInterval = 30 * time.Second
	// readLimit bounds a message from a client; clients send none, so
	// only control frames are expected.
	readLimit = 4096
)

// Session is what one connection is sent. The hub calls Next from that
// connection's goroutine only, never concurrently: once when the
// connection opens, then after wake-ups (WakeAll), no sooner than the
// connection's minimum interval after the previous call.
type Session interface {
	// Next returns what brings the client up to date with the state now
	// (no messages: nothing changed for it). The messages may be shared
	// with other sessions and must not change after Next returns. ctx ends
	// when the client leaves or the hub closes. An error ends the
	// connection.
	Next(ctx context.Context) (Update, error)
}

// Update is one Next's answer.
type Update struct {
	// Messages are written in order.
	Messages []*websocket.PreparedMessage
	// Coalesced is how many changes these messages fold in that the client
	// was never sent on their own (a newer one replaced them before it
	// took them); counted in Metrics.Coalesced.
	Coalesced int
}

// Metrics are the hub's counters, created and named by its user so that
// each user keeps its own metric names. Nil ones are not counted.
type Metrics struct {
	// Clients is the connections open now.
	Clients prometheus.Gauge
	// Sent counts messages written to clients.
	Sent prometheus.Counter
	// Coalesced counts changes folded into a later message (Update.Coalesced).
	Coalesced prometheus.Counter
}

// Options configure a Hub.
type Options struct {
	// MaxClients bounds open connections (default 1,000); beyond, Serve
	// refuses new ones with Refuse.
	MaxClients int
	// AllowedOrigins are Origin values accepted besides the request's own
	// host (e.g. "https://ui.example.com"); requests without Origin come
	// from non-browser clients and are accepted. Others get 403.
	AllowedOrigins []string
	// WriteTimeout bounds each write to a client (default 10s); a client
	// that cannot take a message in time is dropped.
	WriteTimeout time.Duration
	// Compression negotiates permessage-deflate with clients that offer it
	// (browsers do); each message is then compressed once for all of them
	// (websocket.PreparedMessage). Clients that do not offer it are sent
	// plain messages.
	Compression bool
	// Refuse answers a refused connection; err is ErrFull or ErrClosed.
	// Default: 503 with err's text.
	Refuse  func(w http.ResponseWriter, err error)
	Metrics Metrics
	Logger  *slog.Logger
}

// Hub holds websocket connections and wakes them when the state changes.
// Create it with New. Safe for concurrent use.
type Hub struct {
	o        Options
	upgrader websocket.Upgrader

	mu       sync.Mutex
	conns    map[*conn]struct{}
	admitted int  // connections counted against MaxClients, those upgrading included
	closed   bool // by CloseAll
}

// conn is one client's connection. Only its Serve writes data messages
// to ws; CloseAll and pings write control frames, which the websocket
// library allows concurrently.
type conn struct {
	ws   *websocket.Conn
	wake chan struct{} // one slot: wake-ups while one is pending fold into it
}

// New returns a Hub for o.
func New(o Options) *Hub {
	if o.MaxClients <= 0 {
		o.MaxClients = 1000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Refuse == nil {
		o.Refuse = func(w http.ResponseWriter, err error) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{o: o, conns: map[*conn]struct{}{}}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// Buffer sizes 0: the connection keeps the HTTP server's buffers
		// rather than allocating its own. Data goes out as prepared
		// frames, which bypass the write buffer anyway.
		CheckOrigin:       h.checkOrigin,
		EnableCompression: o.Compression,
	}
	return h
}

// checkOrigin accepts requests without Origin, from the request's own
// host, or from an allowed origin: a page elsewhere cannot read what the
// hub sends with the user's credentials.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, a := range h.o.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// Serve upgrades r to a websocket and sends it s's updates until the
// client leaves, a write fails or times out, s fails, or CloseAll. Updates
// are at least minInterval apart (0: as soon as woken); changes in between
// fold into the next one. A refused connection (too many, or closed) is
// answered by Options.Refuse, a foreign Origin with 403. Serve returns
// when the connection has ended.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, s Session, minInterval time.Duration) {
	if err := h.admit(); err != nil {
		h.o.Refuse(w, err)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.leave(nil) // the upgrader has answered
		return
	}
	c := &conn{ws: ws, wake: make(chan struct{}, 1)}
	if !h.join(c) {
		goingAway(ws)
		h.leave(nil)
		return
	}
	defer func() {
		h.leave(c)
		ws.Close()
	}()
	h.run(r.Context(), c, s, minInterval)
}

// admit counts a connection against MaxClients before its upgrade, so
// that concurrent upgrades cannot exceed the bound.
func (h *Hub) admit() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return ErrClosed
	case h.admitted >= h.o.MaxClients:
		return ErrFull
	}
	h.admitted++
	return nil
}

// join makes c one of the connections WakeAll and CloseAll reach; false
// if the hub closed meanwhile.
func (h *Hub) join(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	if g := h.o.Metrics.Clients; g != nil {
		g.Inc()
	}
	return true
}

// leave gives back an admitted connection's place; c is nil if it never
// joined.
func (h *Hub) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.admitted--
	if c == nil {
		return
	}
	delete(h.conns, c)
	if g := h.o.Metrics.Clients; g != nil {
		g.Dec()
	}
}

// run is c's loop: a reader notices the client leaving (and answers its
// pings); the loop pings, waits for wake-ups, spaces them by minInterval
// and writes what s returns.
func (h *Hub) run(ctx context.Context, c *conn, s Session, minInterval time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.ws.SetReadLimit(readLimit)
	go func() {
		defer cancel()
		for {
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	c.wake <- struct{}{} // bring the client up to date at once
	var (
		last time.Time        // of the last update
		due  <-chan time.Time // set while a wake-up waits for minInterval
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.o.WriteTimeout)); err != nil {
				return
			}
			continue
		case <-c.wake:
			if due != nil {
				continue // folds into the update already waiting
			}
			if wait := minInterval - time.Since(last); !last.IsZero() && wait > 0 {
				due = time.After(wait)
				continue
			}
		case <-due:
			due = nil
		}
		u, err := s.Next(ctx)
		last = time.Now()
		if err != nil {
			if ctx.Err() == nil {
				h.o.Logger.Warn("live update failed; closing the connection", "err", err)
			}
			return
		}
		if n := h.o.Metrics.Coalesced; n != nil && u.Coalesced > 0 {
			n.Add(float64(u.Coalesced))
		}
		for _, m := range u.Messages {
			_ = c.ws.SetWriteDeadline(time.Now().Add(h.o.WriteTimeout))
			if err := c.ws.WritePreparedMessage(m); err != nil {
				h.o.Logger.Debug("live client dropped", "err", err)
				return
			}
			if n := h.o.Metrics.Sent; n != nil {
				n.Inc()
			}
		}
	}
}

// WakeAll tells every connection that the state changed: each asks its
// Session for an update when it is free to. It never blocks on clients.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		select {
		case c.wake <- struct{}{}:
		default: // one is pending: this change folds into it
		}
	}
}

// CloseAll closes every connection with "going away" (browsers' pages
// reconnect, to whichever server answers next) and refuses new ones with
// ErrClosed. It returns once each connection was sent its close, or
// failed to take it within a second.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	h.closed = true
	conns := slices.Collect(maps.Keys(h.conns))
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { goingAway(c.ws) })
	}
	wg.Wait()
}

// goingAway closes ws, telling the client that the server is stopping.
func goingAway(ws *websocket.Conn) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping"), time.Now().Add(time.Second))
	ws.Close()
}
