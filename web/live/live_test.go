package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// state is a value that changes: version n is the message "n" padded to
// size bytes (large enough to fill a socket's buffers when a client does
// not read).
type state struct {
	size int

	mu      sync.Mutex
	version int
	msg     *websocket.PreparedMessage
}

func (s *state) set(t testing.TB, v int) {
	b := []byte(strconv.Itoa(v) + " ")
	if pad := s.size - len(b); pad > 0 {
		b = append(b, bytes.Repeat([]byte{'.'}, pad)...)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	require.NoError(t, err)
	s.mu.Lock()
	s.version, s.msg = v, pm
	s.mu.Unlock()
}

// session sends the newest version of a state, if newer than it sent.
type session struct {
	st   *state
	sent int
	err  error // returned by Next when set
}

func (s *session) Next(context.Context) (Update, error) {
	if s.err != nil {
		return Update{}, s.err
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	var u Update
	if s.st.version > s.sent {
		u.Messages = []*websocket.PreparedMessage{s.st.msg}
		if s.sent > 0 {
			u.Coalesced = s.st.version - s.sent - 1
		}
		s.sent = s.st.version
	}
	return u, nil
}

type fixture struct {
	hub       *Hub
	st        *state
	srv       *httptest.Server
	clients   prometheus.Gauge
	sent      prometheus.Counter
	coalesced prometheus.Counter

	mu      sync.Mutex
	refused []error // what Refuse was given
}

// newFixture serves a hub at /ws; the query's every= is the minimum
// interval, fail=1 makes the session fail.
func newFixture(t *testing.T, o Options, size int) *fixture {
	t.Helper()
	f := &fixture{
		st:        &state{size: size},
		clients:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_clients"}),
		sent:      prometheus.NewCounter(prometheus.CounterOpts{Name: "test_sent_total"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "test_coalesced_total"}),
	}
	f.st.set(t, 1)
	o.Metrics = Metrics{Clients: f.clients, Sent: f.sent, Coalesced: f.coalesced}
	o.Refuse = func(w http.ResponseWriter, err error) {
		f.mu.Lock()
		f.refused = append(f.refused, err)
		f.mu.Unlock()
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	f.hub = New(o)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		every, _ := time.ParseDuration(r.URL.Query().Get("every"))
		s := &session{st: f.st}
		if r.URL.Query().Get("fail") != "" {
			s.err = errors.New("session failed")
		}
		f.hub.Serve(w, r, s, every)
	}))
	f.srv.Listener = smallBuffers{f.srv.Listener}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// smallBuffers accepts connections with small socket send buffers, so
// that a client that does not read holds up writes to it after a message
// or two (loopback buffers are otherwise megabytes).
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// smallDialer dials with a small socket receive buffer (see smallBuffers).
var smallDialer = &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10)
	}
	return c, err
}}

// publish sets the state to version v and wakes every client.
func (f *fixture) publish(t testing.TB, v int) {
	f.st.set(t, v)
	f.hub.WakeAll()
}

func (f *fixture) lastRefusal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refused) == 0 {
		return nil
	}
	return f.refused[len(f.refused)-1]
}

func (f *fixture) dial(t *testing.T, query string, h http.Header, d *websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = smallDialer
	}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws?"+query, h)
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

// version reads one message and returns its version.
func version(t *testing.T, c *websocket.Conn, timeout time.Duration) int {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(timeout)))
	_, b, err := c.ReadMessage()
	require.NoError(t, err)
	v, err := strconv.Atoi(strings.Fields(string(b))[0])
	require.NoError(t, err)
	return v
}

func TestOrigin(t *testing.T) {
	f := newFixture(t, Options{AllowedOrigins: []string{"https://ui.example.com/"}}, 0)
	for _, tc := range []struct {
		name, origin string
		ok           bool
	}{
		{"no origin: not a browser", "", true},
		{"the server's own host", f.srv.URL, true},
		{"an allowed origin, listed with a slash", "https://ui.example.com", true},
		{"an allowed origin, other case", "https://UI.example.com", true},
		{"a foreign origin", "https://evil.example.com", false},
		{"the allowed host on another scheme", "http://ui.example.com", false},
		{"an opaque origin", "null", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := f.dial(t, "", h, nil)
			if !tc.ok {
				require.Error(t, err)
				require.Equal(t, http.StatusForbidden, resp.StatusCode)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 1, version(t, c, 5*time.Second), "a new client gets the state at once")
		})
	}
}

func TestMaxClients(t *testing.T) {
	f := newFixture(t, Options{MaxClients: 2}, 0)
	c1, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	c2, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	version(t, c1, 5*time.Second)
	version(t, c2, 5*time.Second)
	require.Equal(t, 2.0, testutil.ToFloat64(f.clients))

	_, resp, err := f.dial(t, "", nil, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	require.Contains(t, string(body), "too many clients", "a clear error")
	require.ErrorIs(t, f.lastRefusal(), ErrFull)

	// A client leaving gives its place back.
	require.NoError(t, c1.Close())
	require.Eventually(t, func() bool { return testutil.ToFloat64(f.clients) == 1 }, 5*time.Second, 10*time.Millisecond)
	c3, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, version(t, c3, 5*time.Second))

	// Many at once never get past the bound.
	require.NoError(t, c2.Close())
	require.NoError(t, c3.Close())
	require.Eventually(t, func() bool { return testutil.ToFloat64(f.clients) == 0 }, 5*time.Second, 10*time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 20 {
		wg.Go(func() {
			if c, _, err := f.dial(t, "", nil, nil); err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
				_ = c // closed by cleanup, after the count
			}
		})
	}
	wg.Wait()
	require.Equal(t, 2, accepted)
}

