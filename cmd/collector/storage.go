package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
	"github.com/seed-a49a8342/cartograph/web/api"
)

// openStorage opens the backend --storage names.
func openStorage(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (storage.Storage, error) {
	switch cfg.Storage {
	case "embedded":
		st, err := embedded.Open(embedded.Options{Dir: cfg.DataDir, Retention: cfg.Retention, MaxBytes: cfg.MaxStorageBytes, Logger: logger, Registerer: reg})
		if err == nil {
			logger.Info("embedded storage", "path", st.Path())
		}
		if err != nil {
			return nil, fmt.Errorf("embedded storage in %s: %w", cfg.DataDir, err)
		}
		return st, nil
	case "clickhouse":
		st, err := clickhouse.Open(ctx, clickhouseOptions(cfg, logger, reg))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("unknown storage %q", cfg.Storage)
}

// restore loads what storage kept of the recent past back into the live
// components after a start: the last window of edge buckets, the findings
// still active or recently resolved, and the lag samples the lag store
// retains.
func restore(ctx context.Context, st storage.Storage, g *graph.Graph, engine *detect.Engine, lags *lag.Store, persist *storage.Persister, cfg config, logger *slog.Logger) error {
	now := time.Now()
	from := now.Add(-cfg.Window - cfg.PairTTL)
	var (
		buckets []graph.EdgeBucket
		err     error
	)
	// Restore wants the stored buckets as written; a backend that merges
	// them on read (ClickHouse; the embedded store, for ranges its minute
	// rollup serves) offers them raw too.
	if raw, ok := st.(rawBuckets); ok {
		buckets, err = raw.Buckets(ctx, from, now)
	} else {
		buckets, err = st.Edges(ctx, from, now)
	}
	if err != nil {
		return fmt.Errorf("restore edges: %w", err)
	}
	if cfg.Storage == "clickhouse" {
		// Several collectors share ClickHouse: this one restores only its
		// own share, so its live window matches what it alone received.
		id := clickhouseOptions(cfg, logger, nil).Collector
		buckets = slices.DeleteFunc(buckets, func(b graph.EdgeBucket) bool { return b.Collector != id })
	}
	n := g.Restore(buckets)
	var newest time.Time
	for _, b := range buckets {
		if b.Start.After(newest) {
			newest = b.Start
		}
	}
	persist.SkipEdgesThrough(newest)
	findings, err := st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return fmt.Errorf("restore findings: %w", err)
	}
	engine.Restore(findings)
	samples, err := st.Lag(ctx, now.Add(-max(15*time.Minute, 2*cfg.LagStaleAfter)), now)
	if err != nil {
		return fmt.Errorf("restore lag: %w", err)
	}
	rej := lags.Add(samples)
	logger.Info("restored from storage", "edge_buckets", n, "findings", len(findings), "lag_samples", len(samples)-rej)
	return nil
}

// clickhouseOptions are the ClickHouse backend's options from the flags.
func clickhouseOptions(cfg config, logger *slog.Logger, reg prometheus.Registerer) clickhouse.Options {
	id := cfg.CollectorID
	if id == "" {
		id, _ = os.Hostname()
	}
	return clickhouse.Options{DSN: cfg.ClickHouseDSN, Collector: id, Retention: cfg.Retention, RawSpansTTL: cfg.RawSpansTTL, Logger: logger, Registerer: reg}
}

// rawBuckets is a backend that can return its edge buckets as written.
type rawBuckets interface {
	Buckets(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error)
}

// rawSpanObserver is what keeps the raw spans of sampled traces
// (--raw-spans-sample-one-in), or nil when that is off.
func rawSpanObserver(cfg config, persist *storage.Persister, reg prometheus.Registerer) (semconv.TracesObserver, error) {
	if cfg.RawSpansOneIn == 0 {
		return nil, nil
	}
	s, err := storage.NewSpanSampler(storage.SpanSamplerOptions{SampleOneIn: cfg.RawSpansOneIn, Sink: persist, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// tracesFor serves GET /api/v1/traces/{id} from storage when raw spans
// are kept, or returns nil (the API answers 501).
func tracesFor(cfg config, st storage.Storage) api.TraceSource {
	r, ok := st.(storage.TraceReader)
	if cfg.RawSpansOneIn == 0 || !ok {
		return nil
	}
	return storedTraces{r: r}
}

// storedTraces adapts a storage.TraceReader to api.TraceSource.
type storedTraces struct{ r storage.TraceReader }

func (s storedTraces) Trace(ctx context.Context, id graph.TraceID) ([]api.TraceSpan, error) {
	spans, err := s.r.Trace(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]api.TraceSpan, len(spans))
	for i, sp := range spans {
		out[i] = api.TraceSpan{
			SpanID: hex.EncodeToString(sp.ID[:]), Service: sp.Service, Namespace: sp.Namespace, Name: sp.Name,
			Kind: storage.SpanKindName(sp.Kind), StatusCode: sp.Status.String(), StatusMessage: sp.StatusMessage,
			Start: sp.Start, DurationMS: float64(sp.Duration) / float64(time.Millisecond), Attributes: sp.Attributes,
		}
		if !sp.Parent.IsZero() {
			out[i].ParentSpanID = hex.EncodeToString(sp.Parent[:])
		}
		for _, l := range sp.Links {
			out[i].Links = append(out[i].Links, api.TraceLink{TraceID: hex.EncodeToString(l.Trace[:]), SpanID: hex.EncodeToString(l.Span[:])})
		}
	}
	return out, nil
}
