package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/simulate/scenario/demo"
)

// config is every collector flag, parsed once in main.
type config struct {
	OTLPGRPCAddr    string
	OTLPHTTPAddr    string
	APIAddr         string
	UIAddr          string
	UIMaxNodes      int
	Storage         string
	ClickHouseDSN   string
	DataDir         string
	EvalInterval    time.Duration
	Window          time.Duration
	Bucket          time.Duration
	PairTTL         time.Duration
	MaxPending      int
	MaxNodes        int
	MaxEdges        int
	MaxRecentSpans  int
	IdleExpiry      time.Duration
	MaxUnplaced     int
	MaxRequestBytes int64
	MaxInFlight     int
	MemoryLimit     int64
	LogLevel        slog.Level

	ConfigFile         string
	KafkaBrokers       []string
	KafkaGroups        []string
	KafkaSASLUser      string
	RabbitMQURL        string
	RabbitMQUser       string
	RabbitMQVHost      string
	NATSMonitorURL     string
	BrokerPollInterval time.Duration
	LagStaleAfter      time.Duration
	Retention          time.Duration
	MaxStorageBytes    int64
	FlushInterval      time.Duration
	StorageBuffer      int
	RawSpansOneIn      int
	RawSpansTTL        time.Duration
	RawSpansBuffer     int
	CollectorID        string
	Detect             string
	MaxRetryGroups     int
	MaxLagSeries       int
	MaxBreakers        int
	MaxEntryOperations int
	MaxFindings        int
	MaxStreamClients   int
	MaxDeltaSeries     int
	TraceSampleOneIn   int
	TraceIdle          time.Duration
	MaxTraces          int
	AlertmanagerURLs   []string
	Pprof              bool
	IngestTokensFile   string
	APITokensFile      string
	OpenMetrics        bool
	TLSCertFile        string
	TLSKeyFile         string
	TLSClientCAFile    string
	Demo               bool
	DemoRate           float64
	DemoPhase          time.Duration

	// file is the --config file, loaded and validated by parseConfig.
	file fileConfig
	// getenv reads secrets named in the config file.
	getenv func(string) string
}

// errHelp is returned by parseConfig when -h or -help was asked for.
var errHelp = flag.ErrHelp

// envPrefix is prepended to upper-cased flag names (dashes become
// underscores) to form the environment variable a flag also reads.
const envPrefix = "CARTOGRAPH_"

