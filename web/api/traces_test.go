package api

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// traceMap is an in-memory TraceSource.
type traceMap struct {
	traces map[graph.TraceID][]TraceSpan
	err    error
}

func (m traceMap) Trace(_ context.Context, id graph.TraceID) ([]TraceSpan, error) {
	return m.traces[id], m.err
}

func TestTraceEndpoint(t *testing.T) {
	g, err := graph.New(graph.Options{})
	require.NoError(t, err)
	id := graph.TraceID{0xab, 15: 1}
	start := time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)
	src := traceMap{traces: map[graph.TraceID][]TraceSpan{id: {
		{SpanID: "cd00000000000001", Service: "front", Name: "GET /", Kind: "server", StatusCode: "ok", Start: start, DurationMS: 1.5,
			Attributes: map[string]string{"http.request.method": "GET"}},
		{SpanID: "cd00000000000002", ParentSpanID: "cd00000000000001", Service: "back", Name: "q", Kind: "client", StatusCode: "error",
			Start: start.Add(time.Millisecond), Links: []TraceLink{{TraceID: "01000000000000000000000000000000", SpanID: "0100000000000000"}}},
	}}}
	for _, c := range []struct {
		name   string
		traces TraceSource
		path   string
		code   int
	}{
		{"off", nil, "/api/v1/traces/ab000000000000000000000000000001", http.StatusNotImplemented},
		{"found", src, "/api/v1/traces/ab000000000000000000000000000001", http.StatusOK},
		{"upper-case hex", src, "/api/v1/traces/AB000000000000000000000000000001", http.StatusOK},
		{"unknown", src, "/api/v1/traces/ab000000000000000000000000000002", http.StatusNotFound},
		{"short id", src, "/api/v1/traces/ab00", http.StatusBadRequest},
		{"not hex", src, "/api/v1/traces/zz000000000000000000000000000001", http.StatusBadRequest},
		{"zero id", src, "/api/v1/traces/00000000000000000000000000000000", http.StatusBadRequest},
		{"storage down", traceMap{err: errors.New("down")}, "/api/v1/traces/ab000000000000000000000000000001", http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(Options{Graph: g, Traces: c.traces})
			require.NoError(t, err)
			code, body := get(t, a, c.path)
			require.Equal(t, c.code, code, body)
			if code != http.StatusOK {
				require.NotEmpty(t, body["error"])
				return
			}
			require.Equal(t, "ab000000000000000000000000000001", body["trace_id"])
			spans := body["spans"].([]any)
			require.Len(t, spans, 2)
			first := spans[0].(map[string]any)
			require.Equal(t, "2026-01-01T00:00:00.000000005Z", first["start"])
			require.Equal(t, 1.5, first["duration_ms"])
			require.Equal(t, map[string]any{"http.request.method": "GET"}, first["attributes"])
			require.NotContains(t, first, "parent_span_id", "a root span has no parent")
			second := spans[1].(map[string]any)
			require.Equal(t, "cd00000000000001", second["parent_span_id"])
			require.Equal(t, []any{map[string]any{"trace_id": "01000000000000000000000000000000", "span_id": "0100000000000000"}}, second["links"])
		})
	}
}
