// Package embedded is the default storage backend: one file in --data-dir,
// written through go.etcd.io/bbolt, a pure-Go B+tree store with ACID
// transactions that fsyncs on commit. No cgo, no external service, and a
// crash (or SIGKILL) at any point leaves the file at the last committed
// batch.
//
// The file holds seven buckets: "edges", "nodes" (the nodes seen per time
// bucket) and "lag", keyed by time and a sequence (see codec.go);
// "edges_1m" and "nodes_1m", the one-minute rollup that long reads use
// (see rollup.go); "findings", keyed by finding id with the latest state
// written; and "meta" (format version, row counts, where the rollup
// starts).
//
// Retention. Rows older than Options.Retention are deleted (rollup rows by
// the start of their minute), and when the live data exceeds
// Options.MaxBytes the oldest edge buckets, nodes, rollup rows and lag
// samples are deleted until it is under 95% of it. Deletes run in a
// background goroutine in transactions of a bounded number of rows, so a
// large delete never holds the single writer lock for long. A bbolt file
// never shrinks: deleted rows free pages that later writes reuse, so the
// file stays at its high-water mark (a little above MaxBytes at most, once
// reached) while the live data, which MaxBytes bounds, is its size minus
// the free pages. Both are exported as metrics. To give the space back to
// the file system, stop the collector and compact the file offline (bbolt
// compact).
package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
)

// FileName is the name of the database file inside Options.Dir.
const FileName = "cartograph.db"

// Errors.
var (
	// ErrLocked is returned (wrapped) by Open when another process holds
	// the database file for longer than Options.OpenTimeout.
	ErrLocked = errors.New("embedded: database file is locked by another process")
	// ErrAppenderDone is returned by an Appender used after Commit or
	// Rollback.
	ErrAppenderDone = errors.New("embedded: appender already committed or rolled back")
	// ErrFormat is returned by Open for a file of another format version.
	ErrFormat = errors.New("embedded: unsupported file format")
)

