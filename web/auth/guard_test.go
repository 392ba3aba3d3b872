package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// guarded is a real HTTP server with a Guard in front of a handler that
// echoes the token name, plus the login and logout handlers.
type guarded struct {
	srv   *httptest.Server
	guard *Guard
	reg   *prometheus.Registry
	logs  *lockedBuffer
	now   *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func startGuarded(t *testing.T, tls bool, tokens *Tokens, mod func(*GuardOptions)) *guarded {
	t.Helper()
	g := &guarded{reg: prometheus.NewRegistry(), logs: &lockedBuffer{}, now: &clock{t: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}}
	o := GuardOptions{
		Tokens:     tokens,
		OpenPaths:  []string{"/healthz"},
		LoginPath:  "/login",
		Now:        g.now.Now,
		Logger:     slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: g.reg,
	}
	if mod != nil {
		mod(&o)
	}
	guard, err := NewGuard(o)
	require.NoError(t, err)
	g.guard = guard
	mux := http.NewServeMux()
	mux.Handle("/login", guard.Login())
	mux.Handle("/logout", guard.Logout())
	mux.Handle("/", guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _ := TokenName(r.Context())
		_, _ = io.WriteString(w, "hello "+name)
	})))
	if tls {
		g.srv = httptest.NewTLSServer(mux)
	} else {
		g.srv = httptest.NewServer(mux)
	}
	t.Cleanup(g.srv.Close)
	return g
}

// client returns a client of the server that keeps cookies and does not
// follow redirects.
func (g *guarded) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := g.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 5 * time.Second
	return c
}

