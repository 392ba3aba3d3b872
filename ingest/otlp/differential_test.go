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
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
	"github.com/seed-a49a8342/cartograph/simulate/synth"
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

// diffRig holds a pipeline per path, kept across requests: both see the
// same requests, so their cumulative counters agree after each request
// if and only if each request added the same to both.
type diffRig struct {
	pdata, wire             *semconv.Pipeline
	pdataSink, wireSink     *spanCopier
	pdataObs                *rowObserver
	wireObs                 *samplingObserver
	pdataCounters, wireCtrs *prometheus.Registry
}

func newDiffRig(t testing.TB) *diffRig {
	r := &diffRig{pdataObs: &rowObserver{}, wireObs: &samplingObserver{}}
	r.pdata, r.pdataSink, r.pdataCounters = newDiffPipeline(t, r.pdataObs)
	r.wire, r.wireSink, r.wireCtrs = newDiffPipeline(t, r.wireObs)
	return r
}

// viaPdata runs body through the receiver's pdata path.
func (r *diffRig) viaPdata(t testing.TB, body []byte) pathResult {
	if protoTooDeep(body, msgTraceRequest) {
		return pathResult{refused: true}
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return pathResult{refused: true}
	}
	r.pdataSink.spans, r.pdataObs.rows = nil, nil
	td := req.Traces()
	err := r.pdata.ConsumeTraces(context.Background(), td)
	return pathResult{count: td.SpanCount(), err: errText(err), spans: r.pdataSink.spans, rows: r.pdataObs.rows, counters: gatherText(t, r.pdataCounters)}
}

// viaWire runs body through the wire decoder, with the buffer scribbled
// over once the request is released.
func (r *diffRig) viaWire(t testing.TB, body []byte) pathResult {
	buf := bytes.Clone(body)
	d, err := r.wire.DecodeTracesProto(buf)
	if err != nil {
		return pathResult{refused: true}
	}
	r.wireSink.spans, r.wireObs.rows = nil, nil
	count := d.SpanCount()
	cerr := d.Consume(context.Background())
	d.Release()
	for i := range buf {
		buf[i] = 0xa5
	}
	return pathResult{count: count, err: errText(cerr), spans: r.wireSink.spans, rows: r.wireObs.rows, counters: gatherText(t, r.wireCtrs)}
}

// checkSame fails t unless both paths made the same of body.
func (r *diffRig) checkSame(t testing.TB, body []byte) pathResult {
	t.Helper()
	want, got := r.viaPdata(t, body), r.viaWire(t, body)
	compareResults(t, want, got, body)
	return got
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
	rig := newDiffRig(t)
	for i, b := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := rig.checkSame(t, b)
			spans += len(r.spans)
			rows += len(r.rows)
		})
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
	rig := newDiffRig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rig.checkSame(t, body)
	})
}