// newFlagSet defines the collector's flags on a fresh FlagSet writing into c.
func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.OTLPGRPCAddr, "otlp-grpc-addr", "127.0.0.1:4317", "OTLP/gRPC listen address (empty disables)")
	fs.StringVar(&c.OTLPHTTPAddr, "otlp-http-addr", "127.0.0.1:4318", "OTLP/HTTP listen address (empty disables)")
	fs.StringVar(&c.APIAddr, "api-addr", "127.0.0.1:8070", "JSON API, /metrics, /healthz and /readyz listen address")
	fs.StringVar(&c.UIAddr, "ui-addr", defaultUIAddr, "web UI listen address (all-in-one; empty disables it, e.g. when cmd/ui runs apart)")
	fs.IntVar(&c.UIMaxNodes, "ui-max-nodes", 300, "nodes on the UI's map above which namespaces collapse by themselves")
	fs.StringVar(&c.Storage, "storage", "embedded", "storage backend: embedded or clickhouse")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "", "ClickHouse DSN (with --storage clickhouse), e.g. clickhouse://127.0.0.1:9000/cartograph")
	fs.StringVar(&c.DataDir, "data-dir", "./cartograph-data", "directory of the embedded store")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long stored history is kept")
	fs.Int64Var(&c.MaxStorageBytes, "max-storage-bytes", 1<<30, "embedded store: live data kept at most; beyond, the oldest history is deleted")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 5*time.Second, "how often history is written to storage (at most this much is lost in a crash)")
	fs.IntVar(&c.StorageBuffer, "storage-buffer", 1_000_000, "rows held while storage is down; when full, OTLP senders are told to retry later (UNAVAILABLE / 503)")
	fs.IntVar(&c.RawSpansOneIn, "raw-spans-sample-one-in", 0, "keep the raw spans of one trace in this many (by trace id, so collectors agree) for GET /api/v1/traces/{id}; needs --storage clickhouse; 0 = off")
	fs.DurationVar(&c.RawSpansTTL, "raw-spans-ttl", 24*time.Hour, "how long ClickHouse keeps raw spans (at least 1h)")
	fs.IntVar(&c.RawSpansBuffer, "raw-spans-buffer", 100_000, "raw spans held until written; beyond, the oldest are dropped and counted (never pushes back on senders)")
	fs.StringVar(&c.Detect, "detect", "local", "what the detectors judge: local (this collector's graph), merged (the graph of every collector in shared storage; run it on one collector), off (serve findings from storage)")
	fs.StringVar(&c.CollectorID, "collector-id", "", "this collector's name in shared storage (default the host name)")
	fs.DurationVar(&c.EvalInterval, "eval-interval", 5*time.Second, "detector evaluation period")
	fs.DurationVar(&c.Window, "window", time.Minute, "sliding window that rates, ratios and quantiles are computed over (the longest live window kept in memory)")
	fs.DurationVar(&c.Bucket, "bucket", 0, "time bucket width the window slides by (default window/12)")
	fs.DurationVar(&c.PairTTL, "pair-ttl", 10*time.Second, "how long a half-edge waits for its other half before a virtual node is inferred")
	fs.IntVar(&c.MaxPending, "max-pending", 1_000_000, "half-edges held at most; spans beyond are refused (partial success) and counted")
	fs.IntVar(&c.MaxNodes, "max-nodes", 10_000, "graph nodes at most; beyond, observations are dropped and counted")
	fs.IntVar(&c.MaxEdges, "max-edges", 50_000, "graph edges at most; beyond, observations are dropped and counted")
	fs.IntVar(&c.MaxRecentSpans, "max-recent-spans", 1<<20, "recent spans remembered to find each span's parent whichever arrives first, recognise re-sent spans and tell late ones (the table grows to this while it would forget spans younger than twice --pair-ttl; about 36 bytes each; with --memory-limit at most a tenth of it); beyond, spans are forgotten early and counted")
	fs.DurationVar(&c.IdleExpiry, "idle-expiry", 15*time.Minute, "nodes, edges and peer addresses unseen for this long leave memory, so addresses that keep changing (ip:port peers) cannot fill --max-nodes for good; their history stays in storage, and a quiet consumer's edge is remembered for its lag; at least --window plus two buckets and 3x --pair-ttl (unset, it grows to that with a longer --window)")
	fs.IntVar(&c.MaxUnplaced, "max-unplaced", 1_000, "(service, reason) rows of spans no rule could place on an edge (GET /api/v1/graph/unplaced); beyond, counted under the service (other)")
	fs.IntVar(&c.MaxRetryGroups, "max-retry-groups", 100_000, "failed-call groups kept to recognise retries; beyond, counted and not tracked")
	fs.IntVar(&c.MaxLagSeries, "max-lag-series", 100_000, "consumer-lag series (group x destination x partition) kept; readings of more are refused and counted")
	fs.IntVar(&c.MaxBreakers, "max-breakers", 10_000, "circuit breakers and retry counters kept from metrics; more are refused and counted")
	fs.IntVar(&c.MaxEntryOperations, "max-entry-operations", 1_000, "entry operations whose critical paths are kept; traces of more are dropped and counted")
	fs.IntVar(&c.MaxFindings, "max-findings", 10_000, "pending and firing findings (and separately resolved ones) kept; more are dropped and counted")
	fs.IntVar(&c.MaxStreamClients, "max-stream-clients", 1_000, "websocket clients of /api/v1/stream at once; more are refused with 503")
	fs.IntVar(&c.MaxDeltaSeries, "max-delta-series", 16_384, "delta-temporality metric series whose running totals are kept; more are refused and counted")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", 16<<20, "largest OTLP request accepted, after decompression")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 8, "OTLP requests processed at once; beyond, senders get RESOURCE_EXHAUSTED / 429 and retry")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "soft memory limit of the process in bytes (as GOMEMLIMIT); OTLP requests are refused (RESOURCE_EXHAUSTED / 429) while the live heap is above 70% of it; 0: none")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file with detector thresholds and broker pollers (see README)")
	fs.Func("kafka-brokers", "poll Kafka consumer lag from these comma-separated seed brokers (SASL password: env CARTOGRAPH_KAFKA_SASL_PASSWORD)", func(v string) error {
		c.KafkaBrokers = splitList(v)
		return nil
	})
	fs.Func("kafka-groups", "poll only these comma-separated Kafka consumer groups (default all)", func(v string) error {
		c.KafkaGroups = splitList(v)
		return nil
	})
	fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", "", "Kafka SASL/PLAIN user")
	fs.StringVar(&c.RabbitMQURL, "rabbitmq-url", "", "poll queue depths from this RabbitMQ management API, e.g. http://127.0.0.1:15672 (password: env CARTOGRAPH_RABBITMQ_PASSWORD)")
	fs.StringVar(&c.RabbitMQUser, "rabbitmq-user", "", "RabbitMQ management API user")
	fs.StringVar(&c.RabbitMQVHost, "rabbitmq-vhost", "", "poll only this RabbitMQ vhost (default all)")
	fs.StringVar(&c.NATSMonitorURL, "nats-monitor-url", "", "poll JetStream consumers from this NATS monitoring endpoint, e.g. http://127.0.0.1:8222")
	fs.DurationVar(&c.BrokerPollInterval, "broker-poll-interval", 15*time.Second, "default interval of broker polls")
	fs.IntVar(&c.TraceSampleOneIn, "trace-sample-one-in", 1, "analyse the critical path of one complete trace in this many (by trace id, so collectors agree) for the bottleneck detector; 1 = every trace")
	fs.DurationVar(&c.TraceIdle, "trace-idle", 5*time.Second, "a sampled trace whose root has arrived but that still awaits a callee's spans is complete when no span of it arrived for this long (a trace whose root never arrives is analysed after 30s and counted)")
	fs.IntVar(&c.MaxTraces, "max-traces", 10_000, "sampled traces being assembled at most; above half of it the share of traces sampled halves, by trace id; beyond, traces are not sampled, and counted")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the API address")
	fs.Func("alertmanager-url", "push findings to these comma-separated Alertmanager base URLs (API v2), e.g. http://127.0.0.1:9093", func(v string) error {
		c.AlertmanagerURLs = splitList(v)
		return nil
	})
	fs.DurationVar(&c.LagStaleAfter, "lag-stale-after", 2*time.Minute, "consumer lag with no reading for this long is shown stale (broker or poller down), not current")
	fs.StringVar(&c.IngestTokensFile, "ingest-tokens-file", "", "file of OTLP sender tokens, one name:secret per line; when set (or env CARTOGRAPH_INGEST_TOKENS), OTLP requires Authorization: Bearer <secret>")
	fs.StringVar(&c.APITokensFile, "api-tokens-file", "", "file of API viewer tokens, one name:secret per line; when set (or env CARTOGRAPH_API_TOKENS), /api/v1/* and /metrics require a token (header or /login session)")
	fs.BoolVar(&c.OpenMetrics, "open-metrics", false, "serve /metrics without a token even when the API requires one")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (with chain): serve OTLP gRPC, OTLP HTTP and the API over TLS (reloaded when the file changes)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", "", "PEM CA certificates: require and verify client certificates signed by them on every listener (mutual TLS)")
	fs.BoolVar(&c.Demo, "demo", false, "demo mode: run a made-up shop system in-process and cycle its faults so that each finding fires and resolves; synthetic data, never in production (refused with --storage clickhouse); unless given, sets "+demoDefaultsUsage())
	fs.Float64Var(&c.DemoRate, "demo-rate", demo.DefaultRate, "demo mode: traces per second generated")
	fs.DurationVar(&c.DemoPhase, "demo-phase", demo.DefaultPhase, "demo mode: how long each fault stays on, and then off, in the cycle (after one healthy phase)")
	return fs
}

