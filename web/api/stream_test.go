package api

import (
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
