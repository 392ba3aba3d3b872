package otlp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// discard consumes and forgets everything.
type discard struct{}

func (discard) ConsumeTraces(context.Context, ptrace.Traces) error    { return nil }
func (discard) ConsumeMetrics(context.Context, pmetric.Metrics) error { return nil }

// FuzzHTTPDecode feeds arbitrary bodies to the OTLP/HTTP handler: it must
// never panic and must answer 200, 400 or 413.
func FuzzHTTPDecode(f *testing.F) {
	for _, signal := range []string{signalTraces, signalMetrics} {
		metrics := signal == signalMetrics
		f.Add(encodeRequest(f, signal, contentTypeProto, 2), metrics, false, false)
		f.Add(encodeRequest(f, signal, contentTypeJSON, 2), metrics, true, false)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), false, true, false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 0, 0}, false, false, true)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, true, false, false)

	r, err := New(Options{HTTPAddr: "127.0.0.1:0", Traces: discard{}, Metrics: discard{}, MaxRequestBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	h := r.httpHandler()
	f.Fuzz(func(t *testing.T, body []byte, metrics, asJSON, gzipped bool) {
		path, ct := pathTraces, contentTypeProto
		if metrics {
			path = pathMetrics
		}
		if asJSON {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
