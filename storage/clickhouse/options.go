package clickhouse

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultDatabase     = "cartograph"
	DefaultRetention    = 30 * 24 * time.Hour
	DefaultDialTimeout  = 5 * time.Second
	DefaultQueryTimeout = 30 * time.Second
	DefaultRawSpansTTL  = 24 * time.Hour
	// MaxTraceSpans bounds the spans Trace returns for one trace.
	MaxTraceSpans = 10_000
	// FindingsRetention is how long findings are kept after they were last
	// seen.
	FindingsRetention = 90 * 24 * time.Hour
)

// Options configure a Store.
type Options struct {
	// DSN names the server and database (--clickhouse-dsn), e.g.
	// clickhouse://127.0.0.1:9000/cartograph; the database is created when
	// missing (default "cartograph" when the DSN names none). Query
	// parameters are those of clickhouse-go (username, password, secure,
	// compress, dial_timeout, ...).
	DSN string
	// Cluster, for Migrate only, names a cluster of the server's
	// remote_servers: Migrate then makes the cluster layout on every node
	// of it (MigrateCluster). Open finds the layout by itself.
	Cluster string
	// Collector is this collector's id, written with every row (default:
	// the host name).
	Collector string
	// Retention is the TTL of edge buckets, nodes and lag samples (default 30
	// days). Findings are kept FindingsRetention after they were last seen.
	Retention time.Duration
	// RawSpansTTL is the TTL of the spans table (default 24h, at least
	// 1h): raw spans of sampled traces, kept for trace look-ups when the
	// collector samples them (storage.SpanSampler); the table exists, empty,
	// otherwise.
	RawSpansTTL time.Duration
	// DialTimeout bounds connecting (default 5s, or the DSN's
	// dial_timeout); QueryTimeout bounds a read query and a Commit whose
	// context has no deadline (default 30s).
	DialTimeout, QueryTimeout time.Duration
	// Logger (default: discard) and Registerer (default: none) for the
	// cartograph_clickhouse_* metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now); it stamps migrations.
	Now func() time.Time
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// withDefaults returns o with defaults filled in.
func (o Options) withDefaults() Options {
	if o.Collector == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			o.Collector = h
		} else {
			o.Collector = "cartograph"
		}
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.RawSpansTTL == 0 {
		o.RawSpansTTL = DefaultRawSpansTTL
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports whether o can be used (after defaults).
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.DSN == "" {
		errs = append(errs, errors.New("DSN is required (--clickhouse-dsn)"))
	} else if _, _, err := o.chOptions(); err != nil {
		errs = append(errs, err)
	}
	if o.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("retention %v: must be at least 1h", o.Retention))
	}
	if o.RawSpansTTL < time.Hour {
		errs = append(errs, fmt.Errorf("raw spans TTL %v: must be at least 1h", o.RawSpansTTL))
	}
	if o.Cluster != "" && !identRE.MatchString(o.Cluster) {
		errs = append(errs, fmt.Errorf("cluster %q: use letters, digits and _", o.Cluster))
	}
	if o.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("dial timeout %v: must not be negative", o.DialTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clickhouse options: %w", err)
	}
	return nil
}

// chOptions parses the DSN into clickhouse-go options and the database
// name. The connection itself names no database (so that a missing one can
// be created); every statement names its tables in full.
func (o Options) chOptions() (*ch.Options, string, error) {
	opt, err := ch.ParseDSN(o.DSN)
	if err != nil {
		return nil, "", fmt.Errorf("DSN: %w", err)
	}
	db := opt.Auth.Database
	if db == "" {
		db = DefaultDatabase
	}
	if !identRE.MatchString(db) {
		return nil, "", fmt.Errorf("DSN: database name %q: use letters, digits and _", db)
	}
	opt.Auth.Database = ""
	switch {
	case o.DialTimeout > 0:
		opt.DialTimeout = o.DialTimeout
	case opt.DialTimeout == 0:
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.ReadTimeout == 0 && o.QueryTimeout > 0 {
		// A socket read waits at most this long; the server sends
		// progress packets while a query runs, so this only fires on a
		// server that stopped answering.
		opt.ReadTimeout = o.QueryTimeout
	}
	if opt.Compression == nil {
		opt.Compression = &ch.Compression{Method: ch.CompressionLZ4}
	}
	if opt.ClientInfo.Products == nil {
		opt.ClientInfo.Products = append(opt.ClientInfo.Products, struct{ Name, Version string }{"cartograph", ""})
	}
	return opt, db, nil
}
