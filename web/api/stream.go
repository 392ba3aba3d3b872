package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// HubOptions configure a Hub.
type HubOptions struct {
	// MaxClients bounds concurrent websocket clients (default 1,000);
	// beyond, upgrades are refused with 503.
	MaxClients int
	// AllowedOrigins are Origin values accepted besides the request's own
	// host (e.g. "https://ui.example.com"); requests without Origin
	// (non-browser clients) are accepted.
	AllowedOrigins []string
	// WriteTimeout bounds each write to a client (default 10s); a client
	// that cannot take a message in time is dropped.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Hub fans messages out to websocket clients. Each client holds at most the
// latest message of each topic: a slow client gets the newest state
// coalesced and never holds up the publisher or other clients. Safe for
// concurrent use.
type Hub struct {
	o        HubOptions
	upgrader websocket.Upgrader
	clients  prometheus.Gauge
	dropped  prometheus.Counter

	mu    sync.Mutex
	conns map[*streamClient]struct{}
	last  map[string][]byte // newest message per topic, sent to new clients
	order []string          // topics in first-published order
}

type streamClient struct {
	mu      sync.Mutex
	pending map[string][]byte
	notify  chan struct{}
	done    chan struct{}
}

// NewHub returns a Hub for o.
func NewHub(o HubOptions) (*Hub, error) {
	if o.MaxClients <= 0 {
		o.MaxClients = 1000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		o:     o,
		conns: map[*streamClient]struct{}{},
		last:  map[string][]byte{},
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_stream_clients",
			Help: "Websocket clients connected to the stream.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_stream_messages_coalesced_total",
			Help: "Stream messages replaced by a newer one before a slow client took them.",
		}),
	}
	h.upgrader = websocket.Upgrader{CheckOrigin: h.checkOrigin, HandshakeTimeout: 10 * time.Second}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{h.clients, h.dropped} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// checkOrigin accepts requests without Origin, from the request's own host,
// or from an allowed origin: a page elsewhere cannot read the stream with
// the user's credentials.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range h.o.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}

// Publish sends v, JSON-encoded as {"type": topic, "data": v}, to every
// client, replacing any message of the same topic a client has not taken
// yet. It never blocks on clients.
func (h *Hub) Publish(topic string, v any) error {
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
	}{topic, v})
	if err != nil {
		return err
	}
	h.mu.Lock()
	if _, ok := h.last[topic]; !ok {
		h.order = append(h.order, topic)
	}
	h.last[topic] = b
	clients := make([]*streamClient, 0, len(h.conns))
	for c := range h.conns {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	for _, c := range clients {
		h.offer(c, topic, b)
	}
	return nil
}

func (h *Hub) offer(c *streamClient, topic string, b []byte) {
	c.mu.Lock()
	if _, replaced := c.pending[topic]; replaced {
		h.dropped.Inc()
	}
	c.pending[topic] = b
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// ServeHTTP upgrades to a websocket and streams until the client leaves.
// New clients first get the newest message of every topic.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	full := len(h.conns) >= h.o.MaxClients
	h.mu.Unlock()
	if full {
		writeError(w, http.StatusServiceUnavailable, errors.New("too many stream clients"))
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &streamClient{pending: map[string][]byte{}, notify: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	h.conns[c] = struct{}{}
	for _, t := range h.order {
		c.pending[t] = h.last[t]
	}
	h.mu.Unlock()
	h.clients.Inc()
	c.notify <- struct{}{}
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		h.clients.Dec()
		conn.Close()
	}()

	// Reader: answers pings and notices the client leaving.
	conn.SetReadLimit(4096)
	go func() {
		defer close(c.done)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-r.Context().Done():
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.o.WriteTimeout)); err != nil {
				return
			}
		case <-c.notify:
			c.mu.Lock()
			batch := c.pending
			c.pending = make(map[string][]byte, len(batch))
			c.mu.Unlock()
			for _, t := range h.topicsOf(batch) {
				_ = conn.SetWriteDeadline(time.Now().Add(h.o.WriteTimeout))
				if err := conn.WriteMessage(websocket.TextMessage, batch[t]); err != nil {
					h.o.Logger.Debug("stream client dropped", "err", err)
					return
				}
			}
		}
	}
}

// topicsOf returns batch's topics in publishing order.
func (h *Hub) topicsOf(batch map[string][]byte) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(batch))
	for _, t := range h.order {
		if _, ok := batch[t]; ok {
			out = append(out, t)
		}
	}
	return out
}
