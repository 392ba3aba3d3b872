package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
	"github.com/seed-a49a8342/cartograph/web/api"
)

// openStorage opens the backend --storage names.
func openStorage(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (storage.Storage, error) {
	switch cfg.Storage {
	case storageEmbedded:
		st, err := embedded.Open(embedded.Options{Dir: cfg.DataDir, Retention: cfg.Retention, MaxBytes: cfg.MaxStorageBytes, Logger: logger, Registerer: reg})
		if err == nil {
			logger.Info("embedded storage", "path", st.Path())
		}
		if err != nil {
			return nil, fmt.Errorf("embedded storage in %s: %w", cfg.DataDir, err)
		}
		return st, nil
	case storageClickHouse:
		st, err := clickhouse.Open(ctx, clickhouseOptions(cfg, logger, reg))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("unknown storage %q", cfg.Storage)
}

// clickhouseOptions are the ClickHouse backend's options from the flags.
func clickhouseOptions(cfg config, logger *slog.Logger, reg prometheus.Registerer) clickhouse.Options {
	id := cfg.CollectorID
	if id == "" {
		id, _ = os.Hostname()
	}
	return clickhouse.Options{DSN: cfg.ClickHouseDSN, Collector: id, Retention: cfg.Retention, RawSpansTTL: cfg.RawSpansTTL, Logger: logger, Registerer: reg}
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