// TestSlowClient: a client that does not read holds up neither the
// publisher nor a client that does; when it reads again it gets the
// newest state, the versions it missed coalesced.
func TestSlowClient(t *testing.T) {
	const size = 256 << 10 // a few of these fill the socket buffers
	f := newFixture(t, Options{}, size)
	slow, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	fast, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, version(t, slow, 5*time.Second))
	require.Equal(t, 1, version(t, fast, 5*time.Second))

	const last = 300
	fastGot := make(chan int, last)
	go func() {
		defer close(fastGot)
		for {
			_ = fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := fast.ReadMessage()
			if err != nil {
				return
			}
			v, _ := strconv.Atoi(strings.Fields(string(b))[0])
			fastGot <- v
			if v == last {
				return
			}
		}
	}()
	var slowest time.Duration
	for v := 2; v <= last; v++ {
		f.st.set(t, v)
		start := time.Now()
		f.hub.WakeAll()
		slowest = max(slowest, time.Since(start))
		time.Sleep(time.Millisecond) // the fast client keeps up with some
	}
	require.Less(t, slowest, time.Second, "waking never waits for clients (a write to the slow one would take the write timeout, 10s)")
	var fastSeen []int
	for v := range fastGot {
		fastSeen = append(fastSeen, v)
	}
	require.NotEmpty(t, fastSeen)
	require.Equal(t, last, fastSeen[len(fastSeen)-1], "the fast client got to the newest state while the slow one did not read")

	var got []int
	for {
		v := version(t, slow, 10*time.Second)
		got = append(got, v)
		if v == last {
			break
		}
	}
	t.Logf("the slow client got %v; the fast one %d messages", got, len(fastSeen))
	require.Less(t, len(got), 10, "the slow client was sent the newest state, not every version: %v", got)
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i], got[i-1], "versions only move forward")
	}
	require.Greater(t, testutil.ToFloat64(f.coalesced), float64(last-1-10), "the versions folded are counted")
	require.Equal(t, float64(2+len(fastSeen)+len(got)), testutil.ToFloat64(f.sent))
}

// TestMinInterval: a client that asked for updates at most every 300ms
// gets them no more often, whatever the rate of change, and gets the
// newest state when the changes stop.
func TestMinInterval(t *testing.T) {
	const every = 300 * time.Millisecond
	f := newFixture(t, Options{}, 0)
	c, _, err := f.dial(t, "every="+every.String(), nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, version(t, c, 5*time.Second))

	type msg struct {
		v  int
		at time.Time
	}
	got := make(chan msg, 100)
	go func() {
		defer close(got)
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			v, _ := strconv.Atoi(strings.Fields(string(b))[0])
			got <- msg{v, time.Now()}
		}
	}()
	v := 1
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		v++
		f.publish(t, v)
		time.Sleep(10 * time.Millisecond)
	}
	var seen []msg
	for m := range got {
		seen = append(seen, m)
		if m.v == v {
			break
		}
	}
	require.NotEmpty(t, seen)
	require.Equal(t, v, seen[len(seen)-1].v, "the newest state arrives once changes stop")
	require.LessOrEqual(t, len(seen), 7, "about 1.5s/300ms updates for %d changes", v-1)
	for i := 1; i < len(seen); i++ {
		gap := seen[i].at.Sub(seen[i-1].at)
		require.Greater(t, gap, every*8/10, "updates %d and %d", seen[i-1].v, seen[i].v)
	}
	require.Greater(t, testutil.ToFloat64(f.coalesced), float64(v-1-len(seen)-1))
}

func TestCloseAll(t *testing.T) {
	f := newFixture(t, Options{}, 0)
	var conns []*websocket.Conn
	for range 3 {
		c, _, err := f.dial(t, "", nil, nil)
		require.NoError(t, err)
		version(t, c, 5*time.Second)
		conns = append(conns, c)
	}
	require.Equal(t, 3.0, testutil.ToFloat64(f.clients))
	f.hub.CloseAll()
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, _, err := c.ReadMessage()
		require.True(t, websocket.IsCloseError(err, websocket.CloseGoingAway), "client %d: %v", i, err)
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(f.clients) == 0 }, 5*time.Second, 10*time.Millisecond)

	_, resp, err := f.dial(t, "", nil, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "closed: no new clients")
	require.ErrorIs(t, f.lastRefusal(), ErrClosed)
	f.hub.WakeAll() // nothing left to wake
}

// TestCompression: a client that offers permessage-deflate gets it, one
// that does not gets plain messages; both read the same.
func TestCompression(t *testing.T) {
	f := newFixture(t, Options{Compression: true}, 64<<10)
	for _, offer := range []bool{true, false} {
		t.Run(fmt.Sprintf("offered=%v", offer), func(t *testing.T) {
			d := &websocket.Dialer{EnableCompression: offer}
			c, resp, err := f.dial(t, "", nil, d)
			require.NoError(t, err)
			require.Equal(t, offer, strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"))
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, b, err := c.ReadMessage()
			require.NoError(t, err)
			require.Len(t, b, 64<<10)
			require.True(t, strings.HasPrefix(string(b), "1 ...."))
		})
	}
}

// TestSessionError: a session that fails ends its connection only.
func TestSessionError(t *testing.T) {
	f := newFixture(t, Options{}, 0)
	ok, _, err := f.dial(t, "", nil, nil)
	require.NoError(t, err)
	version(t, ok, 5*time.Second)
	bad, _, err := f.dial(t, "fail=1", nil, nil)
	require.NoError(t, err)
	require.NoError(t, bad.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, _, err = bad.ReadMessage()
	require.Error(t, err, "the connection ends")
	f.publish(t, 2)
	require.Equal(t, 2, version(t, ok, 5*time.Second), "the other client goes on")
}