type reply struct {
	code int
	hdr  http.Header
	body string
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func login(t *testing.T, g *guarded, c *http.Client, token, next string) reply {
	t.Helper()
	form := url.Values{"token": {token}, "next": {next}}
	return do(t, c, http.MethodPost, g.srv.URL+"/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
}

func TestGuardRequests(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}, Token{"ui", secretB}), nil)
	c := g.client(t)
	for _, tc := range []struct {
		name      string
		path      string
		hdr       map[string]string
		code      int
		body      string
		challenge string
		location  string
	}{
		{"open path", "/healthz", nil, 200, "hello ", "", ""},
		{"no credentials", "/api/v1/graph", nil, 401, `"error":"authentication required`, `Bearer realm="cartograph"`, ""},
		{"good token", "/api/v1/graph", map[string]string{"Authorization": "Bearer " + secretA}, 200, "hello team-a", "", ""},
		{"second token", "/api/v1/graph", map[string]string{"Authorization": "bearer " + secretB}, 200, "hello ui", "", ""},
		{"wrong token", "/api/v1/graph", map[string]string{"Authorization": "Bearer " + secretA + "x"}, 401, "invalid credentials", `Bearer realm="cartograph", error="invalid_token"`, ""},
		{"basic auth", "/api/v1/graph", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "invalid credentials", `error="invalid_token"`, ""},
		{"token in the URL is not accepted", "/api/v1/graph?access_token=" + secretA, nil, 401, "authentication required", "Bearer", ""},
		{"browser is sent to the login page", "/graph?window=5m", map[string]string{"Accept": "text/html,application/xhtml+xml"}, 303, "", "", "/login?next=%2Fgraph%3Fwindow%3D5m"},
		{"websocket from a browser is not redirected", "/api/v1/stream", map[string]string{"Accept": "text/html", "Upgrade": "websocket", "Connection": "Upgrade"}, 401, "", "Bearer", ""},
		{"browser with a good header", "/graph", map[string]string{"Accept": "text/html", "Authorization": "Bearer " + secretA}, 200, "hello team-a", "", ""},
		{"forged session cookie", "/api/v1/graph", map[string]string{"Cookie": DefaultCookieName + "=team-a.9999999999.AAAA"}, 401, "session expired or invalid", `error="invalid_token"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, c, http.MethodGet, g.srv.URL+tc.path, tc.hdr, nil)
			require.Equal(t, tc.code, r.code, r.body)
			require.Contains(t, r.body, tc.body)
			require.Contains(t, r.hdr.Get("WWW-Authenticate"), tc.challenge)
			require.Equal(t, tc.location, r.hdr.Get("Location"))
			if tc.code == 401 {
				require.Equal(t, "application/json", r.hdr.Get("Content-Type"))
				require.Equal(t, "no-store", r.hdr.Get("Cache-Control"))
			}
		})
	}
	require.Equal(t, 2.0, testutil.ToFloat64(g.guard.accepted.WithLabelValues("team-a", viaHeader)))
	require.Equal(t, 1.0, testutil.ToFloat64(g.guard.accepted.WithLabelValues("ui", viaHeader)))
	require.Equal(t, 4.0, testutil.ToFloat64(g.guard.failures.WithLabelValues(reasonMissing)))
	require.Equal(t, 2.0, testutil.ToFloat64(g.guard.failures.WithLabelValues(reasonInvalidToken)))
	require.Equal(t, 1.0, testutil.ToFloat64(g.guard.failures.WithLabelValues(reasonInvalidSession)))
	n, err := testutil.GatherAndCount(g.reg, "cartograph_http_auth_accepted_total")
	require.NoError(t, err)
	require.Equal(t, 6, n, "one series per token name and credential kind, no more")
}

func TestGuardLoginSession(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			g := startGuarded(t, tls, mustTokens(t, Token{"team-a", secretA}), func(o *GuardOptions) { o.SessionTTL = time.Hour })
			c := g.client(t)

			form := do(t, c, http.MethodGet, g.srv.URL+"/login?next=/graph", nil, nil)
			require.Equal(t, 200, form.code)
			require.Contains(t, form.body, `<form method="post" action="/login">`)
			require.Contains(t, form.body, `name="next" value="/graph"`)
			require.NotContains(t, form.body, "<script")
			require.Contains(t, form.hdr.Get("Content-Security-Policy"), "default-src 'none'")
			require.Equal(t, "DENY", form.hdr.Get("X-Frame-Options"))

			bad := login(t, g, c, "not-the-token-at-all", "/graph")
			require.Equal(t, 401, bad.code)
			require.Contains(t, bad.body, "not valid")
			require.Empty(t, bad.hdr.Values("Set-Cookie"))

			ok := login(t, g, c, secretA, "/graph?window=5m")
			require.Equal(t, 303, ok.code, ok.body)
			require.Equal(t, "/graph?window=5m", ok.hdr.Get("Location"))
			set := ok.hdr.Get("Set-Cookie")
			require.Contains(t, set, DefaultCookieName+"=team-a.")
			require.Contains(t, set, "HttpOnly")
			require.Contains(t, set, "SameSite=Strict")
			require.Contains(t, set, "Max-Age=3600")
			require.Equal(t, tls, strings.Contains(set, "Secure"), "Secure exactly when served over TLS: %s", set)
			require.NotContains(t, set, secretA, "the cookie must not carry the token")

			page := do(t, c, http.MethodGet, g.srv.URL+"/graph", map[string]string{"Accept": "text/html"}, nil)
			require.Equal(t, 200, page.code)
			require.Equal(t, "hello team-a", page.body)
			require.Equal(t, 1.0, testutil.ToFloat64(g.guard.accepted.WithLabelValues("team-a", viaCookie)))

			// A header that is wrong wins over a good cookie.
			wrong := do(t, c, http.MethodGet, g.srv.URL+"/graph", map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}, nil)
			require.Equal(t, 401, wrong.code)

			g.now.Add(time.Hour)
			expired := do(t, c, http.MethodGet, g.srv.URL+"/api/v1/graph", nil, nil)
			require.Equal(t, 401, expired.code, "a session ends after SessionTTL")
			require.Contains(t, expired.body, "session expired")
		})
	}
}

func TestGuardLoginRedirectStaysLocal(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}), nil)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", `/\evil.example`, "javascript:alert(1)", "", "graph"} {
		t.Run(next, func(t *testing.T) {
			r := login(t, g, g.client(t), secretA, next)
			require.Equal(t, 303, r.code)
			require.Equal(t, "/", r.hdr.Get("Location"))
		})
	}
}

func TestGuardSessionEndsWithItsToken(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}, Token{"team-b", secretB}), nil)
	c := g.client(t)
	require.Equal(t, 303, login(t, g, c, secretA, "/").code)
	u, _ := url.Parse(g.srv.URL)
	cookie := c.Jar.Cookies(u)[0].Value

	// A session of team-a relabelled as team-b does not pass.
	forged := "team-b" + strings.TrimPrefix(cookie, "team-a")
	_, ok := g.guard.verifySession(forged)
	require.False(t, ok)
	_, ok = g.guard.verifySession(cookie)
	require.True(t, ok)

	// The same cookie on a guard where team-a's secret changed.
	rotated, err := NewGuard(GuardOptions{Tokens: mustTokens(t, Token{"team-a", "rotated-secret-0123456789"}), Now: g.now.Now})
	require.NoError(t, err)
	_, ok = rotated.verifySession(cookie)
	require.False(t, ok, "rotating a token ends its sessions")
}

func TestGuardLogout(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}), nil)
	c := g.client(t)
	require.Equal(t, 303, login(t, g, c, secretA, "/").code)
	require.Equal(t, 200, do(t, c, http.MethodGet, g.srv.URL+"/x", nil, nil).code)
	require.Equal(t, 405, do(t, c, http.MethodGet, g.srv.URL+"/logout", nil, nil).code, "GET must not log out")
	out := do(t, c, http.MethodPost, g.srv.URL+"/logout", nil, nil)
	require.Equal(t, 303, out.code)
	require.Equal(t, "/login", out.hdr.Get("Location"))
	require.Equal(t, 401, do(t, c, http.MethodGet, g.srv.URL+"/x", nil, nil).code)
}

func TestGuardWithoutLoginPathNeverRedirects(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}), func(o *GuardOptions) { o.LoginPath = "" })
	r := do(t, g.client(t), http.MethodGet, g.srv.URL+"/graph", map[string]string{"Accept": "text/html"}, nil)
	require.Equal(t, 401, r.code)
}

func TestGuardOptionsValidate(t *testing.T) {
	_, err := NewGuard(GuardOptions{})
	require.ErrorIs(t, err, ErrNoTokens)
	_, err = NewGuard(GuardOptions{Tokens: mustTokens(t, Token{"a", secretA}), LoginPath: "login"})
	require.ErrorContains(t, err, "must start with /")
	reg := prometheus.NewRegistry()
	_, err = NewGuard(GuardOptions{Tokens: mustTokens(t, Token{"a", secretA}), Registerer: reg})
	require.NoError(t, err)
	_, err = NewGuard(GuardOptions{Tokens: mustTokens(t, Token{"a", secretA}), Registerer: reg})
	require.Error(t, err, "two guards on one registry")
}

// TestGuardNeverLogsSecrets drives failed and successful header and login
// authentication with debug logging and checks no secret reaches the log.
func TestGuardNeverLogsSecrets(t *testing.T) {
	g := startGuarded(t, false, mustTokens(t, Token{"team-a", secretA}), nil)
	c := g.client(t)
	wrong := "wrong-secret-ZZZZZZZZZZZZZZZZ"
	do(t, c, http.MethodGet, g.srv.URL+"/x", map[string]string{"Authorization": "Bearer " + wrong}, nil)
	do(t, c, http.MethodGet, g.srv.URL+"/x", map[string]string{"Authorization": "Bearer " + secretA}, nil)
	login(t, g, c, wrong, "/")
	login(t, g, c, secretA, "/")
	do(t, c, http.MethodGet, g.srv.URL+"/x", nil, nil)
	logs := g.logs.String()
	require.Contains(t, logs, "reason=invalid_token", "failures are logged at debug")
	require.Contains(t, logs, "reason=login_failed")
	require.Contains(t, logs, "token=team-a", "a login is logged with the token's name")
	require.NotContains(t, logs, secretA)
	require.NotContains(t, logs, wrong)
}
