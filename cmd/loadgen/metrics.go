package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// metricsSender sends one metrics export request.
type metricsSender interface {
	send(ctx context.Context, req pmetricotlp.ExportRequest) error
}

type grpcMetrics struct{ c pmetricotlp.GRPCClient }

func (s grpcMetrics) send(ctx context.Context, req pmetricotlp.ExportRequest) error {
	resp, err := s.c.Export(ctx, req)
	if err != nil {
		return err
	}
	if n := resp.PartialSuccess().RejectedDataPoints(); n > 0 {
		return fmt.Errorf("%d data points rejected: %s", n, resp.PartialSuccess().ErrorMessage())
	}
	return nil
}

type httpMetrics struct {
	client *http.Client
	url    string
}

func (s httpMetrics) send(ctx context.Context, req pmetricotlp.ExportRequest) error {
	body, err := req.MarshalProto()
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/x-protobuf")
	res, err := s.client.Do(r)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s: %.200s", res.Status, b)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := resp.UnmarshalProto(b); err != nil {
		return fmt.Errorf("decoding the response: %w", err)
	}
	if n := resp.PartialSuccess().RejectedDataPoints(); n > 0 {
		return fmt.Errorf("%d data points rejected: %s", n, resp.PartialSuccess().ErrorMessage())
	}
	return nil
}

// sendMetrics sends gen's broker readings every cfg.MetricsInterval until
// done is closed or ctx ends, once at the start. Failures are counted in st
// and not retried: the next reading supersedes a lost one.
func sendMetrics(ctx context.Context, s metricsSender, gen *scenario.Generator, cfg config, st *counters, done <-chan struct{}) {
	t := time.NewTicker(cfg.MetricsInterval)
	defer t.Stop()
	for {
		st.metricReqs.Add(1)
		actx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		err := s.send(actx, pmetricotlp.NewExportRequestFromMetrics(gen.Metrics(time.Now())))
		cancel()
		if err != nil {
			st.metricFailed.Add(1)
			st.noteErr(fmt.Errorf("metrics: %w", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
		}
	}
}
