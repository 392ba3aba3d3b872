package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/web/auth"
	"github.com/seed-a49a8342/cartograph/web/auth/authtest"
)

// serveTLS serves 200 "ok" over TLS with cfg on a loopback port and returns
// its address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		TLSConfig: cfg.Clone(),
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func get(addr string, cfg *tls.Config) (*http.Response, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + addr + "/")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestServerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "test CA")
	srv := ca.Server(t, "cartograph")
	certFile := authtest.WriteFile(t, dir, "tls.crt", srv.CertPEM)
	keyFile := authtest.WriteFile(t, dir, "tls.key", srv.KeyPEM)
	caFile := authtest.WriteFile(t, dir, "ca.crt", ca.PEM)

	t.Run("off", func(t *testing.T) {
		cfg, err := auth.ServerTLSConfig(auth.TLSOptions{})
		require.NoError(t, err)
		require.Nil(t, cfg)
	})
	t.Run("invalid", func(t *testing.T) {
		for _, o := range []auth.TLSOptions{
			{CertFile: certFile},
			{KeyFile: keyFile},
			{ClientCAFile: caFile},
			{CertFile: certFile, KeyFile: caFile},
			{CertFile: certFile, KeyFile: keyFile, ClientCAFile: keyFile},
			{CertFile: certFile, KeyFile: dir + "/missing"},
		} {
			_, err := auth.ServerTLSConfig(o)
			require.Error(t, err, "%+v", o)
		}
	})
	t.Run("server TLS", func(t *testing.T) {
		cfg, err := auth.ServerTLSConfig(auth.TLSOptions{CertFile: certFile, KeyFile: keyFile})
		require.NoError(t, err)
		addr := serveTLS(t, cfg)
		resp, err := get(addr, &tls.Config{RootCAs: ca.Pool()})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		_, err = get(addr, &tls.Config{})
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown, "a client that does not trust the CA refuses the server")
		_, err = get(addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11})
		require.Error(t, err, "TLS 1.1 is refused")
	})
	t.Run("mutual TLS", func(t *testing.T) {
		cfg, err := auth.ServerTLSConfig(auth.TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
		require.NoError(t, err)
		addr := serveTLS(t, cfg)
		client := ca.Client(t, "otel-collector").TLS(t)
		resp, err := get(addr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)

		_, err = get(addr, &tls.Config{RootCAs: ca.Pool()})
		require.Error(t, err, "no client certificate")

		other := authtest.NewCA(t, "other CA").Client(t, "intruder").TLS(t)
		_, err = get(addr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{other}})
		require.Error(t, err, "a client certificate from another CA")
	})
}

func TestServerTLSConfigReloads(t *testing.T) {
	dir := t.TempDir()
	caA, caB := authtest.NewCA(t, "CA A"), authtest.NewCA(t, "CA B")
	a := caA.Server(t, "a")
	certFile := authtest.WriteFile(t, dir, "tls.crt", a.CertPEM)
	keyFile := authtest.WriteFile(t, dir, "tls.key", a.KeyPEM)
	cfg, err := auth.ServerTLSConfig(auth.TLSOptions{CertFile: certFile, KeyFile: keyFile, ReloadInterval: time.Nanosecond})
	require.NoError(t, err)
	addr := serveTLS(t, cfg)
	_, err = get(addr, &tls.Config{RootCAs: caA.Pool()})
	require.NoError(t, err)

	// A half-written pair (new certificate, old key) keeps the old one.
	b := caB.Server(t, "b")
	authtest.WriteFile(t, dir, "tls.crt", b.CertPEM)
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, future, future))
	_, err = get(addr, &tls.Config{RootCAs: caA.Pool()})
	require.NoError(t, err, "a mismatched pair must not replace the working certificate")

	authtest.WriteFile(t, dir, "tls.key", b.KeyPEM)
	require.NoError(t, os.Chtimes(keyFile, future, future))
	_, err = get(addr, &tls.Config{RootCAs: caB.Pool()})
	require.NoError(t, err, "the new certificate is served")
	_, err = get(addr, &tls.Config{RootCAs: caA.Pool()})
	require.Error(t, err, "the old one no longer")
}