// Options configure a Store. Zero fields take the documented defaults.
type Options struct {
	// Dir is the data directory (--data-dir), created 0o750 if missing;
	// the file is Dir/cartograph.db. Required.
	Dir string
	// Retention is the age beyond which rows are deleted (default 7 days):
	// edge buckets and nodes by bucket start, lag samples by time, findings by resolution
	// (or, while unresolved, by when they were last seen).
	Retention time.Duration
	// MaxBytes bounds the live data in the file (default 1 GiB): beyond
	// it, the oldest edge buckets, nodes and lag samples are deleted until it is
	// under 95% of MaxBytes. Findings are few and deleted by age only. The
	// file itself does not shrink (see the package documentation).
	MaxBytes int64
	// RetentionInterval is how often retention runs in the background
	// (default 1m); it also runs at Open and soon after a Commit that takes
	// the data beyond MaxBytes. Negative disables the background goroutine:
	// call EnforceRetention instead.
	RetentionInterval time.Duration
	// OpenTimeout bounds the wait for the file lock (default 5s): a second
	// process on the same Dir gets ErrLocked instead of hanging.
	OpenTimeout time.Duration
	// RollupAfter is the shortest range that Edges and Nodes read from
	// the one-minute rollup (its whole minutes; the partial minutes at
	// either end from the raw rows). Default DefaultRollupAfter (10m);
	// negative: never (every read returns raw rows).
	RollupAfter time.Duration
	// Now is the clock that retention measures age with (default time.Now).
	Now func() time.Time
	// Logger (default: discard).
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered):
	// cartograph_embedded_rows_written_total{kind},
	// cartograph_embedded_rows_deleted_total{kind,reason} (reason age or
	// size), cartograph_embedded_rows{kind},
	// cartograph_embedded_db_size_bytes (live data, what MaxBytes bounds),
	// cartograph_embedded_db_file_bytes (the file's high-water mark) and
	// cartograph_embedded_commit_duration_seconds.
	Registerer prometheus.Registerer
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	}
	if o.Retention <= 0 {
		errs = append(errs, fmt.Errorf("retention %v: must be positive", o.Retention))
	}
	if o.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("max bytes %d: must be positive", o.MaxBytes))
	}
	if o.OpenTimeout <= 0 {
		errs = append(errs, fmt.Errorf("open timeout %v: must be positive", o.OpenTimeout))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = time.Minute
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = 5 * time.Second
	}
	if o.RollupAfter == 0 {
		o.RollupAfter = DefaultRollupAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Bucket names and meta keys.
var (
	bucketEdges    = []byte("edges")
	bucketNodes    = []byte("nodes")
	bucketFindings = []byte("findings")
	bucketLag      = []byte("lag")
	bucketMeta     = []byte("meta")

	metaFormat = []byte("format")
)

// File formats (the meta "format" key): 1 had no rollup; 2 has it; 3
// may hold edge values of format 2 (calls seen and sampled, codec.go). A
// file of an older format is upgraded when opened; older builds refuse a
// newer one (a build before 2 would write rows the rollup would miss, one
// before 3 cannot read its edge rows).
const (
	fileFormatV1 = 1
	fileFormatV2 = 2
	fileFormatV3 = 3
)

// Row kinds, the kind label of the metrics.
const (
	kindEdge    = "edge"
	kindNode    = "node"
	kindFinding = "finding"
	kindLag     = "lag"
)

// metaRows is the meta key holding the row count of a kind.
func metaRows(kind string) []byte { return []byte("rows." + kind) }

const (
	// fillPercent packs pages of the time-keyed buckets, which are
	// written mostly in time order (appends at the right edge).
	fillPercent = 0.9
	// readChunk is the rows one read transaction returns: long range
	// reads are split so they never keep a read transaction open for
	// long (which would hold back page reuse and file remaps).
	readChunk = 4096
	// deleteChunk is the rows one retention transaction deletes.
	deleteChunk = 5000
	// lowWater is the fraction of MaxBytes that size retention deletes
	// down to, so the data does not hover at the bound and trigger a
	// delete after every commit.
	lowWater = 0.95
)

// Store is the embedded backend; it implements storage.Storage. All
// methods are safe for concurrent use.
type Store struct {
	o        Options
	path     string
	db       *bolt.DB
	pageSize int64
	m        metrics
	chunk    int // rows per retention transaction (deleteChunk; tests lower it)
	retMu    sync.Mutex
	kick     chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
	closeMu  sync.Once
	closeEr  error
	// rollupFrom is the first minute (Unix nanos) the rollup holds
	// every row of; set at Open.
	rollupFrom int64
}

var _ storage.Storage = (*Store)(nil)

// Open opens (creating if needed) the store in o.Dir and starts its
// retention goroutine. The Store must be closed with Close.
func Open(o Options) (*Store, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("embedded: invalid options: %w", err)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: create data dir: %w", err)
	}
	path := filepath.Join(o.Dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      o.OpenTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s still locked after %v; is another cartograph process using --data-dir %s?", ErrLocked, path, o.OpenTimeout, o.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	s := &Store{o: o, path: path, db: db, pageSize: int64(db.Info().PageSize), m: newMetrics(), chunk: deleteChunk, kick: make(chan struct{}, 1)}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := initFile(tx); err != nil {
			return err
		}
		s.rollupFrom = getRollupFrom(tx.Bucket(bucketMeta))
		return nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("embedded: open %s: %w", path, err), db.Close())
	}
	u, err := s.usage()
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if o.Registerer != nil {
		for i, c := range s.m.collectors() {
			if err := o.Registerer.Register(c); err != nil {
				for _, r := range s.m.collectors()[:i] {
					o.Registerer.Unregister(r)
				}
				return nil, errors.Join(fmt.Errorf("embedded: register metrics: %w", err), db.Close())
			}
		}
	}
	o.Logger.Info("embedded storage open", "path", path, "live_bytes", u.live, "file_bytes", u.file,
		"edges", u.rows[kindEdge], "nodes", u.rows[kindNode], "findings", u.rows[kindFinding], "lag", u.rows[kindLag])
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if o.RetentionInterval > 0 {
		s.wg.Add(1)
		go s.retain(ctx)
	}
	return s, nil
}

