package main

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/web/auth/authtest"
)

// TestUIAuthE2E checks the all-in-one UI behind the API's viewer tokens,
// in plain text and over mutual TLS: pages, the login session and the
// live-update websocket all need a credential, and the UI still reads the
// collector's API (through its in-process listener, with the internal
// token) whatever TLS the listeners use.
func TestUIAuthE2E(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "cartograph test CA")
	srv := ca.Server(t, "collector")
	withCert := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Client(t, "browser").TLS(t)}}
	tokens := "--api-tokens-file=" + authtest.WriteFile(t, dir, "api-tokens", []byte("viewer:"+viewerSecret+"\n"))
	for _, tc := range []struct {
		name   string
		args   []string
		scheme string
		tls    *tls.Config
	}{
		{"plain", []string{tokens}, "http", nil},
		{"mutual TLS", []string{tokens,
			"--tls-cert-file=" + authtest.WriteFile(t, dir, "tls.crt", srv.CertPEM),
			"--tls-key-file=" + authtest.WriteFile(t, dir, "tls.key", srv.KeyPEM),
			"--tls-client-ca-file=" + authtest.WriteFile(t, dir, "ca.crt", ca.PEM),
		}, "https", withCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col, logs := startCollectorLogged(t, nil, append(tc.args, "--ui-addr=127.0.0.1:0")...)
			require.NotNil(t, col.UI, "the UI is served")
			require.NoError(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, tc.tls), "checkout"))
			base := tc.scheme + "://" + col.UI.String()
			anon := newAPIClient(base, "", tc.tls)
			viewer := newAPIClient(base, viewerSecret, tc.tls)
			htmlHdr := http.Header{"Accept": {"text/html"}}

			code, _ := anon.get(t, "/healthz")
			require.Equal(t, 200, code, "health stays open")
			resp, _ := anon.do(t, http.MethodGet, "/", htmlHdr, nil)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser without a session goes to the login page")
			require.Equal(t, "/login?next=%2F", resp.Header.Get("Location"))
			code, _ = anon.get(t, "/static/app.js")
			require.Equal(t, 401, code)
			code, _ = newAPIClient(base, wrongSecret, tc.tls).get(t, "/")
			require.Equal(t, 401, code)

			// The UI reads the collector in process, behind the same guard.
			require.Eventually(t, func() bool {
				code, body := viewer.get(t, "/")
				return code == 200 && strings.Contains(body, "checkout")
			}, 10*time.Second, 100*time.Millisecond, "the map shows the service sent")

			// A browser logs in with the token and then uses its session
			// cookie, also for the websocket.
			resp, _ = anon.do(t, http.MethodPost, "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
				strings.NewReader(url.Values{"token": {viewerSecret}, "next": {"/findings"}}.Encode()))
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			require.Equal(t, "/findings", resp.Header.Get("Location"))
			cookies := resp.Cookies()
			require.Len(t, cookies, 1)
			require.Equal(t, tc.scheme == "https", cookies[0].Secure, "the cookie is Secure over TLS")
			withCookie := http.Header{"Cookie": {cookies[0].Name + "=" + cookies[0].Value}}
			resp, body := anon.do(t, http.MethodGet, "/findings", withCookie, nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Contains(t, body, "<html")

			wsURL := strings.Replace(base, "http", "ws", 1) + "/ws?page=map"
			d := websocket.Dialer{TLSClientConfig: tc.tls, HandshakeTimeout: 5 * time.Second}
			origin := http.Header{"Origin": {base}}
			_, resp, err := d.Dial(wsURL, origin)
			require.Error(t, err, "the websocket needs a credential too")
			require.NotNil(t, resp)
			require.Equal(t, 401, resp.StatusCode)
			hdr := origin.Clone()
			hdr.Set("Cookie", withCookie.Get("Cookie"))
			conn, resp, err := d.Dial(wsURL, hdr)
			require.NoError(t, err)
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			conn.Close()

			require.NotContains(t, logs.String(), viewerSecret, "no secret in the logs")
		})
	}
}
