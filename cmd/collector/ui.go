package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/seed-a49a8342/cartograph/web/auth"
	"github.com/seed-a49a8342/cartograph/web/ui"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// defaultUIAddr is --ui-addr's default.
const defaultUIAddr = "127.0.0.1:8080"

// uiDeps is what the all-in-one UI takes from the rest of the collector.
type uiDeps struct {
	// Source is the collector's API read in process (api.Local).
	Source ui.Source
	// Guard, when not nil, guards the UI as it guards the API (one login
	// serves both).
	Guard *auth.Guard
	// TLS, when not nil, is served on the UI's listener too.
	TLS *tls.Config
}

// startUI serves the web UI on cfg.UIAddr (all-in-one mode). The UI reads
// this collector in process: the graph and findings of each tick as the
// runner handed them to the API, without a second snapshot, an encoding or
// a socket between them (only the standalone cmd/ui speaks HTTP). It
// returns the address bound, or nil when the UI is off.
func startUI(ctx context.Context, eg *errgroup.Group, cfg config, d uiDeps, logger *slog.Logger, reg prometheus.Registerer) (net.Addr, error) {
	if cfg.UIAddr == "" {
		return nil, nil
	}
	lay, err := layout.New(ctx, layout.Options{MaxNodes: 2 * cfg.UIMaxNodes})
	if err != nil {
		return nil, err
	}
	u, err := ui.New(ui.Options{
		Source: d.Source, Layouter: lay, Refresh: cfg.EvalInterval, MaxNodes: cfg.UIMaxNodes, MaxGroups: cfg.UIMaxGroups,
		MaxClients: cfg.MaxStreamClients, Logger: logger.With("component", "ui"), Registerer: reg,
	})
	if err != nil {
		lay.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.UIAddr)
	if err != nil && cfg.UIAddr == defaultUIAddr {
		// The default port is taken (another collector or UI on this
		// machine): the collector is still useful without its UI.
		lay.Close()
		logger.Warn("web UI not served: its default address is taken; set --ui-addr", "addr", cfg.UIAddr, "err", err)
		return nil, nil
	}
	if err != nil {
		lay.Close()
		return nil, fmt.Errorf("ui listen: %w", err)
	}
	scheme := "http"
	if d.TLS != nil {
		scheme = "https"
		ln = tls.NewListener(ln, d.TLS.Clone())
	}
	logger.Info("ui listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/", "auth", d.Guard != nil)
	srv := &http.Server{Handler: guarded(u, d.Guard), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	eg.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("ui: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		defer lay.Close()
		err := u.Run(ctx)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return errors.Join(err, srv.Shutdown(sctx))
	})
	return ln.Addr(), nil
}
