package otlp

// The differential proof of the JSON decoder: the same bytes through
// semconv's Pipeline.DecodeTracesJSON (otlpwire.JSONReader, no pdata) and
// through the receiver's pdata path for OTLP/JSON (nesting check, pdata's
// JSON decoder, Pipeline.ConsumeTraces) must give identical graph spans,
// counters, errors and raw-span rows; or both must refuse the request.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/otlpwire"
)

// viaPdataJSON runs body through the receiver's pdata path for JSON.
func (r *diffRig) viaPdataJSON(t testing.TB, body []byte) pathResult {
	if checkJSONNesting(body) != nil {
		return pathResult{refused: true}
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalJSON(body); err != nil {
		return pathResult{refused: true}
	}
	r.pdataSink.spans, r.pdataObs.rows = nil, nil
	td := req.Traces()
	err := r.pdata.ConsumeTraces(context.Background(), td)
	return pathResult{count: td.SpanCount(), err: errText(err), spans: r.pdataSink.spans, rows: r.pdataObs.rows, counters: gatherText(t, r.pdataCounters)}
}

// viaWireJSON runs body through the JSON decoder, with the buffer
// scribbled over once the request is released. deepValues reports a
// refusal for attribute values nested without brackets.
func (r *diffRig) viaWireJSON(t testing.TB, body []byte) (res pathResult, deepValues bool) {
	buf := bytes.Clone(body)
	d, err := r.wire.DecodeTracesJSON(buf)
	if err != nil {
		if !errors.Is(err, otlpwire.ErrMalformed) && !errors.Is(err, otlpwire.ErrTooDeep) {
			t.Fatalf("refusal of another class: %v", err)
		}
		return pathResult{refused: true}, strings.Contains(err.Error(), "without brackets")
	}
	r.wireSink.spans, r.wireObs.rows = nil, nil
	count := d.SpanCount()
	cerr := d.Consume(context.Background())
	d.Release()
	for i := range buf {
		buf[i] = 0xa5
	}
	return pathResult{count: count, err: errText(cerr), spans: r.wireSink.spans, rows: r.wireObs.rows, counters: gatherText(t, r.wireCtrs)}, false
}

// checkSameJSON fails t unless both paths made the same of body. The one
// refusal the JSON decoder adds to pdata's: attribute values nested
// otlpwire.MaxNesting deep without brackets (json-iterator reads `,"k":`
// as the start of an object), which pdata would follow without bound;
// such a body is not given to pdata.
func (r *diffRig) checkSameJSON(t testing.TB, body []byte) pathResult {
	t.Helper()
	got, deepValues := r.viaWireJSON(t, body)
	if deepValues {
		return got
	}
	want := r.viaPdataJSON(t, body)
	compareResults(t, want, got, body)
	return got
}

// compareResults fails t unless want (pdata) and got (a wire decoder) are
// the same.
func compareResults(t testing.TB, want, got pathResult, body []byte) {
	t.Helper()
	if want.refused != got.refused {
		t.Fatalf("pdata refused: %v, wire refused: %v (body %q)", want.refused, got.refused, body)
	}
	if want.count != got.count {
		t.Fatalf("span count: pdata %d, wire %d", want.count, got.count)
	}
	if want.err != got.err {
		t.Fatalf("error: pdata %q, wire %q", want.err, got.err)
	}
	if len(want.spans) != len(got.spans) {
		t.Fatalf("spans: pdata %d, wire %d", len(want.spans), len(got.spans))
	}
	for i := range want.spans {
		if !reflect.DeepEqual(want.spans[i], got.spans[i]) {
			t.Fatalf("span %d:\npdata %+v\nwire  %+v", i, want.spans[i], got.spans[i])
		}
	}
	if !reflect.DeepEqual(want.rows, got.rows) {
		t.Fatalf("raw span rows:\npdata %q\nwire  %q", want.rows, got.rows)
	}
	if want.counters != got.counters {
		t.Fatalf("counters:\npdata %s\nwire  %s", want.counters, got.counters)
	}
}

// differentialJSONSeeds returns realistic OTLP/JSON requests: the
// protobuf seeds (test helpers, generated systems, golden cases) as
// pdata writes them in JSON, and every request of the graph's golden
// cases as it is written there.
func differentialJSONSeeds(t testing.TB, n int) [][]byte {
	var seeds [][]byte
	for _, b := range differentialSeeds(t, n) {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			t.Fatal(err)
		}
		j, err := req.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, j)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "graph", "testdata", "*-trace.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []json.RawMessage
		if err := json.Unmarshal(raw, &reqs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range reqs {
			seeds = append(seeds, []byte(r))
		}
	}
	return seeds
}