// parseConfig parses args, then fills every flag not given on the command
// line from its CARTOGRAPH_* environment variable.
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
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
			set[f.Name] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if c.Demo {
		if err := applyDemoDefaults(fs, set); err != nil {
			return c, err
		}
	}
	if !set["idle-expiry"] {
		// The default follows a long window: nothing of the window may
		// leave memory. Set explicitly, it is checked instead.
		c.IdleExpiry = max(c.IdleExpiry, minIdleExpiry(c))
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	c.getenv = getenv
	var err error
	c.file, err = loadFileConfig(c.ConfigFile)
	return c, err
}

// minIdleExpiry is the shortest --idle-expiry c allows: the window plus
// two buckets, and three pair TTLs.
func minIdleExpiry(c config) time.Duration {
	bucket := c.Bucket
	if bucket == 0 {
		bucket = max(c.Window/12, time.Second)
	}
	return max(c.Window+2*bucket, 3*c.PairTTL)
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Validate checks the flags that no component checks for itself.
func (c config) Validate() error {
	var errs []error
	switch c.Storage {
	case "embedded":
	case "clickhouse":
		if c.ClickHouseDSN == "" {
			errs = append(errs, errors.New("--storage clickhouse needs --clickhouse-dsn"))
		}
	default:
		errs = append(errs, fmt.Errorf("--storage %q: want embedded or clickhouse", c.Storage))
	}
	if c.EvalInterval <= 0 {
		errs = append(errs, errors.New("--eval-interval must be positive"))
	}
	switch c.Detect {
	case "local", "merged", "off":
	default:
		errs = append(errs, fmt.Errorf("--detect %q: want local, merged or off", c.Detect))
	}
	for name, v := range map[string]int{"--max-recent-spans": c.MaxRecentSpans, "--max-unplaced": c.MaxUnplaced, "--max-retry-groups": c.MaxRetryGroups, "--max-lag-series": c.MaxLagSeries, "--max-breakers": c.MaxBreakers,
		"--max-entry-operations": c.MaxEntryOperations, "--max-findings": c.MaxFindings, "--max-stream-clients": c.MaxStreamClients, "--max-delta-series": c.MaxDeltaSeries} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	if lo := minIdleExpiry(c); c.IdleExpiry < lo {
		errs = append(errs, fmt.Errorf("--idle-expiry %v must be at least %v (--window plus two buckets, and 3x --pair-ttl)", c.IdleExpiry, lo))
	}
	if c.TraceSampleOneIn < 1 {
		errs = append(errs, errors.New("--trace-sample-one-in must be at least 1"))
	}
	switch {
	case c.RawSpansOneIn < 0:
		errs = append(errs, errors.New("--raw-spans-sample-one-in must be 0 (off) or more"))
	case c.RawSpansOneIn > 0 && c.Storage != "clickhouse":
		errs = append(errs, errors.New("--raw-spans-sample-one-in needs --storage clickhouse: the embedded store keeps no raw spans"))
	}
	if c.RawSpansBuffer < 1 {
		errs = append(errs, errors.New("--raw-spans-buffer must be at least 1"))
	}
	if c.BrokerPollInterval <= 0 {
		errs = append(errs, errors.New("--broker-poll-interval must be positive"))
	}
	if c.APIAddr == "" {
		errs = append(errs, errors.New("--api-addr must be set"))
	}
	if c.OTLPGRPCAddr == "" && c.OTLPHTTPAddr == "" {
		errs = append(errs, errors.New("at least one of --otlp-grpc-addr and --otlp-http-addr must be set"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file"))
	}
	if err := c.validateDemo(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func lookupEnv(k string) string { return os.Getenv(k) }