// initFile creates the buckets of a new file, or checks the format of an
// existing one.
func initFile(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	upgrade := false
	if v := meta.Get(metaFormat); v != nil {
		if len(v) != 1 || v[0] < fileFormatV1 || v[0] > fileFormatV3 {
			return fmt.Errorf("%w %v (want %d to %d; written by a newer version?)", ErrFormat, v, fileFormatV1, fileFormatV3)
		}
		upgrade = v[0] == fileFormatV1
	}
	for _, kb := range allKinds {
		b, err := tx.CreateBucketIfNotExists(kb.bucket)
		if err != nil {
			return err
		}
		if meta.Get(metaRows(kb.kind)) == nil {
			// A new bucket, or a file from before the counts: count once.
			if err := putCount(meta, kb.kind, uint64(b.Stats().KeyN)); err != nil {
				return err
			}
		}
	}
	if upgrade {
		if err := upgradeToRollup(tx); err != nil {
			return err
		}
	}
	return meta.Put(metaFormat, []byte{fileFormatV3})
}

// allKinds are the row kinds and their buckets.
var allKinds = []struct {
	kind   string
	bucket []byte
}{{kindEdge, bucketEdges}, {kindNode, bucketNodes}, {kindFinding, bucketFindings}, {kindLag, bucketLag}, {kindEdge1m, bucketEdges1m}, {kindNode1m, bucketNodes1m}}

