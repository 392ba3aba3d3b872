package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"flag"
	"time"

	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/enumtext"
	"github.com/seed-a49a8342/cartograph/graph/owner"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"

	"github.com/seed-a49a8342/cartograph/simulate/scenario/demo"
)

// ingestConfig is how OTLP comes in: listeners, request and memory bounds (ingest/otlp, ingest/brokermetrics).
type ingestConfig struct {
	OTLPGRPCAddr    string
	OTLPHTTPAddr    string
	MaxRequestBytes int64
	MaxInFlight     int
	MemoryLimit     int64
	MaxDeltaSeries  int
	NodeAttributes  nameList
	// OwnerAttributes, BackstageCatalog and MaxCatalogComponents say
	// where a service's owner comes from (graph/owner).
	OwnerAttributes      nameList
	BackstageCatalog     string
	MaxCatalogComponents int
}

// keptAttributes are the resource attributes kept on service nodes:
// --node-attributes, then the --owner-attributes not among them.
func (c ingestConfig) keptAttributes() []string {
	kept := slices.Clone([]string(c.NodeAttributes))
	for _, a := range c.OwnerAttributes {
		if !slices.Contains(kept, a) {
			kept = append(kept, a)
		}
	}
	return kept
}

// defaultNodeAttributes is --node-attributes' default.
func defaultNodeAttributes() nameList { return semconv.DefaultNodeAttributes() }

// nameList is a comma-separated list flag with a default.
type nameList []string

func (l nameList) MarshalText() ([]byte, error) { return []byte(strings.Join(l, ",")), nil }
func (l *nameList) UnmarshalText(b []byte) error {
	*l = splitList(string(b))
	return nil
}

// flags defines the flags of ingestConfig on fs.
func (c *ingestConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.OTLPGRPCAddr, "otlp-grpc-addr", "127.0.0.1:4317", "OTLP/gRPC listen address (empty disables)")
	fs.StringVar(&c.OTLPHTTPAddr, "otlp-http-addr", "127.0.0.1:4318", "OTLP/HTTP listen address (empty disables)")
	fs.TextVar(&c.NodeAttributes, "node-attributes", defaultNodeAttributes(), fmt.Sprintf("comma-separated resource attributes kept on service nodes (string values, at most %d, each cut at 256 bytes), for the UI to group services by; empty keeps none", graph.MaxNodeAttributes))
	fs.TextVar(&c.OwnerAttributes, "owner-attributes", nameList{"team", "service.owner"}, "comma-separated resource attributes that name a service's owner, first non-empty wins over --backstage-catalog; kept on service nodes as --node-attributes are (counted in their bound); empty: none")
	fs.StringVar(&c.BackstageCatalog, "backstage-catalog", "", "Backstage catalog that names service owners (spec.owner of Component entities, by the opentelemetry.io/service-name annotation, else metadata.name): a catalog-info.yaml file, an /api/catalog/entities JSON file, or a directory of them; read at start; empty: none")
	fs.IntVar(&c.MaxCatalogComponents, "max-catalog-components", owner.DefaultMaxEntities, "components read from --backstage-catalog; a larger catalog is refused at start")
	fs.IntVar(&c.MaxDeltaSeries, "max-delta-series", 16_384, "delta-temporality metric series whose running totals are kept; more are refused and counted")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", 16<<20, "largest OTLP request accepted, after decompression")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 8, "OTLP requests processed at once; beyond, senders get RESOURCE_EXHAUSTED / 429 and retry")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "soft memory limit of the process in bytes (as GOMEMLIMIT); OTLP requests are refused (RESOURCE_EXHAUSTED / 429) while the live heap is above 70% of it; 0: none")
}

// apiConfig is what the collector serves: the JSON API and the built-in web UI (web/api, web/ui).
type apiConfig struct {
	APIMaxBuilds     int
	APIMaxBuildNodes int
	APIAddr          string
	UIAddr           string
	UIMaxNodes       int
	UIMaxGroups      int
	MaxStreamClients int
	Pprof            bool
	// GrafanaServiceGraph exposes the graph on /metrics as Grafana's
	// service graph reads it (web/servicegraph).
	GrafanaServiceGraph bool
}