// TestDecodeJSONDifferentialSeeds runs the JSON differential check over
// the seeds.
func TestDecodeJSONDifferentialSeeds(t *testing.T) {
	seeds := differentialJSONSeeds(t, 40)
	if len(seeds) < 40 {
		t.Fatalf("only %d seeds: the golden cases were not found", len(seeds))
	}
	spans, rows := 0, 0
	rig := newDiffRig(t)
	for i, b := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := rig.checkSameJSON(t, b)
			if r.refused {
				t.Fatalf("seed refused")
			}
			spans += len(r.spans)
			rows += len(r.rows)
		})
	}
	if spans < 1000 || rows < 100 {
		t.Fatalf("the seeds gave %d spans and %d raw span rows", spans, rows)
	}
	t.Logf("%d requests, %d spans, %d raw span rows identical", len(seeds), spans, rows)
}

// jsonEdgeCases are requests at the corners of OTLP/JSON and of
// json-iterator's reading of it; refused says whether both paths must
// refuse them.
var jsonEdgeCases = []struct {
	name    string
	body    string
	refused bool
}{
	{"camel case", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","parentSpanId":"0807060504030201","name":"GET /pay","kind":3,"startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225600005000000","attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"server.address","value":{"stringValue":"payments"}},{"key":"http.response.status_code","value":{"intValue":"503"}}],"status":{"code":2,"message":"unavailable"}}]}]}]}`, false},
	{"snake case and enum names", `{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"checkout"}}]},"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","parent_span_id":"0807060504030201","name":"GET","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":1767225600000000000,"end_time_unix_nano":1767225600005000000,"attributes":[{"key":"rpc.system","value":{"string_value":"grpc"}},{"key":"rpc.grpc.status_code","value":{"int_value":14}},{"key":"server.address","value":{"string_value":"inventory"}}],"status":{"code":"STATUS_CODE_ERROR"}}]}]}]}`, false},
	{"unknown enum name", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":"SPAN_KIND_OTHER"}]}]}]}`, true},
	{"escaped keys and strings", `{"resource\u0053pans":[{"resource":{"attributes":[{"key":"service.n\u0061me","value":{"stringValue":"caf\u00e9 \ud83d\ude00 \n"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"a\"b\\c\/d","kind":2}]}]}]}`, false},
	{"lone surrogates", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"\ud800x\udc00\ud800\u0041"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"\ud800\n"}]}]}]}`, false},
	{"control character in a string", "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"a\x01b\"}]}]}]}", true},
	{"control character after an escape", "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\",\"name\":\"a\\nb\x01c\"}]}]}]}", false},
	{"resource after its spans", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","kind":2}]}],"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"late"}}]}}]}`, false},
	{"resource twice around spans", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f12","spanId":"0102030405060708","kind":2}]}],"resource":{"attributes":[{"key":"service.namespace","value":{"stringValue":"ns"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f14","spanId":"0102030405060709","kind":3}]}]},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f16","spanId":"010203040506070a"}]}]}]}`, false},
	{"deprecated scope spans are not read", `{"resourceSpans":[{"deprecatedScopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}`, false},
	{"null values", `{"resourceSpans":[{"resource":null,"scopeSpans":[{"scope":null,"spans":[null,{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":null,"attributes":null,"status":null,"links":null,"events":null}]}]}]}`, false},
	{"null id", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":null}]}]}]}`, true},
	{"empty id after a full one", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","traceId":"","spanId":"0102030405060708"}]}]}]}`, false},
	{"id of the wrong length", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102"}]}]}]}`, true},
	{"id not hex", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"010203040506070z"}]}]}]}`, true},
	{"upper-case hex id", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"0102030405060708"}]}]}]}`, false},
	{"values of every type", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"intValue":7}},{"key":"service.namespace","value":{"boolValue":true}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":3,"attributes":[{"key":"server.port","value":{"doubleValue":8080.5}},{"key":"server.address","value":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"bytesValue":"AQID"},{"doubleValue":"1e3"},{}]}}}]}}},{"key":"network.peer.address","value":{"stringValue":"10.0.0.1"}},{"key":"network.peer.port","value":{"intValue":"-5"}},{"key":"messaging.system","value":{"stringValueStrindex":3}},{"key":"x","value":{"stringValue":"a","intValue":1}}]}]}]}]}`, false},
	{"bad base64", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"bytesValue":"AQI"}}]}]}]}]}`, true},
	{"base64 with a newline escape", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"bytesValue":"AQ\nID"}}]}]}]}]}`, true},
	{"null bool", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"boolValue":null}}]}]}]}]}`, true},
	{"int out of range", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"intValue":9223372036854775808}}]}]}]}]}`, true},
	{"int as a float", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"intValue":1.5}}]}]}]}]}`, true},
	{"int string with spaces", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":" 1"}]}]}]}`, true},
	{"kind as a string number", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":"2"}]}]}]}`, true},
	{"kind out of range", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":-9}]}]}]}`, false},
	{"doubles", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":3,"attributes":[{"key":"server.port","value":{"doubleValue":0.30000001}},{"key":"a","value":{"doubleValue":-1.5e3}},{"key":"b","value":{"doubleValue":"NaN"}},{"key":"c","value":{"doubleValue":1e400}}]}]}]}]}`, true},
	{"unknown fields of every kind", `{"x":[1,-2.5e3,0,0.5,"s\"",true,false,null,{"a":{}}],"resourceSpans":[{"y":{"z":[[]]},"scopeSpans":[{"q":-0,"spans":[{"unknown":"v","traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}`, false},
	{"skipped number with a leading zero", `{"x":012,"resourceSpans":[]}`, true},
	{"skipped float32 overflow", `{"x":0.1e50,"resourceSpans":[]}`, true},
	{"skipped big number", `{"x":-00e5,"resourceSpans":[]}`, false},
	{"object ended by a brace it did not open", `{"resourceSpans":[}]}`, false},
	{"array started by a comma", `{"resourceSpans":[{"scopeSpans":,{"spans":,{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}`, false},
	{"field named empty ends the object", `{"":1,"resourceSpans":[]}`, false},
	{"trailing garbage", `{"resourceSpans":[]} garbage`, false},
	{"empty body", ``, true},
	{"truncated", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"01020304`, true},
	{"links", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":5,"links":[{"traceId":"0102030405060708090a0b0c0d0e0f20","spanId":"0102030405060709","attributes":[{"key":"a","value":{}}],"flags":1},{"spanId":"0102030405060709"}]}]}]}]}`, false},
	{"exception events", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":3,"status":{"code":2},"events":[{"name":"log"},{"name":"exception","name":"exc\u0065ption","attributes":[{"key":"exception.type","value":{"intValue":1}},{"key":"exception.type","value":{"stringValue":"x"}},{"key":"exception.message","value":{"stringValue":"circuit breaker is open"}}]}]}]}]}]}`, false},
}

// nestedJSON is a request with a span attribute of n arrays nested in
// one another: 3n+10 levels of brackets (the receiver takes 64).
func nestedJSON(n int) []byte {
	v := `{"stringValue":"x"}`
	for range n {
		v = `{"arrayValue":{"values":[` + v + `]}}`
	}
	return []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","attributes":[{"key":"a","value":` + v + `}]}]}]}]}`)
}

// TestDecodeJSONDifferentialNesting runs the JSON differential check on
// both sides of the receiver's nesting bound, and past it without
// brackets.
func TestDecodeJSONDifferentialNesting(t *testing.T) {
	rig := newDiffRig(t)
	for _, c := range []struct {
		n       int
		refused bool
	}{{17, false}, {18, false}, {19, true}, {20, true}} {
		t.Run(fmt.Sprint(c.n), func(t *testing.T) {
			body := nestedJSON(c.n)
			if got := rig.checkSameJSON(t, body); got.refused != c.refused {
				t.Fatalf("refused: %v, want %v", got.refused, c.refused)
			}
		})
	}
	// json-iterator reads `,"arrayValue":` where an object is due as a
	// field of it, and `,` as the start of an array: values nested
	// without brackets, which the decoder
	// refuses at the bound, pdata's without one.
	v := strings.Repeat(`,"arrayValue":,"values":,`, 70) + `,"stringValue":"x"}` + strings.Repeat(`]}}`, 70)
	body := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":` + v + `]}]}]}]}`)
	if checkJSONNesting(body) != nil {
		t.Fatal("the body is nested with brackets")
	}
	var p semconvPipeline = rig.wire
	if _, err := p.DecodeTracesJSON(body); err == nil || !strings.Contains(err.Error(), "without brackets") {
		t.Fatalf("err = %v, want a refusal for values nested without brackets", err)
	}
}

// semconvPipeline is what the nesting test calls of a Pipeline.
type semconvPipeline interface {
	DecodeTracesJSON([]byte) (ingest.DecodedTraces, error)
}

// TestDecodeJSONDifferentialEdgeCases runs the JSON differential check
// over the corners of OTLP/JSON.
func TestDecodeJSONDifferentialEdgeCases(t *testing.T) {
	rig := newDiffRig(t)
	for _, c := range jsonEdgeCases {
		t.Run(c.name, func(t *testing.T) {
			got := rig.checkSameJSON(t, []byte(c.body))
			if got.refused != c.refused {
				t.Fatalf("refused: %v, want %v", got.refused, c.refused)
			}
		})
	}
}

// FuzzDecodeJSONDifferential feeds the same OTLP/JSON bytes to both
// paths: identical spans, counters, errors and raw span rows, or
// identical refusal.
func FuzzDecodeJSONDifferential(f *testing.F) {
	for _, b := range differentialJSONSeeds(f, 2) {
		f.Add(b)
	}
	for _, c := range jsonEdgeCases {
		f.Add([]byte(c.body))
	}
	for _, n := range []int{17, 18, 19} {
		f.Add(nestedJSON(n))
	}
	rig := newDiffRig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rig.checkSameJSON(t, body)
	})
}
