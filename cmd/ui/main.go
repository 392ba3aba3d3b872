// Command ui serves cartograph's web UI on its own, reading a collector's
// API (which may run on another machine). The collector also serves the
// same UI itself (--ui-addr), so most people never start this command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seed-a49a8342/cartograph/web/api/client"
	"github.com/seed-a49a8342/cartograph/web/ui"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// config is every flag of the command.
type config struct {
	Listen         string
	Collector      string
	Refresh        time.Duration
	MaxNodes       int
	MaxClients     int
	HistoryPoints  int
	MaxSeries      int
	AllowedOrigins string
	LogLevel       slog.Level
	// CollectorToken is read from the environment only
	// (CARTOGRAPH_COLLECTOR_TOKEN): command lines are visible to every
	// user of the machine.
	CollectorToken string
}

var errHelp = errors.New("help requested")
var errVersion = errors.New("version requested")

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "web UI listen address")
	fs.StringVar(&c.Collector, "collector", "http://127.0.0.1:8070", "the collector's API address (its viewer token, if it asks for one: env CARTOGRAPH_COLLECTOR_TOKEN)")
	fs.DurationVar(&c.Refresh, "refresh", 5*time.Second, "how often the collector is read when it announces no change")
	fs.IntVar(&c.MaxNodes, "ui-max-nodes", 300, "nodes on the map above which namespaces collapse by themselves")
	fs.IntVar(&c.MaxClients, "ui-max-clients", 1000, "pages connected for live updates at once; more are refused with 503")
	fs.IntVar(&c.HistoryPoints, "ui-history-points", 720, "chart points kept per node and edge, one per refresh")
	fs.IntVar(&c.MaxSeries, "ui-max-series", 20_000, "nodes and edges whose chart history is kept; more are counted and not charted")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated origins allowed on the live-update websocket besides the UI's own (e.g. behind a proxy)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	return fs
}

func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := newFlagSet(&c, out)
	version := fs.Bool("version", false, "print the version, VCS revision and build time, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if *version {
		return c, errVersion
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "version" {
			return
		}
		env := "CARTOGRAPH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	c.CollectorToken = getenv("CARTOGRAPH_COLLECTOR_TOKEN")
	if c.Refresh < time.Second {
		errs = append(errs, fmt.Errorf("--refresh %v: at least 1s", c.Refresh))
	}
	return c, errors.Join(errs...)
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, errHelp):
		os.Exit(0)
	case errors.Is(err, errVersion):
		printVersion(os.Stdout)
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "ui:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("ui stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the UI until ctx is done. onStart, if not nil, gets the
// address bound.
func run(ctx context.Context, cfg config, logger *slog.Logger, onStart func(net.Addr)) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	src, err := client.New(client.Options{BaseURL: cfg.Collector, Token: cfg.CollectorToken})
	if err != nil {
		return err
	}
	lay, err := layout.New(ctx, layout.Options{MaxNodes: 2 * cfg.MaxNodes})
	if err != nil {
		return err
	}
	defer lay.Close()
	var origins []string
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	u, err := ui.New(ui.Options{
		Source: src, Layouter: lay, Refresh: cfg.Refresh, MaxNodes: cfg.MaxNodes, MaxClients: cfg.MaxClients,
		HistoryPoints: cfg.HistoryPoints, MaxSeries: cfg.MaxSeries, AllowedOrigins: origins,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", u)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(cfg.Listen); host != "127.0.0.1" && host != "localhost" && host != "::1" {
		logger.Warn("the UI listens beyond this machine: anyone who can reach it can read the graph", "addr", cfg.Listen)
	}
	logger.Info("ui listening", "addr", ln.Addr().String(), "collector", src.BaseURL())
	if onStart != nil {
		onStart(ln.Addr())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = u.Run(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	<-runDone // closes the live connections: pages reconnect to the next UI
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func printVersion(w io.Writer) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "cartograph ui: no build information in this binary")
		return
	}
	rev, at := "unknown", "unknown"
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		}
	}
	fmt.Fprintf(w, "cartograph ui %s (revision %s, %s, %s)\n", bi.Main.Version, rev, at, bi.GoVersion)
}
