package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// MembersOptions configure Members.
type MembersOptions struct {
	// Every is how often this instance beats and reads the others
	// (required). An instance whose beat has not changed for four of them,
	// on this clock, is gone.
	Every time.Duration
	// Follow is how long a load balancer may take to follow a change of
	// the collectors (its resolver's interval, DNS caches, its retries):
	// a change seen at t moves traces begun until t+Follow (default 10s).
	Follow time.Duration
	// Changed is called, from Run's goroutine, with the window [lo, hi] in
	// which traffic moved between collectors: once when this instance
	// starts ([start, start+Follow]), and for each other instance that
	// stops (from its last beat seen) or starts (from when it was first
	// seen). Required.
	Changed func(lo, hi time.Time)
	// Now is the clock (default time.Now); only its rate matters.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Members keeps this collector instance's heartbeat in ClickHouse (table
// collectors) and watches the others': the collectors sharing the traffic
// behind a load balancer. It tells Changed when one stops, starts or comes
// back, since the balancer then moves traces begun on one collector to
// another and their halves meet no more (graph.Graph.Rerouted). Run is
// called once; Alive is safe for concurrent use.
type Members struct {
	o        MembersOptions
	s        *Store
	instance string
	alive    prometheus.Gauge
	changes  *prometheus.CounterVec

	mu     sync.Mutex
	beat   uint64
	others map[string]*member // by collector/instance
}

type member struct {
	beat   uint64
	seenAt time.Time // when beat last changed, on this clock
	gone   bool
}

// NewMembers returns the membership of this instance of collector
// s.o.Collector.
func (s *Store) NewMembers(o MembersOptions) (*Members, error) {
	if o.Every <= 0 || o.Changed == nil {
		return nil, errors.New("clickhouse: members: Every and Changed are required")
	}
	if o.Follow <= 0 {
		o.Follow = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	m := &Members{o: o, s: s, instance: hex.EncodeToString(nonce[:]), others: map[string]*member{},
		alive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_collectors_alive",
			Help: "Collector instances writing to the same ClickHouse database whose heartbeat is current, this one included.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_collectors_changes_total",
			Help: "Changes of the collectors writing to the same ClickHouse database seen by this one, by kind (started, stopped).",
		}, []string{"kind"}),
	}
	for _, k := range []string{"started", "stopped"} {
		m.changes.WithLabelValues(k)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.alive, m.changes} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("clickhouse: register members metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run beats and watches every Every until ctx is done.
func (m *Members) Run(ctx context.Context) error {
	start := m.o.Now()
	m.o.Changed(start, start.Add(m.o.Follow))
	t := time.NewTicker(m.o.Every)
	defer t.Stop()
	for {
		if err := m.Step(ctx); err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("collectors heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step beats once and reads the others' beats.
func (m *Members) Step(ctx context.Context) error {
	// A slow server is waited for (up to 5 s) rather than hung up on: a
	// late beat only looks like a missed one to the others.
	ctx, cancel := context.WithTimeout(ctx, max(m.o.Every, 5*time.Second))
	defer cancel()
	m.mu.Lock()
	m.beat++
	beat := m.beat
	m.mu.Unlock()
	ictx := ch.Context(ctx, ch.WithSettings(ch.Settings{"async_insert": 0, "distributed_foreground_insert": 1}))
	if err := m.s.conn.Exec(ictx, "INSERT INTO "+m.s.q+".collectors (collector, instance, beat) VALUES (?, ?, ?)",
		m.s.o.Collector, m.instance, beat); err != nil {
		return classify(fmt.Errorf("clickhouse: insert into collectors: %w", err))
	}
	rows, err := m.s.conn.Query(ctx, "SELECT collector, instance, max(beat) FROM "+m.s.q+".collectors WHERE written >= now64(3) - INTERVAL 1 HOUR GROUP BY collector, instance")
	if err != nil {
		return classify(fmt.Errorf("clickhouse: read collectors: %w", err))
	}
	defer rows.Close()
	seen := map[string]uint64{}
	for rows.Next() {
		var c, inst string
		var b uint64
		if err := rows.Scan(&c, &inst, &b); err != nil {
			return fmt.Errorf("clickhouse: read collectors: %w", err)
		}
		if inst != m.instance {
			seen[c+"/"+inst] = b
		}
	}
	if err := rows.Err(); err != nil {
		return classify(fmt.Errorf("clickhouse: read collectors: %w", err))
	}
	for _, c := range m.observe(seen, m.o.Now()) {
		m.o.Changed(c[0], c[1])
	}
	return nil
}

// observe takes the others' beats read at now and returns the changes.
func (m *Members) observe(seen map[string]uint64, now time.Time) [][2]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := len(m.others) == 0 && m.beat == 1
	var changes [][2]time.Time
	for id, b := range seen {
		x := m.others[id]
		switch {
		case x == nil:
			m.others[id] = &member{beat: b, seenAt: now}
			if !first {
				// It started: traffic moves to it once the balancer follows.
				changes = append(changes, [2]time.Time{now.Add(-m.o.Every), now.Add(m.o.Follow)})
				m.changes.WithLabelValues("started").Inc()
				m.o.Logger.Info("a collector started", "collector", id)
			}
		case x.beat != b:
			if x.gone {
				changes = append(changes, [2]time.Time{now.Add(-m.o.Every), now.Add(m.o.Follow)})
				m.changes.WithLabelValues("started").Inc()
				m.o.Logger.Info("a collector is back", "collector", id)
			}
			x.beat, x.seenAt, x.gone = b, now, false
		}
	}
	alive := 1
	for id, x := range m.others {
		if !x.gone && now.Sub(x.seenAt) >= 4*m.o.Every {
			// It stopped after its last beat seen, before the next was due.
			x.gone = true
			changes = append(changes, [2]time.Time{x.seenAt.Add(-m.o.Every), x.seenAt.Add(m.o.Every + m.o.Follow)})
			m.changes.WithLabelValues("stopped").Inc()
			m.o.Logger.Info("a collector stopped", "collector", id)
		}
		if _, ok := seen[id]; !ok && x.gone {
			delete(m.others, id) // gone for an hour
		}
		if !x.gone {
			alive++
		}
	}
	m.alive.Set(float64(alive))
	return changes
}