// flags defines the flags of apiConfig on fs.
func (c *apiConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.APIMaxBuilds, "api-max-builds", 2, "graphs built for API requests at once (windows other than the default, history); beyond, requests wait up to 5s, then get 503 with Retry-After (the default window is served from the last evaluation and never waits)")
	fs.IntVar(&c.APIMaxBuildNodes, "api-max-build-nodes", 50_000, "refuse (422) to build per request a live graph of a window other than the default while the graph has more nodes than this; 0: no bound")
	fs.StringVar(&c.APIAddr, "api-addr", "127.0.0.1:8070", "JSON API, /metrics, /healthz and /readyz listen address")
	fs.StringVar(&c.UIAddr, "ui-addr", defaultUIAddr, "web UI listen address (all-in-one; empty disables it, e.g. when cmd/ui runs apart)")
	fs.IntVar(&c.UIMaxNodes, "ui-max-nodes", 300, "nodes on the UI's map above which it opens at the overview of groups (namespaces, or a resource attribute); a click opens one")
	fs.IntVar(&c.UIMaxGroups, "ui-max-groups", 50, "boxes on the UI map's overview at most; more groups are paged, the rest merged into one box")
	fs.IntVar(&c.MaxStreamClients, "max-stream-clients", 1_000, "websocket clients of /api/v1/stream at once; more are refused with 503")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the API address")
	fs.BoolVar(&c.GrafanaServiceGraph, "grafana-service-graph-metrics", false, "also serve the graph's edges on /metrics as the traces_service_graph_* series Grafana's service graph reads (as Tempo's metrics-generator writes them), bounded by --max-edges; see docs/grafana.md")
}

// storageConfig is where history is kept (storage/embedded, storage/clickhouse, the persister).
type storageConfig struct {
	Storage         storageBackend
	ClickHouseDSN   string
	DataDir         string
	Retention       time.Duration
	MaxStorageBytes int64
	FlushInterval   time.Duration
	StorageBuffer   int
	RawSpansOneIn   int
	RawSpansTTL     time.Duration
	RawSpansBuffer  int
	CollectorID     string
}

// flags defines the flags of storageConfig on fs.
func (c *storageConfig) flags(fs *flag.FlagSet) {
	fs.TextVar(&c.Storage, "storage", storageEmbedded, "storage backend: embedded or clickhouse")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "", "ClickHouse DSN (with --storage clickhouse), e.g. clickhouse://127.0.0.1:9000/cartograph")
	fs.StringVar(&c.DataDir, "data-dir", "./cartograph-data", "directory of the embedded store")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long stored history is kept")
	fs.Int64Var(&c.MaxStorageBytes, "max-storage-bytes", 1<<30, "embedded store: live data kept at most; beyond, the oldest history is deleted")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 5*time.Second, "how often history is written to storage (at most this much is lost in a crash)")
	fs.IntVar(&c.StorageBuffer, "storage-buffer", 1_000_000, "rows held while storage is down; when full, OTLP senders are told to retry later (UNAVAILABLE / 503)")
	fs.IntVar(&c.RawSpansOneIn, "raw-spans-sample-one-in", 0, "keep the raw spans of one trace in this many (by trace id, so collectors agree) for GET /api/v1/traces/{id}; needs --storage clickhouse; 0 = off")
	fs.DurationVar(&c.RawSpansTTL, "raw-spans-ttl", 24*time.Hour, "how long ClickHouse keeps raw spans (at least 1h)")
	fs.IntVar(&c.RawSpansBuffer, "raw-spans-buffer", 100_000, "raw spans held until written; beyond, the oldest are dropped and counted (never pushes back on senders)")
	fs.StringVar(&c.CollectorID, "collector-id", "", "this collector's name in shared storage (default the host name)")
}

// graphConfig is the live graph and the signals joined to it: window, pairing, bounds (graph, graph/lag, graph/resilience, graph/critpath).
type graphConfig struct {
	Window             time.Duration
	Bucket             time.Duration
	PairTTL            time.Duration
	MaxPending         int
	MaxNodes           int
	MaxEdges           int
	MaxRecentSpans     int
	IdleExpiry         time.Duration
	MaxUnplaced        int
	MaxRetryGroups     int
	MaxLagSeries       int
	MaxBreakers        int
	MaxEntryOperations int
	MaxCallPatterns    int
	MaxReviewHistory   int
	TraceSampleOneIn   int
	TraceIdle          time.Duration
	MaxTraces          int
	LagStaleAfter      time.Duration
}

