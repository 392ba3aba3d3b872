package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/seed-a49a8342/cartograph/web/api/client"
	"github.com/seed-a49a8342/cartograph/web/ui"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// defaultUIAddr is --ui-addr's default.
const defaultUIAddr = "127.0.0.1:8080"

// startUI serves the web UI on cfg.UIAddr (all-in-one mode), reading this
// collector's own API at apiAddr exactly as a separate `ui` process would.
// It returns the address bound, or nil when the UI is off.
func startUI(ctx context.Context, eg *errgroup.Group, cfg config, apiAddr net.Addr, apiToken string, logger *slog.Logger, reg prometheus.Registerer) (net.Addr, error) {
	if cfg.UIAddr == "" {
		return nil, nil
	}
	src, err := client.New(client.Options{BaseURL: "http://" + apiAddr.String(), Token: apiToken})
	if err != nil {
		return nil, err
	}
	lay, err := layout.New(ctx, layout.Options{MaxNodes: 2 * cfg.UIMaxNodes})
	if err != nil {
		return nil, err
	}
	u, err := ui.New(ui.Options{
		Source: src, Layouter: lay, Refresh: cfg.EvalInterval, MaxNodes: cfg.UIMaxNodes,
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
	logger.Info("ui listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/")
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
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
