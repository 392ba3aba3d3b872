// Package clickhouse is the production storage backend: it keeps edge
// buckets, findings and lag samples in ClickHouse (24.x and later) over the
// native protocol, shared by any number of collectors.
//
// Schema (migrations/*.sql, applied by Migrate and Open, recorded in
// schema_migrations):
//   - edge_buckets: one row per collector, edge and time bucket, with the
//     latency sketches as DDSketch bins (Array(Int32) keys, Array(UInt64)
//     counts). Reads merge them in SQL: sum() of the counts, sumMap() of the
//     bins, which is exact (graph.Bins). seen and sampled count the calls
//     seen of sampled traffic (graph.EdgeBucket.Seen, Sampled); in rows
//     written before they existed, seen defaults to requests.
//   - edge_buckets_1m: the same per edge and minute, all collectors
//     together (SummingMergeTree filled by a materialized view), so that
//     reading an hour merges 60 rows per edge instead of 720.
//   - findings: ReplacingMergeTree; of an id's rows the one of the latest
//     lifecycle time (last seen, resolved) wins, the last written of equal
//     ones (findingVersion; migration 003 says "a write time": rows
//     written before this release were versioned by their write time).
//     Evidence and blast radius are JSON strings (numbers come back as
//     float64).
//   - lag_samples: broker lag readings (ReplacingMergeTree: a sample
//     written twice is read once).
//   - nodes: the nodes each collector saw per bucket.
//   - spans: raw spans of sampled traces for trace look-ups (Trace;
//     ReplacingMergeTree ordered by trace id), empty unless the collector
//     samples them (storage.SpanSampler).
//
// Rows live for Options.Retention (findings: FindingsRetention after they
// were last seen; spans: Options.RawSpansTTL): the TTL is written into the
// table when a migration creates it, and Open changes it (ALTER TABLE ...
// MODIFY TTL) when Options ask for another. Tables are partitioned by day
// and drop whole parts, so rows may outlive the retention by up to a day
// (spans are removed by TTL merges instead, within hours).
//
// Times are stored with millisecond precision (raw spans: nanosecond).
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/storage"
)

// pingTimeout bounds Ping when the caller's context allows longer.
const pingTimeout = 2 * time.Second

// Store is a storage.Storage in ClickHouse. Safe for concurrent use.
type Store struct {
	o    Options
	conn driver.Conn
	db   string // database name
	q    string // quoted database name, for statements
	m    *metrics
}

var _ storage.Storage = (*Store)(nil)

// Open connects to the server o.DSN names, creates the database when
// missing and migrates its schema. It fails, with an error wrapping
// storage.ErrUnavailable, when the server cannot be reached within
// o.DialTimeout.
func Open(ctx context.Context, o Options) (*Store, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	conn, db, err := connect(ctx, o)
	if err != nil {
		return nil, err
	}
	if _, err := migrate(ctx, conn, db, o); err != nil {
		conn.Close()
		return nil, err
	}
	o.Logger.Info("clickhouse: storage open", "database", db, "collector", o.Collector, "retention", o.Retention)
	return &Store{o: o, conn: conn, db: db, q: quoteIdent(db), m: m}, nil
}

// connect opens a connection pool and checks that the server answers.
func connect(ctx context.Context, o Options) (driver.Conn, string, error) {
	opt, db, err := o.chOptions()
	if err != nil {
		return nil, "", fmt.Errorf("clickhouse options: %w", err)
	}
	conn, err := ch.Open(opt)
	if err != nil {
		return nil, "", fmt.Errorf("clickhouse: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, opt.DialTimeout+pingTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, "", classify(fmt.Errorf("clickhouse: connect to %v (database %s): %w", opt.Addr, db, err))
	}
	return conn, db, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Ping runs SELECT 1, bounded by a short timeout (2s, or less when ctx
// says so); the error wraps storage.ErrUnavailable when the server cannot
// be reached.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	start := time.Now()
	var one uint8
	err := s.conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	s.m.observeQuery("ping", start, err)
	if err != nil {
		return classify(fmt.Errorf("clickhouse: ping: %w", err))
	}
	return nil
}

// queryCtx bounds a read by QueryTimeout.
func (s *Store) queryCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.QueryTimeout)
}

// classify wraps err with storage.ErrUnavailable when it says the server
// cannot be reached or cannot take work now (network errors, timeouts,
// overload), as opposed to a query or data the server rejects.
func classify(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || !unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// retryableCodes are server exceptions that say "later", not "never".
var retryableCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	252: true, // TOO_MANY_PARTS
	999: true, // KEEPER_EXCEPTION
}

func unavailable(err error) bool {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return retryableCodes[ex.Code]
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ch.ErrAcquireConnTimeout),
		errors.Is(err, ch.ErrConnectionClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &oe), errors.As(err, &ne):
		return true
	}
	return false
}

// metrics are the cartograph_clickhouse_* series.
type metrics struct {
	inserts     *prometheus.CounterVec
	rows        *prometheus.CounterVec
	insertDur   *prometheus.HistogramVec
	queryDur    *prometheus.HistogramVec
	queryErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		inserts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_clickhouse_inserts_total",
			Help: "Insert batches sent to ClickHouse, by table and outcome (success, error).",
		}, []string{"table", "outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_clickhouse_rows_total",
			Help: "Rows handed to ClickHouse, by table and outcome (written; invalid: skipped because they cannot be stored).",
		}, []string{"table", "outcome"}),
		insertDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cartograph_clickhouse_insert_duration_seconds",
			Help:    "Time to send one insert batch, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		}, []string{"table"}),
		queryDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cartograph_clickhouse_query_duration_seconds",
			Help:    "Time of read queries, by query (edges, buckets, nodes, findings, lag, trace, ping).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"query"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_clickhouse_query_errors_total",
			Help: "Read queries that failed, by query.",
		}, []string{"query"}),
	}
	for _, t := range []string{tableEdges, tableNodes, tableFindings, tableLag, tableSpans} {
		m.inserts.WithLabelValues(t, "success")
		m.inserts.WithLabelValues(t, "error")
		m.rows.WithLabelValues(t, "written")
		m.rows.WithLabelValues(t, "invalid")
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.inserts = register(reg, m.inserts, &err)
	m.rows = register(reg, m.rows, &err)
	m.insertDur = register(reg, m.insertDur, &err)
	m.queryDur = register(reg, m.queryDur, &err)
	m.queryErrors = register(reg, m.queryErrors, &err)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (a second Store on the same registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}

func (m *metrics) observeQuery(q string, start time.Time, err error) {
	m.queryDur.WithLabelValues(q).Observe(time.Since(start).Seconds())
	if err != nil {
		m.queryErrors.WithLabelValues(q).Inc()
	}
}

// DateTime64(3) holds 1900-01-01 to 2299-12-31.
var (
	minMilli = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxMilli = time.Date(2299, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// ceilMilli is t in Unix milliseconds rounded up, clamped to what
// DateTime64(3) holds, so that `col >= ceilMilli(from) AND col <
// ceilMilli(to)` on millisecond times is exactly [from, to).
func ceilMilli(t time.Time) int64 {
	ms := t.Unix()*1000 + int64(t.Nanosecond()/1e6)
	if t.Nanosecond()%1e6 != 0 {
		ms++
	}
	return min(max(ms, minMilli), maxMilli)
}
