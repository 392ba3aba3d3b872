package otlp

// The differential proof of the wire decoder: the same bytes through
// semconv's Pipeline.DecodeTracesProto (otlpwire, no pdata) and through
// the receiver's pdata path (nesting check, pdata's decoder,
// Pipeline.ConsumeTraces) must give identical graph spans, identical
// counters, identical errors, and the raw-span sample identical rows; or
// both must refuse the request.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/scenario"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/ingest/synth"
)

// spanCopier is a semconv.SpanSink keeping owned copies of every span, and
// refusing every seventh span so that partial successes are compared too.
type spanCopier struct{ spans []graph.Span }

func (c *spanCopier) ConsumeSpans(spans []graph.Span) (int, string) {
	for _, s := range spans {
		s.Service, s.Namespace = strings.Clone(s.Service), strings.Clone(s.Namespace)
		s.Operation, s.Target = strings.Clone(s.Operation), strings.Clone(s.Target)
		s.ConsumerGroup = strings.Clone(s.ConsumerGroup)
		s.Peer = graph.NodeKey{Kind: s.Peer.Kind, Group: strings.Clone(s.Peer.Group), Name: strings.Clone(s.Peer.Name)}
		s.Destination = graph.NodeKey{Kind: s.Destination.Kind, Group: strings.Clone(s.Destination.Group), Name: strings.Clone(s.Destination.Name)}
		s.Links = append([]graph.SpanRef(nil), s.Links...)
		c.spans = append(c.spans, s)
	}
	return len(spans) / 7, "every seventh"
}

// rowObserver records, for the spans of sampled traces, everything the raw
// span sample (storage.SpanSampler) reads: the resource's attributes, the
// span's fields, attributes and links, as text.
type rowObserver struct{ rows []string }

// sampledTrace picks about one trace in two, by the last byte of its id.
func sampledTrace(id graph.TraceID) bool { return id[15]%2 == 0 }

func (o *rowObserver) ObserveTraces(td ptrace.Traces) {
	for _, rs := range td.ResourceSpans().All() {
		res := attrText(rs.Resource().Attributes())
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				tid, sid := sp.TraceID(), sp.SpanID()
				if tid.IsEmpty() || sid.IsEmpty() || !sampledTrace(graph.TraceID(tid)) {
					continue
				}
				var links strings.Builder
				for _, l := range sp.Links().All() {
					fmt.Fprintf(&links, "%x/%x ", l.TraceID(), l.SpanID())
				}
				o.rows = append(o.rows, fmt.Sprintf("res=%s|%x %x %x %q %d %d %q %d %d attrs=%s links=%s",
					res, tid, sid, sp.ParentSpanID(), sp.Name(), sp.Kind(), sp.Status().Code(), sp.Status().Message(),
					sp.StartTimestamp(), sp.EndTimestamp(), attrText(sp.Attributes()), links.String()))
			}
		}
	}
}

// samplingObserver is a rowObserver that tells the pipeline which traces
// it samples, so that the wire path hands it only those.
type samplingObserver struct{ rowObserver }

func (*samplingObserver) Sampled(id graph.TraceID) bool { return sampledTrace(id) }

func attrText(m pcommon.Map) string {
	var b strings.Builder
	for k, v := range m.All() {
		fmt.Fprintf(&b, "%q=%q;", k, v.AsString())
	}
	return b.String()
}

// pathResult is what one path made of a request.
type pathResult struct {
	refused  bool
	count    int
	err      string
	spans    []graph.Span
	rows     []string
	counters string
}