func getCount(meta *bolt.Bucket, kind string) uint64 {
	v := meta.Get(metaRows(kind))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putCount(meta *bolt.Bucket, kind string, n uint64) error {
	return meta.Put(metaRows(kind), binary.BigEndian.AppendUint64(nil, n))
}

// addCount adds d (may be negative) to the row count of kind.
func addCount(tx *bolt.Tx, kind string, d int) error {
	if d == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	n := int64(getCount(meta, kind)) + int64(d)
	return putCount(meta, kind, uint64(max(n, 0)))
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Appender starts a batch of writes; see storage.Appender. Rows are encoded
// when appended and written in one transaction by Commit, durable (fsynced)
// when it returns nil.
func (s *Store) Appender() storage.Appender { return &appender{s: s} }

// Edges returns the edge buckets starting in [from, to), in start order
// (times in UTC). A range at least Options.RollupAfter long returns its
// whole minutes as one row per edge and minute from the rollup (Width one
// minute, Collector empty) and only the partial minutes at either end as
// stored; graph.SnapshotOf gives the same graph either way. Shorter ranges
// return the buckets as stored, each of its own width.
// Long ranges are read in several short transactions: a row is returned at
// most once, and rows committed meanwhile may or may not be.
func (s *Store) Edges(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error) {
	var out chunks[graph.EdgeBucket]
	r := reader{intern: map[string]string{}}
	read := func(n int64, v []byte) error {
		e, err := decodeEdge(&r, n, v)
		if err != nil {
			return err
		}
		out.add(e)
		return nil
	}
	if err := s.scanRolled(ctx, bucketEdges, bucketEdges1m, from, to, read); err != nil {
		return nil, fmt.Errorf("embedded: read edges: %w", err)
	}
	return out.all(), nil
}

// Buckets returns the edge buckets starting in [from, to) as stored, each
// of its own width, whatever the range's length (never from the rollup):
// what graph.Restore wants. Read like Edges.
func (s *Store) Buckets(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error) {
	var out chunks[graph.EdgeBucket]
	r := reader{intern: map[string]string{}}
	err := s.scan(ctx, bucketEdges, from, to, func(n int64, v []byte) error {
		e, err := decodeEdge(&r, n, v)
		if err != nil {
			return err
		}
		out.add(e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: read buckets: %w", err)
	}
	return out.all(), nil
}

// scanRolled is scan of raw over [from, to), except that a range at least
// RollupAfter long reads its whole minutes (from rollupFrom on) from
// rolled, in time order.
func (s *Store) scanRolled(ctx context.Context, raw, rolled []byte, from, to time.Time, fn func(n int64, v []byte) error) error {
	if !s.useRollup(from, to) {
		return s.scan(ctx, raw, from, to, fn)
	}
	lo, hi := unixNanos(from), unixNanos(to)
	a, b := rollupRange(lo, hi, s.rollupFrom)
	if a >= b {
		return s.scan(ctx, raw, from, to, fn)
	}
	return errors.Join(
		s.scanNanos(ctx, raw, lo, a, fn),
		s.scanNanos(ctx, rolled, a, b, fn),
		s.scanNanos(ctx, raw, b, hi, fn),
	)
}

// Nodes returns the nodes seen in buckets starting in [from, to), one row
// per node and bucket as stored (for the whole minutes of a long range:
// per node and minute, from the rollup), in start order (times in UTC),
// read like Edges.
func (s *Store) Nodes(ctx context.Context, from, to time.Time) ([]graph.NodeSeen, error) {
	var out chunks[graph.NodeSeen]
	r := reader{intern: map[string]string{}}
	err := s.scanRolled(ctx, bucketNodes, bucketNodes1m, from, to, func(t int64, v []byte) error {
		n, err := decodeNodeSeen(&r, t, v)
		if err != nil {
			return err
		}
		out.add(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: read nodes: %w", err)
	}
	return out.all(), nil
}

// Lag returns the lag samples taken in [from, to), in time order (times
// in UTC), read like Edges.
func (s *Store) Lag(ctx context.Context, from, to time.Time) ([]lag.Sample, error) {
	var out chunks[lag.Sample]
	r := reader{intern: map[string]string{}}
	err := s.scan(ctx, bucketLag, from, to, func(n int64, v []byte) error {
		l, err := decodeLag(&r, n, v)
		if err != nil {
			return err
		}
		out.add(l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: read lag: %w", err)
	}
	return out.all(), nil
}

// chunks collects the rows of a long read in slices of up to readChunk
// and joins them once at the end, instead of growing one slice of large
// structs by repeated copies (which took half the time of a large read).
type chunks[T any] struct {
	full [][]T
	cur  []T
	n    int
}

func (c *chunks[T]) add(v T) {
	if len(c.cur) == readChunk {
		c.full = append(c.full, c.cur)
		c.cur = make([]T, 0, readChunk)
	}
	c.cur = append(c.cur, v)
	c.n++
}

func (c *chunks[T]) all() []T {
	if len(c.full) == 0 {
		return c.cur
	}
	out := make([]T, 0, c.n)
	for _, f := range c.full {
		out = append(out, f...)
	}
	return append(out, c.cur...)
}

// scan calls fn with the time and value of each row of bucket name in
// [from, to), in key order, readChunk rows per read transaction. The value
// is only valid during the call.
func (s *Store) scan(ctx context.Context, name []byte, from, to time.Time, fn func(n int64, v []byte) error) error {
	return s.scanNanos(ctx, name, unixNanos(from), unixNanos(to), fn)
}

// scanNanos is scan over [lo, hi) in Unix nanos.
func (s *Store) scanNanos(ctx context.Context, name []byte, lo, hi int64, fn func(n int64, v []byte) error) error {
	if lo >= hi {
		return nil
	}
	lop, hip := timePrefix(lo), timePrefix(hi)
	seek := lop[:]
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		more := false
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(name).Cursor()
			n := 0
			for k, v := c.Seek(seek); k != nil; k, v = c.Next() {
				// A 16-byte key sorts below the 8-byte prefix of hi
				// exactly when its time is below hi.
				if bytes.Compare(k, hip[:]) >= 0 {
					return nil
				}
				if n == readChunk {
					seek, more = bytes.Clone(k), true
					return nil
				}
				t, err := keyNanos(k)
				if err != nil {
					return err
				}
				if err := fn(t, v); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}

// Findings returns the latest state of the findings active in [from, to):
// started before to and not resolved before from; by start, then id.
func (s *Store) Findings(ctx context.Context, from, to time.Time) ([]finding.Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lo, hi := unixNanos(from), unixNanos(to)
	var out []finding.Finding
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFindings).ForEach(func(k, v []byte) error {
			t, err := decodeFindingTimes(v)
			if err != nil {
				return fmt.Errorf("finding %q: %w", k, err)
			}
			if t.started >= hi || t.resolved < lo {
				return nil
			}
			f, err := decodeFinding(v)
			if err != nil {
				return fmt.Errorf("finding %q: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: read findings: %w", err)
	}
	slices.SortFunc(out, func(a, b finding.Finding) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// view runs fn in a read transaction, mapping a closed database to
// storage.ErrUnavailable.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	return unavailable(s.db.View(fn))
}

// update runs fn in a read-write transaction, committed (and fsynced) when
// fn returns nil.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	return unavailable(s.db.Update(fn))
}

var errClosed = fmt.Errorf("%w: embedded store closed", storage.ErrUnavailable)

func unavailable(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.view(func(*bolt.Tx) error { return nil })
}

// Close stops retention and closes the file, waiting for transactions in
// progress. It is idempotent; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeMu.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeEr = fmt.Errorf("embedded: close: %w", err)
		}
	})
	return s.closeEr
}

// usage is the size of the data, in bytes, and rows by kind.
type usage struct {
	file, live int64
	rows       map[string]uint64
}

// usage measures the file: its high-water mark, the pages in use (the
// high-water mark minus free and pending pages) and the row counts, and
// updates the gauges.
func (s *Store) usage() (usage, error) {
	u := usage{rows: map[string]uint64{}}
	err := s.view(func(tx *bolt.Tx) error {
		u.file = tx.Size()
		st := s.db.Stats()
		u.live = max(u.file-int64(st.FreePageN+st.PendingPageN)*s.pageSize, 0)
		meta := tx.Bucket(bucketMeta)
		for _, k := range allKinds {
			u.rows[k.kind] = getCount(meta, k.kind)
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("embedded: measure: %w", err)
	}
	s.m.fileBytes.Set(float64(u.file))
	s.m.liveBytes.Set(float64(u.live))
	for k, n := range u.rows {
		s.m.rows.WithLabelValues(k).Set(float64(n))
	}
	return u, nil
}

type metrics struct {
	written   *prometheus.CounterVec
	deleted   *prometheus.CounterVec
	rows      *prometheus.GaugeVec
	liveBytes prometheus.Gauge
	fileBytes prometheus.Gauge
	commit    prometheus.Histogram
}

func newMetrics() metrics {
	m := metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_embedded_rows_written_total",
			Help: "Rows committed to the embedded store, by kind (edge, node, finding, lag; edge_1m and node_1m: rollup rows created).",
		}, []string{"kind"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_embedded_rows_deleted_total",
			Help: "Rows deleted from the embedded store by retention, by kind and reason (age, size).",
		}, []string{"kind", "reason"}),
		rows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cartograph_embedded_rows",
			Help: "Rows held in the embedded store, by kind.",
		}, []string{"kind"}),
		liveBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_embedded_db_size_bytes",
			Help: "Bytes of live data (pages in use) in the embedded store's file; bounded by its max bytes.",
		}),
		fileBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_embedded_db_file_bytes",
			Help: "Size of the embedded store's file (its high-water mark: bbolt files do not shrink).",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartograph_embedded_commit_duration_seconds",
			Help:    "Time to commit one batch to the embedded store, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, k := range []string{kindEdge, kindNode, kindFinding, kindLag, kindEdge1m, kindNode1m} {
		m.written.WithLabelValues(k)
		m.rows.WithLabelValues(k)
		m.deleted.WithLabelValues(k, reasonAge)
		if k != kindFinding {
			m.deleted.WithLabelValues(k, reasonSize)
		}
	}
	return m
}

func (m metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.written, m.deleted, m.rows, m.liveBytes, m.fileBytes, m.commit}
}

// Begins returns when the oldest edge or node row stored starts, raw or
// rolled up (a rollup row starts at its minute, so history begins on the
// minute of the oldest row): no graph before it can be read. ok is false
// when the store holds none. It reads one key of each table.
func (s *Store) Begins(ctx context.Context) (begins time.Time, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	oldest, found := int64(0), false
	err = s.view(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEdges, bucketEdges1m, bucketNodes, bucketNodes1m} {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			k, _ := b.Cursor().First()
			if k == nil {
				continue
			}
			n, err := keyNanos(k)
			if err != nil {
				return err
			}
			if !found || n < oldest {
				oldest, found = n, true
			}
		}
		return nil
	})
	if err != nil || !found {
		return time.Time{}, false, err
	}
	return time.Unix(0, oldest).UTC(), true, nil
}
