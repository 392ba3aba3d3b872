package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/ingest/otlp"
	"github.com/seed-a49a8342/cartograph/web/auth"
)

// Environment variables holding tokens themselves (`name:secret` items
// separated by commas or newlines), as an alternative to the token files:
// tokens never go on the command line, where ps shows them.
const (
	envIngestTokens = envPrefix + "INGEST_TOKENS"
	envAPITokens    = envPrefix + "API_TOKENS"
)

// apiCookieName names the session cookie of the collector's guard, which
// serves its API and its own web UI alike. Browsers send cookies to every
// port of a host, so it differs from a separate `ui` process's
// (auth.DefaultCookieName) lest a login to one overwrite the session of the
// other.
const apiCookieName = "cartograph_api_session"

// security is the collector's access control, built from the flags.
type security struct {
	ingest *auth.Tokens // nil: OTLP ingest is open
	api    *auth.Tokens // nil: the API is open
	tls    *tls.Config  // nil: plain text
}

// loadSecurity reads the token files and variables and the TLS files.
// Errors never contain a secret.
func loadSecurity(cfg config, logger *slog.Logger) (security, error) {
	var s security
	var err error
	if s.ingest, err = auth.LoadTokens(cfg.IngestTokensFile, cfg.getenv(envIngestTokens)); err != nil {
		return s, fmt.Errorf("ingest tokens (--ingest-tokens-file, %s): %w", envIngestTokens, err)
	}
	apiTokens, err := auth.ReadTokens(cfg.APITokensFile, cfg.getenv(envAPITokens))
	if err != nil {
		return s, fmt.Errorf("api tokens (--api-tokens-file, %s): %w", envAPITokens, err)
	}
	if len(apiTokens) > 0 {
		if s.api, err = auth.NewTokens(apiTokens); err != nil {
			return s, fmt.Errorf("api tokens (--api-tokens-file, %s): %w", envAPITokens, err)
		}
	}
	s.tls, err = auth.ServerTLSConfig(auth.TLSOptions{
		CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile,
		Logger: logger,
	})
	if err != nil {
		return s, err
	}
	return s, nil
}

// ingestAuth returns the OTLP receiver's authenticator: nil (no interface
// value at all) when ingest is open.
func (s security) ingestAuth() otlp.TokenAuthenticator {
	if s.ingest == nil {
		return nil
	}
	return s.ingest
}

// mutualTLS reports whether clients must present a certificate.
func (s security) mutualTLS() bool {
	return s.tls != nil && s.tls.ClientAuth == tls.RequireAndVerifyClientCert
}

// newGuard makes the viewer-token guard shared by the API and the web UI
// (one guard, so that one browser login serves both): nil when the API is
// open. /healthz and /readyz stay open, /metrics too with --open-metrics;
// /login and /logout serve the browser login.
func (s security) newGuard(cfg config, logger *slog.Logger, reg prometheus.Registerer) (*auth.Guard, error) {
	if s.api == nil {
		return nil, nil
	}
	open := []string{"/healthz", "/readyz"}
	if cfg.OpenMetrics {
		open = append(open, "/metrics")
	}
	return auth.NewGuard(auth.GuardOptions{
		Tokens: s.api, OpenPaths: open, LoginPath: "/login", CookieName: apiCookieName,
		Logger: logger, Registerer: reg,
	})
}

// guarded puts h behind g, with g's login and logout pages mounted; h
// itself when g is nil (nothing to guard).
func guarded(h http.Handler, g *auth.Guard) http.Handler {
	if g == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/login", g.Login())
	mux.Handle("/logout", g.Logout())
	mux.Handle("/", g.Wrap(h))
	return mux
}

// warnExposed logs a warning for each listener that reaches beyond this
// machine with nothing to authenticate who calls it (neither tokens nor
// client certificates), and a note where tokens would cross the network in
// clear text.
func (s security) warnExposed(cfg config, logger *slog.Logger) {
	type listener struct {
		flag, addr string
		authed     bool
		what       string
	}
	ingestAuthed := s.ingest != nil || s.mutualTLS()
	apiAuthed := s.api != nil || s.mutualTLS()
	for _, l := range []listener{
		{"--otlp-grpc-addr", cfg.OTLPGRPCAddr, ingestAuthed, "send telemetry (set --ingest-tokens-file)"},
		{"--otlp-http-addr", cfg.OTLPHTTPAddr, ingestAuthed, "send telemetry (set --ingest-tokens-file)"},
		{"--api-addr", cfg.APIAddr, apiAuthed, "read the graph and findings (set --api-tokens-file)"},
		{"--ui-addr", cfg.UIAddr, apiAuthed, "see the graph and findings in the web UI (set --api-tokens-file)"},
	} {
		if l.addr == "" || loopback(l.addr) {
			continue
		}
		if !l.authed {
			logger.Warn("listening beyond this machine without authentication: anyone who can reach it can "+l.what, "flag", l.flag, "addr", l.addr)
			continue
		}
		if s.tls == nil {
			logger.Info("bearer tokens on this listener cross the network in clear text unless TLS is terminated in front of it (--tls-cert-file)", "flag", l.flag, "addr", l.addr)
		}
	}
}