// flags defines the flags of graphConfig on fs.
func (c *graphConfig) flags(fs *flag.FlagSet) {
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
	fs.IntVar(&c.MaxCallPatterns, "max-call-patterns", critpath.DefaultMaxCallPatterns, "call patterns (caller, callee, operation) of sampled traces one time bucket keeps for the communication review; calls of more are dropped and counted")
	fs.IntVar(&c.MaxReviewHistory, "max-review-history", 1_000, "communication reviews kept in memory, one per evaluation whose observations differ from the one before, for the graph diff's observations that appeared or went away; the oldest are forgotten first")
	fs.IntVar(&c.TraceSampleOneIn, "trace-sample-one-in", 1, "analyse the critical path of one complete trace in this many (by trace id, so collectors agree) for the bottleneck detector; 1 = every trace")
	fs.DurationVar(&c.TraceIdle, "trace-idle", 5*time.Second, "a sampled trace whose root has arrived but that still awaits a callee's spans is complete when no span of it arrived for this long (a trace whose root never arrives is analysed after 30s and counted)")
	fs.IntVar(&c.MaxTraces, "max-traces", 10_000, "sampled traces being assembled at most; above half of it the share of traces sampled halves, by trace id; beyond, traces are not sampled, and counted")
	fs.DurationVar(&c.LagStaleAfter, "lag-stale-after", 2*time.Minute, "consumer lag with no reading for this long is shown stale (broker or poller down), not current")
}

// detectConfig is what is judged, how often, and where findings go (detect, detect/runner, detect/alertmanager).
type detectConfig struct {
	Detect               detectMode
	EvalInterval         time.Duration
	JudgeTakeover        time.Duration
	ServeMerged          bool
	MaxFindings          int
	MaxIncidents         int
	IncidentMaxBaselines int
	AlertmanagerURLs     []string
}

// flags defines the flags of detectConfig on fs.
func (c *detectConfig) flags(fs *flag.FlagSet) {
	fs.TextVar(&c.Detect, "detect", detectLocal, "what the detectors judge: local (this collector's graph), merged (the graph of every collector in shared storage; with ClickHouse the collectors run with it elect one judge at a time), off (serve findings from storage)")
	fs.DurationVar(&c.EvalInterval, "eval-interval", 5*time.Second, "detector evaluation period")
	fs.DurationVar(&c.JudgeTakeover, "judge-takeover", 0, "with --detect merged on ClickHouse: how soon after the judging collector's last heartbeat another collector run with --detect merged holds the judge's lease (at least 600ms; 0: 3 x --eval-interval)")
	fs.BoolVar(&c.ServeMerged, "serve-merged", false, "with --detect merged: serve the merged graph (what the judge judges) also while another collector judges, so that the API and UI of every collector show the whole graph, as behind one Service over all of them; each collector then reads the merged window from storage every --eval-interval (without it, only the judge does and the others serve their own share)")
	fs.IntVar(&c.MaxFindings, "max-findings", 10_000, "pending and firing findings (and separately resolved ones) kept; more are dropped and counted")
	fs.IntVar(&c.MaxIncidents, "max-incidents", incident.DefaultMaxIncidents, "incidents kept, open and resolved (the oldest resolved go first); an incident beyond is not opened, and counted")
	fs.IntVar(&c.IncidentMaxBaselines, "incident-max-baselines", incident.DefaultMaxBaselines, "nodes, edges and entry points whose usual figures are learnt to rank incidents' root causes; beyond, counted and not judged")
	fs.Func("alertmanager-url", "push findings to these comma-separated Alertmanager base URLs (API v2), e.g. http://127.0.0.1:9093", func(v string) error {
		c.AlertmanagerURLs = splitList(v)
		return nil
	})
}

// brokersConfig is the broker pollers named by flags (ingest/brokers); the --config file can add more.
type brokersConfig struct {
	KafkaBrokers       []string
	KafkaGroups        []string
	KafkaSASLUser      string
	RabbitMQURL        string
	RabbitMQUser       string
	RabbitMQVHost      string
	NATSMonitorURL     string
	BrokerPollInterval time.Duration
}

// flags defines the flags of brokersConfig on fs.
func (c *brokersConfig) flags(fs *flag.FlagSet) {
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
}