// TestDecodeDifferentialEdgeCases runs the differential check over the
// corners of the wire format and of pdata's reading of it, each built by
// hand; refused says whether both paths must refuse it.
func TestDecodeDifferentialEdgeCases(t *testing.T) {
	trace, id, parent := traceN(1), spanN(1), spanN(2)
	ids := func(m []byte) []byte {
		m = pbBytes(m, 1, trace[:])
		return pbBytes(m, 2, id[:])
	}
	spanOf := func(fields ...[]byte) []byte {
		m := ids(nil)
		m = pbBytes(m, 4, parent[:])
		m = pbVarint(m, 6, 3) // client
		for _, f := range fields {
			m = append(m, f...)
		}
		return m
	}
	scope := func(spans ...[]byte) []byte {
		var ss []byte
		for _, s := range spans {
			ss = pbBytes(ss, 2, s)
		}
		return ss
	}
	res := func(kvs ...[]byte) []byte {
		var r []byte
		for _, kv := range kvs {
			r = pbBytes(r, 1, kv)
		}
		return r
	}
	intKV := func(k string, v uint64) []byte { return pbBytes(pbString(nil, 1, k), 2, pbVarint(nil, 3, v)) }
	attr := func(kv []byte) []byte { return pbBytes(nil, 9, kv) }
	statusOf := func(fields []byte) []byte { return pbBytes(nil, 15, fields) }
	event := func(name string, kvs ...[]byte) []byte {
		e := pbString(nil, 2, name)
		for _, kv := range kvs {
			e = pbBytes(e, 3, kv)
		}
		return pbBytes(nil, 11, e)
	}
	rsOf := func(fields ...[]byte) []byte {
		var rs []byte
		for _, f := range fields {
			rs = append(rs, f...)
		}
		return pbBytes(nil, 1, rs)
	}
	svc := pbBytes(nil, 1, res(strKV("service.name", "checkout")))
	basic := spanOf(pbString(nil, 5, "GET"), attr(strKV("http.request.method", "GET")), attr(strKV("server.address", "pay")))
	tenByteKind := append(protowire.AppendTag(nil, 6, protowire.VarintType), 0x83, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f)
	group := append(protowire.AppendTag(nil, 20, protowire.StartGroupType), protowire.AppendTag(nil, 20, protowire.EndGroupType)...)
	manyEvents := []byte{}
	for range 8 {
		manyEvents = append(manyEvents, event("log")...)
	}
	manyEvents = append(manyEvents, event("exception", strKV("exception.type", "java.net.ConnectException"))...)

	cases := []struct {
		name    string
		body    []byte
		refused bool
	}{
		{"resource after its spans", rsOf(pbBytes(nil, 2, scope(basic)), svc), false},
		{"resource sent twice merges", rsOf(svc, pbBytes(nil, 1, res(strKV("service.name", "b"), strKV("service.namespace", "shop"))), pbBytes(nil, 2, scope(basic))), false},
		{"deprecated scope spans alone", rsOf(svc, pbBytes(nil, 1000, scope(basic))), false},
		{"deprecated scope spans ignored beside current ones", rsOf(svc, pbBytes(nil, 1000, scope(spanOf(pbString(nil, 5, "old")))), pbBytes(nil, 2, scope(basic))), false},
		{"malformed deprecated scope spans", rsOf(svc, pbBytes(nil, 1000, []byte{0x12, 0x05}), pbBytes(nil, 2, scope(basic))), true},
		{"trace id of 5 bytes", rsOf(svc, pbBytes(nil, 2, scope(pbBytes(basic, 1, []byte{1, 2, 3, 4, 5})))), true},
		{"empty trace id", rsOf(svc, pbBytes(nil, 2, scope(pbBytes(basic, 1, nil)))), false},
		{"statuses merge", rsOf(svc, pbBytes(nil, 2, scope(spanOf(statusOf(pbString(nil, 2, "dial tcp: connection refused")), statusOf(pbVarint(nil, 3, 2)))))), false},
		{"a key-value's values merge", rsOf(svc, pbBytes(nil, 2, scope(spanOf(attr(pbBytes(pbBytes(pbString(nil, 1, "http.response.status_code"), 2, pbString(nil, 1, "x")), 2, pbVarint(nil, 3, 503))))))), false},
		{"string table index reads as empty", rsOf(pbBytes(nil, 1, res(pbBytes(pbString(nil, 1, "service.name"), 2, pbVarint(nil, 8, 3)))), pbBytes(nil, 2, scope(basic))), false},
		{"only the first 8 events are read", rsOf(svc, pbBytes(nil, 2, scope(spanOf(statusOf(pbVarint(nil, 3, 2)), manyEvents)))), false},
		{"first exception.type counts", rsOf(svc, pbBytes(nil, 2, scope(spanOf(statusOf(pbVarint(nil, 3, 2)), event("exception", intKV("exception.type", 1), strKV("exception.type", "CallNotPermittedException"), strKV("exception.message", "connection refused")))))), false},
		{"ten-byte kind varint", rsOf(svc, pbBytes(nil, 2, scope(append(spanOf(), tenByteKind...)))), false},
		{"eleven-byte varint", rsOf(svc, pbBytes(nil, 2, scope(append(spanOf(), append(tenByteKind[:len(tenByteKind)-1:len(tenByteKind)-1], 0x80, 0x01)...)))), true},
		{"unknown group field", rsOf(svc, pbBytes(nil, 2, scope(append(append(spanOf(), group...), pbString(nil, 5, "after")...)))), false},
		// pdata's ConsumeUnknown wants a byte after a group's end.
		{"unknown group field last", rsOf(svc, pbBytes(nil, 2, scope(append(spanOf(), group...)))), true},
		{"scope name as a varint", rsOf(svc, pbBytes(nil, 2, append(pbBytes(nil, 1, pbVarint(nil, 1, 1)), scope(basic)...))), true},
		{"kind out of range", rsOf(svc, pbBytes(nil, 2, scope(append(spanOf(), pbVarint(nil, 6, 9)...)))), false},
		{"sampling threshold in tracestate", rsOf(svc, pbBytes(nil, 2, scope(spanOf(pbString(nil, 3, "ot=th:8"))))), false},
		{"long and invalid names", rsOf(pbBytes(nil, 1, res(strKV("service.name", strings.Repeat("é", 200)+"\xff"))), pbBytes(nil, 2, scope(spanOf(pbString(nil, 5, "\xfe"+strings.Repeat("x", 300)))))), false},
		{"links with and without ids", rsOf(svc, pbBytes(nil, 2, scope(spanOf(pbBytes(nil, 13, append(pbBytes(nil, 1, trace[:]), pbBytes(nil, 2, parent[:])...)), pbBytes(nil, 13, pbBytes(nil, 1, trace[:])))))), false},
		{"link id of 3 bytes", rsOf(svc, pbBytes(nil, 2, scope(spanOf(pbBytes(nil, 13, pbBytes(nil, 2, []byte{1, 2, 3})))))), true},
		{"nested 29 arrays deep", request(service("s"), rawSpan{trace: trace, id: id, name: "n", attrs: [][]byte{pbBytes(pbString(nil, 1, "a"), 2, nestedArray(29))}}.encode(nil)), false},
		{"nested 30 arrays deep", request(service("s"), rawSpan{trace: trace, id: id, name: "n", attrs: [][]byte{pbBytes(pbString(nil, 1, "a"), 2, nestedArray(30))}}.encode(nil)), true},
		{"deep key-value lists in the resource", request([][]byte{pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(40))}, nil), true},
		{"truncated", rsOf(svc, pbBytes(nil, 2, scope(basic)))[:40], true},
		{"empty request", nil, false},
	}
	rig := newDiffRig(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := rig.checkSame(t, c.body)
			if got.refused != c.refused {
				t.Fatalf("refused: %v, want %v", got.refused, c.refused)
			}
		})
	}
}

