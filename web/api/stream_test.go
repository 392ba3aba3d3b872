package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

func dialStream(t *testing.T, srv *httptest.Server, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/stream", h)
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

type streamMsg struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func readMsg(t *testing.T, c *websocket.Conn) streamMsg {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	var m streamMsg
	require.NoError(t, c.ReadJSON(&m))
	return m
}

func TestStream(t *testing.T) {
	hub, err := NewHub(HubOptions{MaxClients: 3, AllowedOrigins: []string{"https://ui.example.com"}})
	require.NoError(t, err)
	a, _ := newTestAPI(t, nil)
	a2, err := New(Options{Graph: a.o.Graph, Stream: hub})
	require.NoError(t, err)
	srv := httptest.NewServer(a2)
	t.Cleanup(srv.Close)

	require.NoError(t, hub.Publish("graph", map[string]int{"v": 1}))
	require.NoError(t, hub.Publish("findings", []string{}))

	c, _, err := dialStream(t, srv, "")
	require.NoError(t, err)
	require.Equal(t, "graph", readMsg(t, c).Type, "a new client gets the latest state at once")
	require.Equal(t, "findings", readMsg(t, c).Type)

	require.NoError(t, hub.Publish("graph", map[string]int{"v": 2}))
	m := readMsg(t, c)
	require.Equal(t, "graph", m.Type)
	require.JSONEq(t, `{"v":2}`, string(m.Data))

	t.Run("origin", func(t *testing.T) {
		_, resp, err := dialStream(t, srv, "https://evil.example.com")
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		c2, _, err := dialStream(t, srv, "https://ui.example.com")
		require.NoError(t, err, "an allowed origin")
		c2.Close()
	})

	t.Run("a slow client gets the newest state, coalesced", func(t *testing.T) {
		var slow *websocket.Conn
		require.Eventually(t, func() bool { // the origin test's client may still be leaving
			slow, _, err = dialStream(t, srv, srv.URL)
			return err == nil
		}, 2*time.Second, 20*time.Millisecond)
		readMsg(t, slow)
		readMsg(t, slow)
		for i := 3; i < 500; i++ {
			require.NoError(t, hub.Publish("graph", map[string]int{"v": i}))
		}
		// The fast client and the publisher were never held up; the slow
		// one catches up to the newest value without reading 497 messages.
		var last streamMsg
		for {
			last = readMsg(t, slow)
			if string(last.Data) == `{"v":499}` {
				break
			}
		}
	})

	t.Run("bounded clients", func(t *testing.T) {
		c3, _, err := dialStream(t, srv, "")
		require.NoError(t, err)
		defer c3.Close()
		require.Eventually(t, func() bool {
			_, resp, err := dialStream(t, srv, "")
			return err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable
		}, 2*time.Second, 20*time.Millisecond)
	})
}

func TestStreamPublishEncoded(t *testing.T) {
	hub, err := NewHub(HubOptions{})
	require.NoError(t, err)
	a, _ := newTestAPI(t, nil)
	a2, err := New(Options{Graph: a.o.Graph, Stream: hub})
	require.NoError(t, err)
	srv := httptest.NewServer(a2)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, topic, msg string
	}{
		{"another topic", "graph", `{"type":"findings","data":{}}`},
		{"not the type first", "graph", `{"data":{},"type":"graph"}`},
		{"not JSON", "graph", `graph`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, hub.PublishEncoded(tc.topic, []byte(tc.msg)), ErrStreamMessage)
		})
	}

	encoded := []byte(`{"type":"graph","data":{"v":1}}`)
	require.NoError(t, hub.PublishEncoded("graph", encoded))
	copy(encoded, `{"type":"graph","data":{"v":9}}`) // the hub does not keep it
	require.NoError(t, hub.Publish("findings", map[string]int{"n": 0}))
	c, _, err := dialStream(t, srv, "")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, b, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, `{"type":"graph","data":{"v":1}}`, string(b), "the bytes as published")
	require.Equal(t, "findings", readMsg(t, c).Type)

	require.NoError(t, hub.PublishEncoded("graph", []byte(`{"type":"graph","data":{"v":2}}`)))
	m := readMsg(t, c)
	require.Equal(t, "graph", m.Type)
	require.JSONEq(t, `{"v":2}`, string(m.Data), "replaces what Publish or PublishEncoded sent")
}

// TestStreamSession: what a client is sent when woken, and what it counts
// as coalesced (a message replaced before the client took it).
func TestStreamSession(t *testing.T) {
	hub, err := NewHub(HubOptions{})
	require.NoError(t, err)
	next := func(s *streamSession) (types []string, data []string, coalesced int) {
		t.Helper()
		u, err := s.Next(context.Background())
		require.NoError(t, err)
		for _, pm := range u.Messages {
			// A prepared message is sent to a client as is: read it back
			// through a real connection's framing.
			var m streamMsg
			require.NoError(t, json.Unmarshal(preparedPayload(t, pm), &m))
			types = append(types, m.Type)
			data = append(data, string(m.Data))
		}
		return types, data, u.Coalesced
	}

	early := hub.newSession() // before anything was published
	require.NoError(t, hub.Publish("findings", 1))
	require.NoError(t, hub.Publish("graph", 1))
	require.NoError(t, hub.Publish("graph", 2))
	s := hub.newSession()
	types, data, coalesced := next(s)
	require.Equal(t, []string{"findings", "graph"}, types, "a new client gets every topic, in first-published order")
	require.Equal(t, []string{"1", "2"}, data, "the newest of each")
	require.Zero(t, coalesced, "what was published before the client came is not coalesced for it")

	types, data, coalesced = next(early)
	require.Equal(t, []string{"findings", "graph"}, types)
	require.Equal(t, []string{"1", "2"}, data)
	require.Equal(t, 1, coalesced, "graph 1 was replaced before this client took it")

	types, _, _ = next(s)
	require.Empty(t, types, "nothing new")

	for i := 3; i <= 10; i++ {
		require.NoError(t, hub.Publish("graph", i))
	}
	require.NoError(t, hub.Publish("incidents", 1))
	types, data, coalesced = next(s)
	require.Equal(t, []string{"graph", "incidents"}, types, "only the topics published since")
	require.Equal(t, []string{"10", "1"}, data)
	require.Equal(t, 7, coalesced, "graph 3 to 9")
}

// preparedPayload returns what a client reads of pm.
func preparedPayload(t *testing.T, pm *websocket.PreparedMessage) []byte {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WritePreparedMessage(pm)
		_, _, _ = c.ReadMessage() // until the client has read and closed
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, b, err := c.ReadMessage()
	require.NoError(t, err)
	return b
}