// securityConfig is access control: tokens and TLS (web/auth).
type securityConfig struct {
	IngestTokensFile string
	APITokensFile    string
	OpenMetrics      bool
	TLSCertFile      string
	TLSKeyFile       string
	TLSClientCAFile  string
}

// flags defines the flags of securityConfig on fs.
func (c *securityConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.IngestTokensFile, "ingest-tokens-file", "", "file of OTLP sender tokens, one name:secret per line; when set (or env CARTOGRAPH_INGEST_TOKENS), OTLP requires Authorization: Bearer <secret>")
	fs.StringVar(&c.APITokensFile, "api-tokens-file", "", "file of API viewer tokens, one name:secret per line; when set (or env CARTOGRAPH_API_TOKENS), /api/v1/* and /metrics require a token (header or /login session)")
	fs.BoolVar(&c.OpenMetrics, "open-metrics", false, "serve /metrics without a token even when the API requires one")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (with chain): serve OTLP gRPC, OTLP HTTP and the API over TLS (reloaded when the file changes)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", "", "PEM CA certificates: require and verify client certificates signed by them on every listener (mutual TLS)")
}

// demoConfig is demo mode (simulate/scenario/demo).
type demoConfig struct {
	Demo      bool
	DemoRate  float64
	DemoPhase time.Duration
}

// flags defines the flags of demoConfig on fs.
func (c *demoConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Demo, "demo", false, "demo mode: run a made-up shop system in-process and cycle its faults so that each finding fires and resolves; synthetic data, never in production (refused with --storage clickhouse); unless given, sets "+demoDefaultsUsage())
	fs.Float64Var(&c.DemoRate, "demo-rate", demo.DefaultRate, "demo mode: traces per second generated")
	fs.DurationVar(&c.DemoPhase, "demo-phase", demo.DefaultPhase, "demo mode: how long each fault stays on, and then off, in the cycle (after one healthy phase)")
}

// storageBackend is --storage.
type storageBackend uint8

// Storage backends.
const (
	storageEmbedded storageBackend = iota + 1
	storageClickHouse
)

var storageBackendNames = enumtext.Names[storageBackend]{Type: "storage backend", List: []string{"", "embedded", "clickhouse"}}

func (b storageBackend) String() string               { return storageBackendNames.String(b) }
func (b storageBackend) MarshalText() ([]byte, error) { return storageBackendNames.Marshal(b) }
func (b *storageBackend) UnmarshalText(t []byte) error {
	return unmarshalEnum(storageBackendNames, b, t)
}

// detectMode is --detect: what this collector's detectors judge.
type detectMode uint8

// Detect modes.
const (
	detectLocal  detectMode = iota + 1 // this collector's graph
	detectMerged                       // the graph of every collector in shared storage
	detectOff                          // nothing: findings come from storage
)

var detectModeNames = enumtext.Names[detectMode]{Type: "detect mode", List: []string{"", "local", "merged", "off"}}

func (m detectMode) String() string                { return detectModeNames.String(m) }
func (m detectMode) MarshalText() ([]byte, error)  { return detectModeNames.Marshal(m) }
func (m *detectMode) UnmarshalText(t []byte) error { return unmarshalEnum(detectModeNames, m, t) }

// unmarshalEnum sets *dst to the value named t, or says which names
// there are.
func unmarshalEnum[T ~uint8](names enumtext.Names[T], dst *T, t []byte) error {
	v, err := names.Unmarshal(t)
	if err != nil {
		return fmt.Errorf("%w: want one of %s", err, strings.Join(names.List[1:], ", "))
	}
	*dst = v
	return nil
}

// Validate checks the ingest flags.
func (c ingestConfig) Validate() error {
	var errs []error
	if c.OTLPGRPCAddr == "" && c.OTLPHTTPAddr == "" {
		errs = append(errs, errors.New("at least one of --otlp-grpc-addr and --otlp-http-addr must be set"))
	}
	if c.MaxDeltaSeries < 1 {
		errs = append(errs, errors.New("--max-delta-series must be at least 1"))
	}
	if err := semconv.CheckNodeAttributes(c.NodeAttributes); err != nil {
		errs = append(errs, fmt.Errorf("--node-attributes: %w", err))
	} else if err := semconv.CheckNodeAttributes(c.keptAttributes()); err != nil {
		errs = append(errs, fmt.Errorf("--node-attributes with --owner-attributes: %w", err))
	}
	if c.MaxCatalogComponents < 1 {
		errs = append(errs, errors.New("--max-catalog-components must be at least 1"))
	}
	return errors.Join(errs...)
}

