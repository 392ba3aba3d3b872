package clickhouse

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// LeaseOptions configure a Lease.
type LeaseOptions struct {
	// Takeover bounds how long the others wait, after the holder's last
	// heartbeat, before one of them holds the lease (the judge's
	// --judge-takeover). Required. Every Takeover/6 each contender reads
	// the lease and the holder renews it; the lease lasts 2/3 Takeover
	// after the last change a contender saw; the holder lets go after
	// Takeover/2 without a renewal of its own.
	Takeover time.Duration
	// Timeout bounds one step's queries (default Takeover/3, at least
	// 5s). Waiting longer than Takeover/2 does not stretch the lease: the
	// holder's deadline counts from when its renewal began, so a late
	// renewal only renews what is left. A slow server is waited for rather
	// than hung up on (a query abandoned mid-way costs the server more
	// than one answered late); a failed step is retried at the next.
	Timeout time.Duration
	// Now is the clock (default time.Now). Only its rate matters: no
	// two collectors' clocks are compared.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Lease is the judge's lease in ClickHouse (table judge_lease): of the
// collectors that contend for it, exactly one holds it at a time.
//
// How: a term is claimed by inserting its row with the deduplication token
// judge/term/<n>; ClickHouse keeps the first insert of a token and drops
// the others (insert deduplication, atomic under the table's parts lock;
// ReplicatedMergeTree does the same through Keeper), so every contender
// reading the term back agrees on its one holder. The holder renews by
// inserting heartbeats under its term. A contender that sees the newest
// row (term, beat) unchanged for the lease's duration, measured on its own
// clock from when its read returned, claims the next term.
//
// Why at most one holds it: the holder judges only until Takeover/2 after
// the start of its last successful renewal (its own clock), while the
// others wait at least 2/3 Takeover after they saw that renewal, which
// they cannot see before it was written, which is after it started. This
// needs the clocks' rates to agree within a sixth, not the clocks, and a
// holder not to stall for Takeover/6 between checking Held and acting on
// it (a garbage-collection pause, a stopped VM), the usual limit of a
// lease without fencing in the store.
//
// Its methods are safe for concurrent use; Run is called once.
type Lease struct {
	o      LeaseOptions
	s      *Store
	holder string // collector id + "/" + a random instance id

	held   prometheus.Gauge
	claims *prometheus.CounterVec

	mu         sync.Mutex
	validUntil time.Time // the holder's own deadline; zero when not held
	term       uint64    // the term held, or last seen
	seen       leaseRow  // the newest row last read
	seenAt     time.Time // when seen last changed, on this clock
	current    string    // the holder last read (collector id)
}

// leaseRow is the newest row of judge_lease.
type leaseRow struct {
	term, beat uint64
	holder     string
}

// ErrLeaseOptions is returned for options that cannot work.
var ErrLeaseOptions = errors.New("clickhouse: lease options")

// NewLease returns the judge's lease of collector s.o.Collector. It holds
// nothing until Run's first step.
func (s *Store) NewLease(o LeaseOptions) (*Lease, error) {
	if o.Takeover < 600*time.Millisecond {
		return nil, fmt.Errorf("%w: takeover %v: at least 600ms", ErrLeaseOptions, o.Takeover)
	}
	if o.Timeout <= 0 {
		o.Timeout = max(o.Takeover/3, 5*time.Second)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	l := &Lease{
		o: o, s: s, holder: s.o.Collector + "/" + hex.EncodeToString(nonce[:]),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_judge_lease_held",
			Help: "1 while this collector holds the judge's lease in ClickHouse (--detect merged).",
		}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_judge_lease_claims_total",
			Help: "Claims of the judge's lease by this collector, by outcome (won, lost: another's claim of the same term came first; error).",
		}, []string{"outcome"}),
	}
	for _, k := range []string{"won", "lost", "error"} {
		l.claims.WithLabelValues(k)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{l.held, l.claims} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("clickhouse: register lease metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Held reports whether this collector holds the lease now: it may judge.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked(l.o.Now())
}

func (l *Lease) heldLocked(now time.Time) bool {
	return !l.validUntil.IsZero() && now.Before(l.validUntil)
}

// Holder returns the collector id that held the lease at the last read,
// and its term ("" and 0 before any term).
func (l *Lease) Holder() (string, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current, l.seen.term
}

// Run steps every Takeover/6 until ctx is done, then lets go of the lease
// (the others take over as soon as they see it released).
func (l *Lease) Run(ctx context.Context) error {
	every := l.o.Takeover / 6
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := l.Step(ctx); err != nil && ctx.Err() == nil {
			l.o.Logger.Warn("judge lease: step failed", "err", err)
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
			l.Release(rctx)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// Step reads the lease once and renews it (held), or claims the next term
// (expired or never taken). Held changes only here and with time.
func (l *Lease) Step(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	start := l.o.Now()
	row, err := l.read(ctx)
	if err != nil {
		l.setHeld(false)
		return err
	}
	l.mu.Lock()
	if row != l.seen || l.seenAt.IsZero() {
		l.seen, l.seenAt = row, l.o.Now()
	}
	l.current, _, _ = strings.Cut(row.holder, "/")
	// Expired: never taken, released (holder ""), or unchanged for the
	// lease's duration.
	expired := row.term == 0 || row.holder == "" || l.o.Now().Sub(l.seenAt) >= l.o.Takeover*2/3
	l.mu.Unlock()

	switch {
	case row.term > 0 && row.holder == l.holder:
		if err := l.insert(ctx, row.term, row.beat+1); err != nil {
			l.setHeld(false)
			return fmt.Errorf("renew term %d: %w", row.term, err)
		}
		l.mu.Lock()
		l.validUntil, l.term = start.Add(l.o.Takeover/2), row.term
		l.seen, l.seenAt = leaseRow{term: row.term, beat: row.beat + 1, holder: l.holder}, l.o.Now()
		l.mu.Unlock()
		l.held.Set(1)
		return nil
	case !expired:
		l.setHeld(false)
		return nil
	}
	term := row.term + 1
	if err := l.insert(ctx, term, 0); err != nil {
		l.claims.WithLabelValues("error").Inc()
		return fmt.Errorf("claim term %d: %w", term, err)
	}
	won, err := l.readTerm(ctx, term)
	if err != nil {
		l.claims.WithLabelValues("error").Inc()
		return fmt.Errorf("read back term %d: %w", term, err)
	}
	l.mu.Lock()
	l.seen, l.seenAt = leaseRow{term: term, holder: won}, l.o.Now()
	l.current, _, _ = strings.Cut(won, "/")
	if won == l.holder {
		l.validUntil, l.term = start.Add(l.o.Takeover/2), term
	} else {
		l.validUntil = time.Time{}
	}
	l.mu.Unlock()
	if won != l.holder {
		l.claims.WithLabelValues("lost").Inc()
		l.held.Set(0)
		return nil
	}
	l.claims.WithLabelValues("won").Inc()
	l.held.Set(1)
	l.o.Logger.Info("judge lease: holding it", "term", term)
	return nil
}

// Release gives the lease up when held: a last heartbeat far ahead would
// mislead, so it claims the next term for nobody (holder ""), which the
// others see as a change and then as free at once.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	held, term := l.heldLocked(l.o.Now()), l.term
	l.validUntil = time.Time{}
	l.mu.Unlock()
	l.held.Set(0)
	if !held {
		return
	}
	if err := l.insertRow(ctx, term+1, 0, ""); err != nil {
		l.o.Logger.Warn("judge lease: release failed; the others take over when it expires", "err", err)
	}
}

func (l *Lease) setHeld(v bool) {
	if !v {
		l.mu.Lock()
		held := l.heldLocked(l.o.Now())
		l.mu.Unlock()
		if held {
			return // a failed step does not end a lease still valid
		}
	}
	l.held.Set(map[bool]float64{false: 0, true: 1}[v])
}

// read returns the newest row: the highest term's highest beat.
func (l *Lease) read(ctx context.Context) (leaseRow, error) {
	var r leaseRow
	err := l.s.conn.QueryRow(ctx, "SELECT term, beat, holder FROM "+l.s.q+".judge_lease ORDER BY term DESC, beat DESC LIMIT 1").
		Scan(&r.term, &r.beat, &r.holder)
	if errors.Is(err, sql.ErrNoRows) {
		return leaseRow{}, nil
	}
	if err != nil {
		return leaseRow{}, classify(fmt.Errorf("clickhouse: read judge_lease: %w", err))
	}
	return r, nil
}

// readTerm returns the holder of term: the one claim ClickHouse kept.
func (l *Lease) readTerm(ctx context.Context, term uint64) (string, error) {
	var h string
	err := l.s.conn.QueryRow(ctx, "SELECT holder FROM "+l.s.q+".judge_lease WHERE term = ? AND beat = 0 LIMIT 1", term).Scan(&h)
	if err != nil {
		return "", classify(fmt.Errorf("clickhouse: read judge_lease: %w", err))
	}
	return h, nil
}

// insert writes this collector's row (term, beat): beat 0 claims term.
func (l *Lease) insert(ctx context.Context, term, beat uint64) error {
	return l.insertRow(ctx, term, beat, l.holder)
}

// insertRow writes one row synchronously, with the deduplication token
// of its term and beat: a claim of a term that was claimed already is
// dropped by ClickHouse, and so is a retried heartbeat.
func (l *Lease) insertRow(ctx context.Context, term, beat uint64, holder string) error {
	ictx := ch.Context(ctx, ch.WithSettings(ch.Settings{
		"async_insert": 0, "insert_deduplicate": 1, "distributed_foreground_insert": 1,
		"insert_deduplication_token": fmt.Sprintf("judge/term/%d/beat/%d", term, beat),
	}))
	err := l.s.conn.Exec(ictx, "INSERT INTO "+l.s.q+".judge_lease (term, beat, holder) VALUES (?, ?, ?)", term, beat, holder)
	if err != nil {
		return classify(fmt.Errorf("clickhouse: insert into judge_lease: %w", err))
	}
	return nil
}
