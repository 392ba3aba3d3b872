// Command ui serves cartograph's web UI on its own, reading a collector's
// API (which may run on another machine). The collector also serves the
// same UI itself (--ui-addr), so most people never start this command.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/seed-a49a8342/cartograph/web/auth"
	"github.com/seed-a49a8342/cartograph/web/ui"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// config is every flag of the command.
type config struct {
	Listen         string
	Collector      string
	Refresh        time.Duration
	MaxNodes       int
	MaxGroups      int
	MaxClients     int
	HistoryPoints  int
	MaxSeries      int
	AllowedOrigins string
	LogLevel       slog.Level
	// TokensFile holds the viewer tokens the UI asks browsers for
	// (name:secret per line); env CARTOGRAPH_UI_TOKENS holds them inline.
	TokensFile string
	// TLS of the UI's own listener.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// TLS towards an https collector: the CA that signed its certificate
	// and, for mutual TLS, this UI's client certificate.
	CollectorCAFile, CollectorCertFile, CollectorKeyFile string
	// Tokens are read from TokensFile and CARTOGRAPH_UI_TOKENS.
	Tokens []auth.Token
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
	fs.IntVar(&c.MaxNodes, "ui-max-nodes", 300, "nodes on the map above which it opens at the overview of groups (namespaces, or a resource attribute); a click opens one")
	fs.IntVar(&c.MaxGroups, "ui-max-groups", 50, "boxes on the map's overview at most; more groups are paged, the rest merged into one box")
	fs.IntVar(&c.MaxClients, "ui-max-clients", 1000, "pages connected for live updates at once; more are refused with 503")
	fs.IntVar(&c.HistoryPoints, "ui-history-points", 720, "chart points kept per node and edge, one per refresh")
	fs.IntVar(&c.MaxSeries, "ui-max-series", 20_000, "nodes and edges whose chart history is kept; more are counted and not charted")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated origins allowed on the live-update websocket besides the UI's own (e.g. behind a proxy)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&c.TokensFile, "tokens-file", "", "file of viewer tokens, one name:secret per line; when set (or env CARTOGRAPH_UI_TOKENS), every page and the websocket need one (browsers log in once)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (with chain): serve the UI over HTTPS (reloaded when the file changes)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", "", "PEM CA certificates: require browser certificates signed by them (mutual TLS)")
	fs.StringVar(&c.CollectorCAFile, "collector-ca-file", "", "PEM CA certificates that an https --collector's certificate is verified against (default: the system's)")
	fs.StringVar(&c.CollectorCertFile, "collector-cert-file", "", "PEM client certificate presented to a collector that requires mutual TLS")
	fs.StringVar(&c.CollectorKeyFile, "collector-key-file", "", "PEM private key of --collector-cert-file")
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
	toks, err := auth.ReadTokens(c.TokensFile, getenv("CARTOGRAPH_UI_TOKENS"))
	if err != nil {
		errs = append(errs, fmt.Errorf("ui tokens (--tokens-file, CARTOGRAPH_UI_TOKENS): %w", err))
	}
	c.Tokens = toks
	if (c.CollectorCertFile == "") != (c.CollectorKeyFile == "") {
		errs = append(errs, errors.New("--collector-cert-file and --collector-key-file go together"))
	}
	if c.Refresh < time.Second {
		errs = append(errs, fmt.Errorf("--refresh %v: at least 1s", c.Refresh))
	}
	if c.MaxGroups < 3 {
		errs = append(errs, fmt.Errorf("--ui-max-groups %d: at least 3", c.MaxGroups))
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
	clientTLS, err := collectorTLS(cfg)
	if err != nil {
		return err
	}
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: clientTLS,
		MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute,
	}}
	src, err := client.New(client.Options{BaseURL: cfg.Collector, Token: cfg.CollectorToken, HTTP: httpClient})
	if err != nil {
		return err
	}
	serverTLS, err := auth.ServerTLSConfig(auth.TLSOptions{
		CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile, Logger: logger,
	})
	if err != nil {
		return err
	}
	var guard *auth.Guard
	if len(cfg.Tokens) > 0 {
		toks, err := auth.NewTokens(cfg.Tokens)
		if err != nil {
			return err
		}
		guard, err = auth.NewGuard(auth.GuardOptions{
			Tokens: toks, OpenPaths: []string{"/healthz"}, LoginPath: "/login",
			Logger: logger, Registerer: reg,
		})
		if err != nil {
			return err
		}
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
		Source: src, Layouter: lay, Refresh: cfg.Refresh, MaxNodes: cfg.MaxNodes, MaxGroups: cfg.MaxGroups, MaxClients: cfg.MaxClients,
		HistoryPoints: cfg.HistoryPoints, MaxSeries: cfg.MaxSeries, AllowedOrigins: origins,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", u)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	var handler http.Handler = mux
	if guard != nil {
		outer := http.NewServeMux()
		outer.Handle("/login", guard.Login())
		outer.Handle("/logout", guard.Logout())
		outer.Handle("/", guard.Wrap(mux))
		handler = outer
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
		ln = tls.NewListener(ln, serverTLS)
	}
	if host, _, _ := net.SplitHostPort(cfg.Listen); guard == nil && cfg.TLSClientCAFile == "" && host != "127.0.0.1" && host != "localhost" && host != "::1" {
		logger.Warn("the UI listens beyond this machine without authentication: anyone who can reach it can read the graph (set --tokens-file)", "addr", cfg.Listen)
	}
	logger.Info("ui listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/", "collector", src.BaseURL(), "auth", guard != nil)
	if onStart != nil {
		onStart(ln.Addr())
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
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

// collectorTLS is the TLS configuration towards the collector: nil (the
// system's roots, no client certificate) unless a CA or client
// certificate is given.
func collectorTLS(cfg config) (*tls.Config, error) {
	if cfg.CollectorCAFile == "" && cfg.CollectorCertFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CollectorCAFile != "" {
		pem, err := os.ReadFile(cfg.CollectorCAFile)
		if err != nil {
			return nil, fmt.Errorf("--collector-ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--collector-ca-file %s: no PEM certificate in it", cfg.CollectorCAFile)
		}
	}
	if cfg.CollectorCertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CollectorCertFile, cfg.CollectorKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--collector-cert-file/--collector-key-file: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
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
