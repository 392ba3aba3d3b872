package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TraceSource returns the stored spans of one trace, by start time; none
// (and no error) when the trace is unknown.
type TraceSource interface {
	Trace(ctx context.Context, id graph.TraceID) ([]TraceSpan, error)
}

// TraceSpan is one span in GET /api/v1/traces/{trace_id}. Ids are hex;
// Kind is unspecified, internal, server, client, producer or consumer;
// StatusCode is unset, ok or error.
type TraceSpan struct {
	SpanID        string            `json:"span_id"`
	ParentSpanID  string            `json:"parent_span_id,omitempty"`
	Service       string            `json:"service"`
	Namespace     string            `json:"namespace,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	StatusCode    string            `json:"status_code"`
	StatusMessage string            `json:"status_message,omitempty"`
	Start         time.Time         `json:"start"`
	DurationMS    float64           `json:"duration_ms"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Links         []TraceLink       `json:"links,omitempty"`
}

// TraceLink is a span link of a TraceSpan.
type TraceLink struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// traceResponse is the body of GET /api/v1/traces/{trace_id}.
type traceResponse struct {
	TraceID string      `json:"trace_id"`
	Spans   []TraceSpan `json:"spans"`
}

// trace serves GET /api/v1/traces/{trace_id}: the stored spans of one
// sampled trace. 400 for an id that is not 32 hex digits, 404 when no span
// of it is stored, 501 when raw spans are not kept (Options.Traces nil),
// 503 when storage cannot answer.
func (a *API) trace(w http.ResponseWriter, r *http.Request) {
	if a.o.Traces == nil {
		writeError(w, http.StatusNotImplemented, errors.New("raw spans are not kept: start the collector with --storage clickhouse --raw-spans-sample-one-in N"))
		return
	}
	v := r.PathValue("trace_id")
	var id graph.TraceID
	if n, err := hex.Decode(id[:], []byte(v)); err != nil || n != len(id) || len(v) != 2*len(id) || id == (graph.TraceID{}) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("trace id %q: want 32 hex digits, not all zero", v))
		return
	}
	spans, err := a.o.Traces.Trace(r.Context(), id)
	if err != nil {
		a.o.Logger.Error("trace", "trace_id", v, "err", err)
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("reading trace: %w", err))
		return
	}
	if len(spans) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("trace %s: no stored span (not sampled, expired, or never seen)", hex.EncodeToString(id[:])))
		return
	}
	writeJSON(w, http.StatusOK, traceResponse{TraceID: hex.EncodeToString(id[:]), Spans: spans})
}