func newDiffPipeline(t testing.TB, obs semconv.TracesObserver) (*semconv.Pipeline, *spanCopier, *prometheus.Registry) {
	sink := &spanCopier{}
	reg := prometheus.NewRegistry()
	p, err := semconv.NewPipeline(semconv.Options{Sink: sink, Registerer: reg, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return p, sink, reg
}

func gatherText(t testing.TB, reg *prometheus.Registry) string {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// viaPdata runs body through the receiver's pdata path.
func viaPdata(t testing.TB, body []byte) pathResult {
	if protoTooDeep(body, msgTraceRequest) {
		return pathResult{refused: true}
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return pathResult{refused: true}
	}
	obs := &rowObserver{}
	p, sink, reg := newDiffPipeline(t, obs)
	td := req.Traces()
	err := p.ConsumeTraces(context.Background(), td)
	return pathResult{count: td.SpanCount(), err: errText(err), spans: sink.spans, rows: obs.rows, counters: gatherText(t, reg)}
}

// viaWire runs body through the wire decoder, with the buffer scribbled
// over once the request is released.
func viaWire(t testing.TB, body []byte) pathResult {
	obs := &samplingObserver{}
	p, sink, reg := newDiffPipeline(t, obs)
	buf := bytes.Clone(body)
	d, err := p.DecodeTracesProto(buf)
	if err != nil {
		return pathResult{refused: true}
	}
	count := d.SpanCount()
	cerr := d.Consume(context.Background())
	d.Release()
	for i := range buf {
		buf[i] = 0xa5
	}
	return pathResult{count: count, err: errText(cerr), spans: sink.spans, rows: obs.rows, counters: gatherText(t, reg)}
}

// checkSame fails t unless both paths made the same of body.
func checkSame(t testing.TB, body []byte) {
	t.Helper()
	want, got := viaPdata(t, body), viaWire(t, body)
	if want.refused != got.refused {
		t.Fatalf("pdata refused: %v, wire refused: %v (body %x)", want.refused, got.refused, body)
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

// differentialSeeds returns realistic requests: the test helpers', the
// generated systems' (n traces each, with and without faults), and every
// request of the graph's golden cases.
func differentialSeeds(t testing.TB, n int) [][]byte {
	marshal := func(td ptrace.Traces) []byte {
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seeds := [][]byte{
		encodeRequest(t, signalTraces, contentTypeProto, 3),
		marshal(synth.New(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Traces(n)),
	}
	for _, faults := range [][]scenario.Fault{nil, scenario.AllFaults()} {
		sc, err := scenario.New(scenario.Options{Services: 24, Seed: 7, Faults: faults})
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, marshal(sc.Traces(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), n)))
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "graph", "testdata", "*-trace.json"))
	var u ptrace.JSONUnmarshaler
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
			td, err := u.UnmarshalTraces(r)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			seeds = append(seeds, marshal(td))
		}
	}
	return seeds
}

// TestDecodeDifferentialSeeds runs the differential check over the seeds
// (and so over every request of the graph's golden cases).
func TestDecodeDifferentialSeeds(t *testing.T) {
	seeds := differentialSeeds(t, 40)
	if len(seeds) < 20 {
		t.Fatalf("only %d seeds: the golden cases were not found", len(seeds))
	}
	spans, rows := 0, 0
	for i, b := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkSame(t, b) })
		r := viaWire(t, b)
		spans += len(r.spans)
		rows += len(r.rows)
	}
	// The comparison must have had something to compare.
	if spans < 1000 || rows < 100 {
		t.Fatalf("the seeds gave %d spans and %d raw span rows", spans, rows)
	}
	t.Logf("%d requests, %d spans, %d raw span rows identical", len(seeds), spans, rows)
}

// FuzzDecodeDifferential feeds the same bytes to both paths: identical
// spans, counters, errors and raw span rows, or identical refusal.
func FuzzDecodeDifferential(f *testing.F) {
	// Small requests: the fuzzer mutates and minimizes faster.
	for _, b := range differentialSeeds(f, 2) {
		f.Add(b)
	}
	kv := func(nest int) []byte { return pbBytes(pbString(nil, 1, "a"), 2, nestedArray(nest)) }
	f.Add(request(service("s"), rawSpan{name: "n", attrs: [][]byte{kv(29)}}.encode(nil)))
	f.Add(request(service("s"), rawSpan{name: "n", attrs: [][]byte{kv(30)}}.encode(nil)))
	f.Add(eventAttr(kv(29)))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSame(t, body)
	})
}