// TestWireSpansOutliveNoBuffer sends the generated system's traffic into
// two graphs, one through pdata, one through the wire decoder with each
// request's buffer scribbled over as soon as it is released: the graphs
// must be the same, so nothing the graph (and its critical-path sampler)
// keeps aliases a request's bytes.
func TestWireSpansOutliveNoBuffer(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type rig struct {
		g   *graph.Graph
		p   *semconv.Pipeline
		clk *hostileClock
	}
	newRig := func() rig {
		clk := &hostileClock{t: start}
		paths, err := critpath.New(critpath.Options{SampleOneIn: 1, TraceIdle: time.Second, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		g, err := graph.New(graph.Options{PairTTL: 2 * time.Second, Paths: paths, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		p, err := semconv.NewPipeline(semconv.Options{Sink: g})
		if err != nil {
			t.Fatal(err)
		}
		return rig{g: g, p: p, clk: clk}
	}
	viaPdata, viaWire := newRig(), newRig()
	gen, err := scenario.New(scenario.Options{Services: 24, Seed: 3, Faults: scenario.AllFaults()})
	if err != nil {
		t.Fatal(err)
	}
	now := start
	for range 40 {
		body, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(now, 20)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			t.Fatal(err)
		}
		if err := viaPdata.p.ConsumeTraces(context.Background(), req.Traces()); err != nil {
			t.Fatal(err)
		}
		d, err := viaWire.p.DecodeTracesProto(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Consume(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.Release()
		for i := range body {
			body[i] = 0xa5
		}
		now = now.Add(500 * time.Millisecond)
		viaPdata.clk.advance(500 * time.Millisecond)
		viaWire.clk.advance(500 * time.Millisecond)
	}
	for _, r := range []rig{viaPdata, viaWire} {
		r.clk.advance(5 * time.Second)
		r.g.Expire()
	}
	snapshot := func(r rig) string {
		s, err := r.g.Snapshot(0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want, got := snapshot(viaPdata), snapshot(viaWire)
	if len(want) < 1000 {
		t.Fatalf("the graph is nearly empty: %s", want)
	}
	if want != got {
		t.Fatalf("graphs differ:\npdata %s\nwire  %s", want, got)
	}
}
