// Command collector receives OTLP traces and metrics, pairs spans into the
// live dependency graph and serves the JSON API. main only wires components
// built from the flags (see config.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/alertmanager"
	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/owner"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
	"github.com/seed-a49a8342/cartograph/ingest/brokers"
	"github.com/seed-a49a8342/cartograph/ingest/otlp"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
	"github.com/seed-a49a8342/cartograph/web/api"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrate(os.Args[2:]))
	}
	cfg, err := parseConfig(os.Args[1:], lookupEnv, os.Stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		if errors.Is(err, errVersion) {
			printVersion(os.Stdout, "collector")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if cfg.MemoryLimit > 0 {
		// Process-wide, so here and not in run. On Linux the table of
		// recent spans lives outside the Go heap (graph/pairing/recent_linux.go):
		// the heap's limit leaves room for it, so the process keeps
		// within --memory-limit.
		debug.SetMemoryLimit(max(cfg.MemoryLimit-int64(recentSpansBound(cfg))*32, cfg.MemoryLimit/2))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("collector stopped", "err", err)
		os.Exit(1)
	}
}

// started reports the addresses the collector actually bound.
type started struct {
	OTLPGRPC, OTLPHTTP, API, UI net.Addr
}

// run wires the collector and blocks until ctx is done or a component fails.
// onStart, if not nil, is called once every listener is bound.
func run(ctx context.Context, cfg config, logger *slog.Logger, onStart func(started)) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sec, err := loadSecurity(cfg, logger)
	if err != nil {
		return err
	}
	sec.warnExposed(cfg, logger)
	st, err := openStorage(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	defer st.Close()

	// The lag store summarises; the verdict on each group (and
	// --lag-stale-after) is detect's. Readings up to the stale-after ahead
	// of this clock are taken, as skew, not as readings from the future.
	lags, err := lag.New(lag.Options{Retention: max(15*time.Minute, 2*cfg.Window, 2*cfg.LagStaleAfter), MaxAhead: cfg.LagStaleAfter, MaxKeys: cfg.MaxLagSeries, Registerer: reg})
	if err != nil {
		return err
	}
	lagStatus, err := detect.NewLagJudge(lags, detect.LagJudgeOptions{StaleAfter: cfg.LagStaleAfter})
	if err != nil {
		return err
	}
	breakers, err := resilience.New(resilience.Options{MaxKeys: cfg.MaxBreakers, Registerer: reg})
	if err != nil {
		return err
	}
	sampler, err := critpath.New(critpath.Options{SampleOneIn: cfg.TraceSampleOneIn, TraceIdle: cfg.TraceIdle, MaxTraces: cfg.MaxTraces, MaxEntries: cfg.MaxEntryOperations, MaxCallPatterns: cfg.MaxCallPatterns, Window: cfg.Window, Bucket: cfg.Bucket, Registerer: reg})
	if err != nil {
		return err
	}
	paths := &pathTee{Sampler: sampler} // and the SLO detector's entry operations, once built
	owners, err := ownerResolver(cfg.ingestConfig, logger)
	if err != nil {
		return err
	}
	g, err := graph.New(graph.Options{
		Owners: owners,
		Window: cfg.Window, Bucket: cfg.Bucket, PairTTL: cfg.PairTTL,
		MaxPending: cfg.MaxPending, MaxRetryGroups: cfg.MaxRetryGroups, MaxNodes: cfg.MaxNodes, MaxEdges: cfg.MaxEdges,
		MaxRecentSpans: recentSpansBound(cfg), MaxUnplaced: cfg.MaxUnplaced, IdleExpiry: cfg.IdleExpiry,
		Lag: lagStatus, Circuits: breakers, Paths: paths,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	var judge *seat // built below; the persister reads it only once running
	persist, err := storage.NewPersister(storage.PersisterOptions{
		Storage: st, Edges: g, Findings: findingsFunc(func(s finding.State) []finding.Finding { return judge.persisted(s) }),
		FlushInterval: cfg.FlushInterval, MaxBuffered: cfg.StorageBuffer, MaxBufferedSpans: cfg.RawSpansBuffer, Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	lagSink := persist.Tee(lags)
	rawSpans, err := rawSpanObserver(cfg, persist, reg)
	if err != nil {
		return err
	}
	changeLog, err := newChangeRecorder(cfg, st, logger, reg)
	if err != nil {
		return err
	}
	traces, err := semconv.NewPipeline(semconv.Options{Sink: changeSink{next: g, rec: changeLog}, Registerer: reg, Logger: logger, Observer: rawSpans, NodeAttributes: cfg.keptAttributes(),
		Admit: func() error {
			if persist.Full() {
				return fmt.Errorf("%w: storage is down and its buffer is full", ingest.ErrUnavailable)
			}
			return nil
		}})
	if err != nil {
		return err
	}
	metrics, err := brokermetrics.New(brokermetrics.Options{Lag: lagSink, Resilience: breakers, MaxDeltaSeries: cfg.MaxDeltaSeries, Registerer: reg, Logger: logger})
	if err != nil {
		return err
	}
	recv, err := otlp.New(otlp.Options{
		GRPCAddr: cfg.OTLPGRPCAddr, HTTPAddr: cfg.OTLPHTTPAddr,
		MaxRequestBytes: cfg.MaxRequestBytes, MaxInFlight: cfg.MaxInFlight, MaxHeapBytes: cfg.MemoryLimit / 10 * 7,
		Traces: traces, Metrics: metrics,
		Auth: sec.ingestAuth(), TLS: sec.tls,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	sources, closeBrokers, err := brokerSources(cfg.file, cfg, cfg.getenv)
	if err != nil {
		return err
	}
	defer closeBrokers()
	polls, err := brokers.NewRunner(brokers.RunnerOptions{Sources: sources, Sink: lagSink, Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	hub, err := api.NewHub(api.HubOptions{MaxClients: cfg.MaxStreamClients, Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	detectors := []detect.Detector{
		detect.NewRetryStorm(cfg.file.Detectors.RetryStorm),
		detect.NewConsumerLag(cfg.file.Detectors.ConsumerLag),
		detect.NewOpenCircuit(cfg.file.Detectors.OpenCircuit),
		detect.NewBottleneck(cfg.file.Detectors.Bottleneck),
	}
	slo, err := newSLODetector(cfg, g, logger, reg)
	if err != nil {
		return err
	}
	if slo != nil {
		detectors = append(detectors, slo)
		if slo.CountsOperations() {
			paths.ops.Store(slo)
		}
	}
	engine, err := detect.NewEngine(detect.EngineOptions{
		Detectors:   detectors,
		MaxFindings: cfg.MaxFindings,
		Hold:        cfg.file.Detectors.Hold,
		KeepFiring:  cfg.file.Detectors.KeepFiring,
		Interval:    cfg.EvalInterval,
		Logger:      logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	incidents, err := incident.New(incident.Options{
		Interval: cfg.EvalInterval, MaxIncidents: cfg.MaxIncidents, MaxBaselines: cfg.IncidentMaxBaselines,
		Changes: incidentChanges{changeLog},
		Logger:  logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	judgeLease, err := newJudgeLease(cfg, st, logger, reg)
	if err != nil {
		return err
	}
	members, err := newMembers(cfg, st, g, logger, reg)
	if err != nil {
		return err
	}
	if judge, err = newSeat(cfg.Detect, engine, judgeLease, st, logger, reg); err != nil {
		return err
	}
	var pusher *alertmanager.Pusher
	if am := cfg.file.Alertmanager; len(cfg.AlertmanagerURLs)+len(am.URLs) > 0 {
		pusher, err = alertmanager.New(alertmanager.Options{
			URLs: append(slices.Clone(cfg.AlertmanagerURLs), am.URLs...), Source: judge, Incidents: incidents,
			Labels: am.Labels, BearerToken: secret("", am.BearerTokenEnv, cfg.getenv),
			Interval: am.Interval, ExternalURL: am.ExternalURL,
			Logger: logger, Registerer: reg,
		})
		if err != nil {
			return err
		}
	}
	restoreOpts := storage.RestoreOptions{Edges: g, Findings: engine, Lag: lags, Persister: persist,
		Window: cfg.Window, PairTTL: cfg.PairTTL, LagSince: max(15*time.Minute, 2*cfg.LagStaleAfter), Logger: logger}
	if cfg.Storage == storageClickHouse {
		// Several collectors share ClickHouse: this one restores only its
		// own share, so its live window matches what it alone received.
		restoreOpts.Collector = clickhouseOptions(cfg, logger, nil).Collector
	}
	if err := storage.Restore(ctx, st, restoreOpts); err != nil {
		logger.Warn("could not restore from storage; starting empty", "err", err)
	}
	seedSLO(ctx, slo, st, logger)
	reviewer, err := review.New(cfg.file.Detectors.Review, sampler)
	if err != nil {
		return err
	}
	// The reviews of past evaluations, for the graph diff's observations:
	// in memory, and in ClickHouse when that is the storage.
	reviewOpts := review.HistoryOptions{Max: cfg.MaxReviewHistory, Logger: logger}
	if rs, ok := st.(review.HistoryStore); ok {
		reviewOpts.Store = rs
	}
	reviews := review.NewHistory(reviewOpts)
	var ready atomic.Bool
	apiHandler, err := api.New(api.Options{
		Review: reviewer, ReviewHistory: reviews,
		Graph: g, Unplaced: g, Findings: judge, Stream: hub, Gatherer: reg, Registerer: reg, Logger: logger,
		Brokers:   func() []api.BrokerStatus { return brokerStatus(polls.Status()) },
		Pprof:     cfg.Pprof,
		MaxBuilds: cfg.APIMaxBuilds, MaxBuildNodes: cfg.APIMaxBuildNodes,
		History:        storage.History{Storage: st},
		FindingHistory: st,                 // findings as they were at a past time
		Bucket:         g.Options().Bucket, // a diff needs two of them
		Traces:         tracesFor(cfg, st),
		Changes:        changeLog,
		Ready: func() error {
			if !ready.Load() {
				return errors.New("starting")
			}
			if persist.Full() {
				return fmt.Errorf("storage unavailable and its buffer full: %w", persist.Err())
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	serviceGraph, err := serviceGraphReceivers(cfg, g, reg)
	if err != nil {
		return err
	}
	ticks, err := newRunner(cfg, runnerDeps{
		Graph: g, Seat: judge, Incidents: recordingCorrelator{rec: changeLog, next: incidents}, Storage: st, Lags: lagStatus, Breakers: breakers, Paths: paths,
		Receivers: append([]runner.Receiver{apiHandler}, serviceGraph...),
	}, logger, reg)
	if err != nil {
		return err
	}
	guard, err := sec.newGuard(cfg, logger, reg)
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	logger.Info("api listening", "addr", apiLn.Addr().String(), "tls", sec.tls != nil, "auth", sec.api != nil)
	apiSrv := &http.Server{Handler: guarded(apiHandler, guard), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)} // e.g. TLS handshakes refused
	if sec.tls != nil {
		apiSrv.TLSConfig = sec.tls.Clone()
	}

	if err := recv.Start(ctx); err != nil {
		apiLn.Close()
		return err
	}
	ready.Store(true)
	eg, ctx := errgroup.WithContext(ctx)
	uiAddr, err := startUI(ctx, eg, cfg, uiDeps{
		Source: apiHandler.Local(), Guard: guard, TLS: sec.tls,
	}, logger, reg)
	if err != nil {
		apiLn.Close()
		return errors.Join(err, recv.Shutdown(context.Background()))
	}
	if onStart != nil {
		onStart(started{OTLPGRPC: recv.GRPCAddr(), OTLPHTTP: recv.HTTPAddr(), API: apiLn.Addr(), UI: uiAddr})
	}

	eg.Go(func() error {
		serve := apiSrv.Serve
		if sec.tls != nil {
			serve = func(ln net.Listener) error { return apiSrv.ServeTLS(ln, "", "") }
		}
		if err := serve(apiLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				g.Expire()
			}
		}
	})
	eg.Go(func() error { return ticks.Run(ctx) })
	eg.Go(func() error { return reviews.Run(ctx) })
	if judgeLease != nil {
		eg.Go(func() error { return judgeLease.Run(ctx) })
	}
	if members != nil {
		eg.Go(func() error { return members.Run(ctx) })
	}
	// The persister outlives the others: it stops once nothing can arrive
	// any more and the open bucket has closed, so that its final flush
	// writes everything accepted.
	persistCtx, stopPersist := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPersist()
	eg.Go(func() error { return persist.Run(persistCtx) })
	eg.Go(func() error { return polls.Run(ctx) })
	if pusher != nil {
		eg.Go(func() error { return pusher.Run(ctx) })
	}
	if cfg.Demo {
		eg.Go(func() error { return runDemo(ctx, cfg, demoTargetOf(recv, sec, traces, metrics), logger, time.Now) })
	}
	eg.Go(func() error {
		<-ctx.Done()
		ready.Store(false)
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hub.CloseAll() // stream clients are no longer HTTP: Shutdown does not close them
		err := errors.Join(recv.Shutdown(sctx), apiSrv.Shutdown(sctx))
		waitBucketClose(sctx, g.Options().Bucket)
		stopPersist()
		return err
	})
	return eg.Wait()
}

// brokerStatus converts poller status into the API's shape.
func brokerStatus(in []brokers.Status) []api.BrokerStatus {
	out := make([]api.BrokerStatus, len(in))
	for i, s := range in {
		out[i] = api.BrokerStatus{Name: s.Name, Kind: s.Kind, Endpoint: s.Endpoint, IntervalSeconds: s.Interval,
			LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
			Polls: s.Polls, Failures: s.Failures, Samples: s.Samples}
	}
	return out
}

// findingsFunc adapts a function to storage.FindingSource.
type findingsFunc func(finding.State) []finding.Finding

func (f findingsFunc) Findings(s finding.State) []finding.Finding { return f(s) }

// migrate runs `collector migrate --clickhouse-dsn ... [--cluster NAME]`:
// the ClickHouse schema migrations, without starting anything else; with
// --cluster, the cluster layout on every node of that cluster of the
// server's remote_servers.
func migrate(args []string) int {
	args, cluster, err := cutClusterFlag(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector migrate:", err)
		return 2
	}
	cfg, err := parseConfig(append([]string{"--storage=clickhouse"}, args...), lookupEnv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector migrate:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := clickhouseOptions(cfg, logger, nil)
	o.Cluster = cluster
	if err := clickhouse.Migrate(ctx, o); err != nil {
		logger.Error("migrations failed", "err", err)
		return 1
	}
	logger.Info("migrations applied")
	return 0
}

// cutClusterFlag takes migrate's own flag, --cluster NAME (or
// --cluster=NAME), out of args.
func cutClusterFlag(args []string) (rest []string, cluster string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "cluster" {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, "", errors.New("--cluster needs the name of a cluster of the server's remote_servers")
			}
			i++
			val = args[i]
		}
		cluster = val
	}
	return rest, cluster, nil
}

// loopback reports whether a listen address binds only the loopback
// interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// recentSpansBound is --max-recent-spans, capped under --memory-limit at a
// tenth of the limit (about 36 bytes a span): the table is sized by the
// traffic, not by the heap bound that admission control watches.
func recentSpansBound(cfg config) int {
	if cfg.MemoryLimit > 0 {
		return int(min(int64(cfg.MaxRecentSpans), max(cfg.MemoryLimit/10/36, 1)))
	}
	return cfg.MaxRecentSpans
}

// ownerResolver is the resolver of service owners c asks for: the owner
// attributes, then the Backstage catalog, read now.
func ownerResolver(c ingestConfig, logger *slog.Logger) (*owner.Resolver, error) {
	var catalog map[string]string
	if c.BackstageCatalog != "" {
		var err error
		if catalog, err = owner.LoadCatalog(c.BackstageCatalog, c.MaxCatalogComponents); err != nil {
			return nil, fmt.Errorf("--backstage-catalog: %w", err)
		}
		logger.Info("backstage catalog read", "path", c.BackstageCatalog, "components", len(catalog))
	}
	return owner.NewResolver(c.OwnerAttributes, catalog), nil
}