// Validate checks the API and UI flags.
func (c apiConfig) Validate() error {
	var errs []error
	if c.APIAddr == "" {
		errs = append(errs, errors.New("--api-addr must be set"))
	}
	if c.MaxStreamClients < 1 {
		errs = append(errs, errors.New("--max-stream-clients must be at least 1"))
	}
	if c.APIMaxBuilds < 1 {
		errs = append(errs, errors.New("--api-max-builds must be at least 1"))
	}
	if c.APIMaxBuildNodes < 0 {
		errs = append(errs, errors.New("--api-max-build-nodes must be 0 (no bound) or more"))
	}
	if c.UIMaxGroups < 3 {
		errs = append(errs, errors.New("--ui-max-groups must be at least 3"))
	}
	return errors.Join(errs...)
}

// Validate checks the storage flags.
func (c storageConfig) Validate() error {
	var errs []error
	if c.Storage == storageClickHouse && c.ClickHouseDSN == "" {
		errs = append(errs, errors.New("--storage clickhouse needs --clickhouse-dsn"))
	}
	if c.RawSpansOneIn < 0 {
		errs = append(errs, errors.New("--raw-spans-sample-one-in must be 0 (off) or more"))
	}
	if c.RawSpansBuffer < 1 {
		errs = append(errs, errors.New("--raw-spans-buffer must be at least 1"))
	}
	return errors.Join(errs...)
}

// Validate checks the graph flags that graph.Options does not check itself.
func (c graphConfig) Validate() error {
	var errs []error
	for name, v := range map[string]int{"--max-recent-spans": c.MaxRecentSpans, "--max-unplaced": c.MaxUnplaced, "--max-retry-groups": c.MaxRetryGroups,
		"--max-lag-series": c.MaxLagSeries, "--max-breakers": c.MaxBreakers, "--max-entry-operations": c.MaxEntryOperations, "--max-call-patterns": c.MaxCallPatterns, "--max-review-history": c.MaxReviewHistory} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	if c.TraceSampleOneIn < 1 {
		errs = append(errs, errors.New("--trace-sample-one-in must be at least 1"))
	}
	return errors.Join(errs...)
}

// Validate checks the detect flags.
func (c detectConfig) Validate() error {
	var errs []error
	if c.EvalInterval <= 0 {
		errs = append(errs, errors.New("--eval-interval must be positive"))
	}
	if c.MaxFindings < 1 {
		errs = append(errs, errors.New("--max-findings must be at least 1"))
	}
	if c.MaxIncidents < 1 {
		errs = append(errs, errors.New("--max-incidents must be at least 1"))
	}
	if c.IncidentMaxBaselines < 1 {
		errs = append(errs, errors.New("--incident-max-baselines must be at least 1"))
	}
	if c.ServeMerged && c.Detect != detectMerged {
		errs = append(errs, fmt.Errorf("--serve-merged needs --detect merged (not %q): only then is there a merged graph to serve", c.Detect))
	}
	if c.JudgeTakeover != 0 && c.JudgeTakeover < 600*time.Millisecond {
		errs = append(errs, errors.New("--judge-takeover must be 0 (3 x --eval-interval) or at least 600ms"))
	}
	return errors.Join(errs...)
}

// Validate checks the broker flags.
func (c brokersConfig) Validate() error {
	if c.BrokerPollInterval <= 0 {
		return errors.New("--broker-poll-interval must be positive")
	}
	return nil
}

// Validate checks the TLS flags (token files are read by loadSecurity).
func (c securityConfig) Validate() error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file"))
	}
	return errors.Join(errs...)
}

// Validate checks the demo flags.
func (c demoConfig) Validate() error {
	if !c.Demo {
		return nil
	}
	var errs []error
	if !(c.DemoRate > 0) {
		errs = append(errs, errors.New("--demo-rate must be positive"))
	}
	if c.DemoPhase <= 0 {
		errs = append(errs, errors.New("--demo-phase must be positive"))
	}
	return errors.Join(errs...)
}
