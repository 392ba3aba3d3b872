package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/web/live"
)

// ErrStreamMessage: PublishEncoded was given bytes that do not start as a
// message of its topic.
var ErrStreamMessage = errors.New(`stream message must be {"type":topic,"data":...}`)

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

// Hub serves the change stream: the newest message of each topic, to every
// websocket client. A client that is slow gets the newest message of each
// topic, the older ones coalesced, and never holds up the publisher or
// other clients. Messages are compressed (permessage-deflate) for clients
// that offer it, once for all of them. Safe for concurrent use.
type Hub struct {
	live *live.Hub

	mu     sync.Mutex
	topics []*streamTopic // in first-published order; never removed
	byName map[string]int // index in topics
}

// streamTopic is one topic's newest message. Its fields change under
// Hub.mu; a message, once published, is never changed.
type streamTopic struct {
	seq uint64 // messages published so far
	msg *websocket.PreparedMessage
}

// NewHub returns a Hub for o.
func NewHub(o HubOptions) (*Hub, error) {
	m := live.Metrics{
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_stream_clients",
			Help: "Websocket clients connected to the stream.",
		}),
		Sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_stream_messages_sent_total",
			Help: "Stream messages written to clients.",
		}),
		Coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_stream_messages_coalesced_total",
			Help: "Stream messages replaced by a newer one before a slow client took them.",
		}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.Clients, m.Sent, m.Coalesced} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("stream: register metrics: %w", err)
			}
		}
	}
	h := &Hub{byName: map[string]int{}}
	h.live = live.New(live.Options{
		MaxClients: o.MaxClients, AllowedOrigins: o.AllowedOrigins, WriteTimeout: o.WriteTimeout,
		// The graph is large and repetitive JSON; it is compressed once
		// per publish, and only if a client asked for it.
		Compression: true,
		Refuse: func(w http.ResponseWriter, err error) {
			if errors.Is(err, live.ErrFull) {
				err = errors.New("too many stream clients")
			} else {
				err = errors.New("the stream is closed: the collector is stopping")
			}
			writeError(w, http.StatusServiceUnavailable, err)
		},
		Metrics: m, Logger: o.Logger,
	})
	return h, nil
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
		return fmt.Errorf("stream %s: %w", topic, err)
	}
	return h.publish(topic, b)
}

// PublishEncoded is Publish of a message already encoded whole, as
// {"type":topic,"data":...} (the type first, as Publish writes it): a
// caller that encoded a value once for other uses sends those bytes. Only
// the beginning of msg is checked (ErrStreamMessage); the rest must be
// the JSON the stream promises. PublishEncoded does not keep msg.
func (h *Hub) PublishEncoded(topic string, msg []byte) error {
	t, err := json.Marshal(topic)
	if err != nil {
		return fmt.Errorf("stream %s: %w", topic, err)
	}
	if !bytes.HasPrefix(msg, append([]byte(`{"type":`), t...)) {
		return fmt.Errorf("stream %s: %w", topic, ErrStreamMessage)
	}
	return h.publish(topic, msg)
}

func (h *Hub) publish(topic string, msg []byte) error {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, msg) // copies msg
	if err != nil {
		return fmt.Errorf("stream %s: %w", topic, err)
	}
	h.mu.Lock()
	i, ok := h.byName[topic]
	if !ok {
		i = len(h.topics)
		h.byName[topic] = i
		h.topics = append(h.topics, &streamTopic{})
	}
	h.topics[i].seq++
	h.topics[i].msg = pm
	h.mu.Unlock()
	h.live.WakeAll()
	return nil
}

// ServeHTTP upgrades to a websocket and streams until the client leaves.
// New clients first get the newest message of every topic, in
// first-published order.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.live.Serve(w, r, h.newSession(), 0)
}

// CloseAll ends every client's stream with "going away" and refuses new
// ones: for shutdown, when the HTTP server will not close them (they are
// no longer HTTP).
func (h *Hub) CloseAll() { h.live.CloseAll() }

// streamSession is one client's place in the stream: per topic, the
// sequence number of the last message it was sent.
type streamSession struct {
	h    *Hub
	sent []uint64 // by index in h.topics; topics beyond are unsent
}

// newSession starts a client one message behind on every topic: its first
// update is the newest of each.
func (h *Hub) newSession() *streamSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &streamSession{h: h, sent: make([]uint64, len(h.topics))}
	for i, t := range h.topics {
		s.sent[i] = t.seq - 1
	}
	return s
}

// Next implements live.Session: the newest message of every topic
// published since the client was last sent it, in first-published order;
// those published in between are coalesced.
func (s *streamSession) Next(context.Context) (live.Update, error) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	var u live.Update
	for i, t := range s.h.topics {
		if i == len(s.sent) {
			s.sent = append(s.sent, 0)
		}
		if t.seq > s.sent[i] {
			u.Messages = append(u.Messages, t.msg)
			u.Coalesced += int(t.seq - s.sent[i] - 1)
			s.sent[i] = t.seq
		}
	}
	return u, nil
}
