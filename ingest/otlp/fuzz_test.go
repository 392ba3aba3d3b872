package otlp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
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

// FuzzNestingCheck checks the nesting check against pdata's decoder: a body
// the check lets through and pdata decodes holds no message as deep as
// maxNesting, read as traces and as metrics.
func FuzzNestingCheck(f *testing.F) {
	kv := func(nest int) []byte { return pbBytes(pbString(nil, 1, "a"), 2, nestedArray(nest)) }
	f.Add(encodeRequest(f, signalTraces, contentTypeProto, 2))
	f.Add(encodeRequest(f, signalMetrics, contentTypeProto, 2))
	f.Add(request(service("s"), rawSpan{name: "n", attrs: [][]byte{kv(29)}}.encode(nil)))
	f.Add(request(service("s"), rawSpan{name: "n", attrs: [][]byte{kv(30)}}.encode(nil)))
	f.Add(request([][]byte{kv(30)}, nil))
	f.Add(eventAttr(kv(29)))
	f.Add(exemplarAttr(kv(27)))
	f.Add(exemplarAttr(kv(28)))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !protoTooDeep(body, msgTraceRequest) {
			req := ptraceotlp.NewExportRequest()
			if req.UnmarshalProto(body) == nil {
				if d := tracesDepth(req.Traces()); d >= maxNesting {
					t.Fatalf("traces let through, decoded %d levels deep", d)
				}
			}
		}
		if !protoTooDeep(body, msgMetricsRequest) {
			req := pmetricotlp.NewExportRequest()
			if req.UnmarshalProto(body) == nil {
				if d := metricsDepth(req.Metrics()); d >= maxNesting {
					t.Fatalf("metrics let through, decoded %d levels deep", d)
				}
			}
		}
	})
}

// metricsDepth is the depth of the innermost message of md as decoded, the
// request at 0.
func metricsDepth(md pmetric.Metrics) int {
	deepest := 1
	for _, rm := range md.ResourceMetrics().All() {
		deepest = max(deepest, 2, mapDepth(rm.Resource().Attributes(), 3))
		for _, sm := range rm.ScopeMetrics().All() {
			deepest = max(deepest, 2, mapDepth(sm.Scope().Attributes(), 4))
			for _, m := range sm.Metrics().All() {
				deepest = max(deepest, 3, mapDepth(m.Metadata(), 4))
				// The data points of every type are at 5, their attributes
				// at 6, their exemplars at 6 and those attributes at 7.
				point := func(attrs pcommon.Map, ex pmetric.ExemplarSlice) {
					deepest = max(deepest, 5, mapDepth(attrs, 6))
					for _, e := range ex.All() {
						deepest = max(deepest, 6, mapDepth(e.FilteredAttributes(), 7))
					}
				}
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for _, p := range m.Gauge().DataPoints().All() {
						point(p.Attributes(), p.Exemplars())
					}
				case pmetric.MetricTypeSum:
					for _, p := range m.Sum().DataPoints().All() {
						point(p.Attributes(), p.Exemplars())
					}
				case pmetric.MetricTypeHistogram:
					for _, p := range m.Histogram().DataPoints().All() {
						point(p.Attributes(), p.Exemplars())
					}
				case pmetric.MetricTypeExponentialHistogram:
					for _, p := range m.ExponentialHistogram().DataPoints().All() {
						point(p.Attributes(), p.Exemplars())
					}
				case pmetric.MetricTypeSummary:
					for _, p := range m.Summary().DataPoints().All() {
						point(p.Attributes(), pmetric.NewExemplarSlice())
					}
				}
			}
		}
	}
	return deepest
}
