package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by NewGuard to zero-valued GuardOptions fields.
const (
	DefaultCookieName = "cartograph_session"
	DefaultSessionTTL = 12 * time.Hour
	// DefaultRealm is the realm named in WWW-Authenticate.
	DefaultRealm = "cartograph"
)

// GuardOptions configures a Guard.
type GuardOptions struct {
	// Tokens are the tokens accepted. Required.
	Tokens *Tokens
	// OpenPaths are URL paths served without credentials (exact match),
	// e.g. "/healthz", "/readyz".
	OpenPaths []string
	// LoginPath is where the Login handler is mounted. Browsers (GET or
	// HEAD asking for text/html) without credentials are redirected there
	// with ?next=<the page they asked for>. Empty: nobody is redirected,
	// every request without credentials gets 401.
	LoginPath string
	// CookieName names the session cookie (default DefaultCookieName).
	CookieName string
	// CookiePath scopes the session cookie (default "/").
	CookiePath string
	// SessionTTL is how long a browser session lasts (default
	// DefaultSessionTTL, 12h). Sessions end earlier when their token is
	// removed or changed.
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests, for a server behind a TLS-terminating proxy. Requests that
	// arrive over TLS always get a Secure cookie.
	SecureCookies bool
	// Realm is named in WWW-Authenticate (default DefaultRealm).
	Realm string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives authentication failures at debug level: path,
	// remote address and reason, never the presented credential. Nil
	// discards them.
	Logger *slog.Logger
	// Registerer is where cartograph_http_auth_* metrics are registered.
	// Nil: not registered.
	Registerer prometheus.Registerer
}

// Guard requires a bearer token, or a browser session made from one by its
// Login handler, on every request it wraps except OpenPaths. It is
// read-only after NewGuard and safe for concurrent use.
type Guard struct {
	o        GuardOptions
	open     map[string]bool
	accepted *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// Failure reasons (label "reason" of cartograph_http_auth_failures_total).
const (
	reasonMissing        = "missing"         // no Authorization header, no session cookie
	reasonInvalidToken   = "invalid_token"   // an Authorization header that is no bearer token or an unknown one
	reasonInvalidSession = "invalid_session" // a session cookie that is forged, expired or of a removed token
	reasonLoginFailed    = "login_failed"    // the login form got an unknown token
)

// Credential kinds (label "via" of cartograph_http_auth_accepted_total).
const (
	viaHeader = "header"
	viaCookie = "cookie"
	viaLogin  = "login"
)

// NewGuard validates o, applies defaults and registers the guard's
// metrics: cartograph_http_auth_accepted_total{token,via} (one series per
// token name) and cartograph_http_auth_failures_total{reason}.
func NewGuard(o GuardOptions) (*Guard, error) {
	if o.Tokens == nil || o.Tokens.Len() == 0 {
		return nil, fmt.Errorf("auth: GuardOptions.Tokens: %w", ErrNoTokens)
	}
	if o.LoginPath != "" && !strings.HasPrefix(o.LoginPath, "/") {
		return nil, fmt.Errorf("auth: LoginPath %q must start with /", o.LoginPath)
	}
	if o.SessionTTL < 0 {
		return nil, fmt.Errorf("auth: SessionTTL %s is negative", o.SessionTTL)
	}
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if o.CookiePath == "" {
		o.CookiePath = "/"
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Realm == "" {
		o.Realm = DefaultRealm
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		o:    o,
		open: map[string]bool{},
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_http_auth_accepted_total",
			Help: "HTTP requests let through by token name and credential: header (bearer token), cookie (browser session) or login (a login that made a session).",
		}, []string{"token", "via"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_http_auth_failures_total",
			Help: "HTTP requests refused for want of valid credentials, by reason: missing, invalid_token, invalid_session, login_failed.",
		}, []string{"reason"}),
	}
	for _, p := range o.OpenPaths {
		g.open[p] = true
	}
	for _, name := range o.Tokens.Names() {
		for _, via := range []string{viaHeader, viaCookie, viaLogin} {
			g.accepted.WithLabelValues(name, via)
		}
	}
	for _, r := range []string{reasonMissing, reasonInvalidToken, reasonInvalidSession, reasonLoginFailed} {
		g.failures.WithLabelValues(r)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(g.accepted); err != nil {
			return nil, fmt.Errorf("auth: register metrics: %w", err)
		}
		if err := o.Registerer.Register(g.failures); err != nil {
			o.Registerer.Unregister(g.accepted)
			return nil, fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	return g, nil
}

// tokenNameKey is the context key of the authenticated token's name.
type tokenNameKey struct{}

// TokenName returns the name of the token a request wrapped by a Guard was
// let through with, and false for open paths.
func TokenName(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(tokenNameKey{}).(string)
	return name, ok
}

// Wrap returns next behind the guard. A request passes with a valid
// "Authorization: Bearer <token>" header or a valid session cookie; a
// request carrying an Authorization header that is not a valid bearer token
// is refused even if it also has a valid cookie. Refused requests get 401
// with WWW-Authenticate: Bearer and a JSON error body, or, for browsers
// when LoginPath is set, a 303 redirect to the login page. Websocket
// upgrades are treated like any other request: they need the header or
// the cookie (browsers send cookies with same-origin websocket handshakes).
// Tokens in the URL are not accepted: URLs end up in logs and history.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.open[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		name, via, reason := g.check(r)
		if reason != "" {
			g.refuse(w, r, reason)
			return
		}
		g.accepted.WithLabelValues(name, via).Inc()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, name)))
	})
}

