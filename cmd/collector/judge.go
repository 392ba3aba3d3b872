package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
)

// lease says whether this collector may judge now: the judge's lease in
// shared storage (storage/clickhouse.Lease).
type lease interface {
	Held() bool
	Run(ctx context.Context) error
}

// seat decides whether this collector judges and serves the findings that
// go with that: its engine's while it judges, the shared storage's while
// another collector does. --detect local: it always judges. --detect
// merged on ClickHouse: while it holds the judge's lease, and on taking
// the lease over it first loads the findings from storage into its engine
// (their lifecycle goes on where the last judge left it: a firing finding
// keeps its id and fires no second time). --detect off: never.
//
// Eval is called by the runner's goroutine only; the other methods are
// safe for concurrent use.
type seat struct {
	engine *detect.Engine
	lease  lease // nil: judges unless never is set
	never  bool  // --detect off
	st     storage.Storage
	logger *slog.Logger

	judging atomic.Bool // it judged at the last tick and still may

	mu     sync.Mutex
	stored []finding.Finding // the last stored findings read (served again when a read fails)
}

// newJudgeLease returns the judge's lease for --detect merged on
// ClickHouse, nil otherwise (a collector on its own store is its only
// judge).
func newJudgeLease(cfg config, st storage.Storage, logger *slog.Logger, reg prometheus.Registerer) (lease, error) {
	chs, ok := st.(*clickhouse.Store)
	if cfg.Detect != detectMerged || !ok {
		return nil, nil
	}
	l, err := chs.NewLease(clickhouse.LeaseOptions{Takeover: judgeTakeover(cfg), Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// leaseEvery is how often the judge's lease and the collectors' heartbeats
// are written and read: a sixth of the takeover bound.
func leaseEvery(cfg config) time.Duration {
	return judgeTakeover(cfg) / 6
}

// judgeTakeover is --judge-takeover, or its default.
func judgeTakeover(cfg config) time.Duration {
	if cfg.JudgeTakeover > 0 {
		return cfg.JudgeTakeover
	}
	return max(3*cfg.EvalInterval, 600*time.Millisecond)
}

// newMembers returns the collectors' heartbeats on ClickHouse, which tell
// g when traffic moved between collectors (nil on embedded storage).
func newMembers(cfg config, st storage.Storage, g *graph.Graph, logger *slog.Logger, reg prometheus.Registerer) (*clickhouse.Members, error) {
	chs, ok := st.(*clickhouse.Store)
	if !ok {
		return nil, nil
	}
	return chs.NewMembers(clickhouse.MembersOptions{Every: leaseEvery(cfg), Changed: g.Rerouted, Logger: logger, Registerer: reg})
}

// newSeat returns the seat for mode; l is the lease (nil unless --detect
// merged on ClickHouse).
func newSeat(mode detectMode, engine *detect.Engine, l lease, st storage.Storage, logger *slog.Logger, reg prometheus.Registerer) (*seat, error) {
	s := &seat{engine: engine, lease: l, never: mode == detectOff, st: st, logger: logger}
	s.judging.Store(mode != detectOff && l == nil) // restored at start: nothing to load
	if reg != nil {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartograph_judge",
			Help: "1 while this collector judges (its detectors' findings are the ones served and stored), 0 while another does (--detect merged) or none here (--detect off).",
		}, func() float64 {
			if s.judges() {
				return 1
			}
			return 0
		})); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mayJudge reports whether this collector may judge now (it holds the
// lease, or needs none): its next tick judges the merged graph.
func (s *seat) mayJudge() bool {
	return !s.never && (s.lease == nil || s.lease.Held())
}

// judges reports whether this collector's findings are the findings now.
func (s *seat) judges() bool {
	return s.judging.Load() && (s.lease == nil || s.lease.Held())
}

// Eval judges snap when this collector may (runner.Judge).
func (s *seat) Eval(ctx context.Context, snap *graph.Snapshot) {
	if s.never {
		return
	}
	if s.lease != nil && !s.lease.Held() {
		if s.judging.Swap(false) {
			s.logger.Warn("judge lease lost: another collector judges")
		}
		return
	}
	if !s.judging.Load() {
		// Taking over: go on from what the last judge stored.
		fs, err := s.readStored(ctx)
		if err != nil {
			s.logger.Warn("judge lease held, but the findings in storage cannot be read; not judging until they can", "err", err)
			return
		}
		s.engine.Load(fs)
		s.judging.Store(true)
		s.logger.Info("judging: took over the findings in storage", "findings", len(fs))
	}
	s.engine.Eval(ctx, snap)
}

// Findings are the findings this collector serves (runner.Findings, the
// Alertmanager pusher): its engine's while it judges, else the stored
// ones, or the last read of them while storage cannot be read.
func (s *seat) Findings(state finding.State) []finding.Finding {
	if s.judges() {
		return s.engine.Findings(state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := s.readStored(ctx)
	if err != nil {
		s.logger.Warn("reading findings from storage; serving the last read", "err", err)
		s.mu.Lock()
		all = s.stored
		s.mu.Unlock()
	}
	out := make([]finding.Finding, 0, len(all))
	for _, f := range all {
		if state == 0 || f.State == state {
			out = append(out, f)
		}
	}
	return out
}

// readStored reads the findings active in the last hour from storage.
func (s *seat) readStored(ctx context.Context) ([]finding.Finding, error) {
	now := time.Now()
	fs, err := s.st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.stored = fs
	s.mu.Unlock()
	return fs, nil
}

// persisted are the findings this collector writes to storage: its
// engine's while it judges, none otherwise (the judge writes them).
func (s *seat) persisted(state finding.State) []finding.Finding {
	if s.judges() {
		return s.engine.Findings(state)
	}
	return nil
}