// check returns the token name and credential kind of r, or the reason it
// has none that is valid.
func (g *Guard) check(r *http.Request) (name, via, reason string) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := BearerToken(h)
		if !ok {
			return "", "", reasonInvalidToken
		}
		if name, ok := g.o.Tokens.Authenticate(tok); ok {
			return name, viaHeader, ""
		}
		return "", "", reasonInvalidToken
	}
	c, err := r.Cookie(g.o.CookieName)
	if err != nil {
		return "", "", reasonMissing
	}
	if name, ok := g.verifySession(c.Value); ok {
		return name, viaCookie, ""
	}
	return "", "", reasonInvalidSession
}

// refuse answers a request without valid credentials and counts it.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	g.failures.WithLabelValues(reason).Inc()
	g.o.Logger.Debug("request refused: no valid credentials", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
	if g.o.LoginPath != "" && wantsHTML(r) {
		http.Redirect(w, r, g.o.LoginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	challenge := `Bearer realm="` + g.o.Realm + `"`
	msg := "authentication required: send Authorization: Bearer <token>"
	if reason == reasonInvalidToken || reason == reasonInvalidSession {
		challenge += `, error="invalid_token"`
		msg = "invalid credentials"
		if reason == reasonInvalidSession {
			msg = "session expired or invalid: log in again"
		}
	}
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// wantsHTML reports whether r looks like a browser navigating to a page.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// Sessions: the cookie holds "<name>.<expiry unix seconds>.<mac>", mac being
// HMAC-SHA256 keyed by the token's secret over the name and expiry. The
// secret never leaves the server, a session cannot be forged or extended
// without it, and changing or removing the token ends its sessions, also
// across restarts.

// session returns a new session cookie value for the token called name.
func (g *Guard) session(name string) (string, time.Time) {
	exp := g.o.Now().Add(g.o.SessionTTL).Truncate(time.Second)
	secret, _ := g.o.Tokens.secretOf(name)
	payload := name + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + sessionMAC(secret, payload), exp
}

func sessionMAC(secret []byte, payload string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("cartograph-session\x00"))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifySession returns the token name of a session cookie value that is
// genuine and not expired.
func (g *Guard) verifySession(v string) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	payload, mac := v[:i], v[i+1:]
	j := strings.LastIndexByte(payload, '.')
	if j < 0 {
		return "", false
	}
	name, expStr := payload[:j], payload[j+1:]
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil {
		return "", false
	}
	secret, ok := g.o.Tokens.secretOf(name)
	if !ok {
		return "", false
	}
	if !hmac.Equal([]byte(mac), []byte(sessionMAC(secret, payload))) {
		return "", false
	}
	if !g.o.Now().Before(time.Unix(exp, 0)) {
		return "", false
	}
	return name, true
}

// maxLoginBody bounds the login form.
const maxLoginBody = 8 << 10

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cartograph: log in</title></head>
<body><main>
<h1>cartograph</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="next" value="{{.Next}}">
<label>Access token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button>
</form>
</main></body></html>
`))

// Login returns the login handler, to be mounted at LoginPath outside the
// guard. GET shows a form asking for a token; POST (form field "token")
// checks it and, when valid, sets the session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS or with SecureCookies) and redirects to
// the form's "next" path (a local path only; default "/"). A wrong token
// gets the form again with 401.
func (g *Guard) Login() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.loginForm(w, r, http.StatusOK, localPath(r.URL.Query().Get("next")), "")
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad login form", http.StatusBadRequest)
				return
			}
			next := localPath(r.PostForm.Get("next"))
			name, ok := g.o.Tokens.Authenticate(strings.TrimSpace(r.PostForm.Get("token")))
			if !ok {
				g.failures.WithLabelValues(reasonLoginFailed).Inc()
				g.o.Logger.Debug("login refused", "remote", r.RemoteAddr, "reason", reasonLoginFailed)
				g.loginForm(w, r, http.StatusUnauthorized, next, "That token is not valid.")
				return
			}
			value, exp := g.session(name)
			http.SetCookie(w, &http.Cookie{
				Name: g.o.CookieName, Value: value, Path: g.o.CookiePath,
				Expires: exp, MaxAge: int(g.o.SessionTTL / time.Second),
				HttpOnly: true, SameSite: http.SameSiteStrictMode,
				Secure: r.TLS != nil || g.o.SecureCookies,
			})
			g.accepted.WithLabelValues(name, viaLogin).Inc()
			g.o.Logger.Info("login", "token", name, "remote", r.RemoteAddr)
			http.Redirect(w, r, next, http.StatusSeeOther)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// Logout returns the logout handler: POST clears the session cookie and
// redirects to LoginPath (or answers 204 when there is none). Only POST, so
// that a link or image elsewhere cannot log a user out.
func (g *Guard) Logout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: g.o.CookieName, Value: "", Path: g.o.CookiePath, MaxAge: -1,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || g.o.SecureCookies,
		})
		if g.o.LoginPath == "" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, r, g.o.LoginPath, http.StatusSeeOther)
	})
}

func (g *Guard) loginForm(w http.ResponseWriter, r *http.Request, code int, next, errMsg string) {
	action := g.o.LoginPath
	if action == "" {
		action = r.URL.Path
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	_ = loginPage.Execute(w, struct{ Action, Next, Error string }{action, next, errMsg})
}

// pageHeaders sets the headers of the login and logout pages: no script,
// style or framing, forms only to this origin, nothing cached.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// errNotLocal is why localPath refuses a path.
var errNotLocal = errors.New("not a local path")

// localPath returns p if it is a path on this server ("/..." but not
// "//host" or "/\host"), else "/": the login never redirects elsewhere.
func localPath(p string) string {
	if err := checkLocal(p); err != nil {
		return "/"
	}
	return p
}

func checkLocal(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, `/\`) {
		return errNotLocal
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.ContainsAny(p, "\r\n\t") {
		return errNotLocal
	}
	return nil
}
