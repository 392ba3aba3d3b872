package otlp

// Hostile input, end to end through the real receiver, the semconv pipeline,
// the graph and the critical-path sampler: each request gets a clear answer
// (an error or a counted partial success), never a crash, a hang or an
// allocation out of proportion to the limits.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// --- raw OTLP protobuf, written by hand so that it can be anything --------

func pbBytes(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func pbString(b []byte, num protowire.Number, v string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func pbFixed64(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func pbVarint(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// strKV is an OTLP KeyValue with a string value.
func strKV(k, v string) []byte { return pbBytes(pbString(nil, 1, k), 2, pbString(nil, 1, v)) }

type rawSpan struct {
	trace       [16]byte
	id, parent  [8]byte
	name        string
	kind        uint64
	start, end  uint64
	attrs       [][]byte // encoded KeyValues
	statusError bool
}

func (s rawSpan) encode(b []byte) []byte {
	var m []byte
	m = pbBytes(m, 1, s.trace[:])
	m = pbBytes(m, 2, s.id[:])
	if s.parent != [8]byte{} {
		m = pbBytes(m, 4, s.parent[:])
	}
	m = pbString(m, 5, s.name)
	m = pbVarint(m, 6, s.kind)
	m = pbFixed64(m, 7, s.start)
	m = pbFixed64(m, 8, s.end)
	for _, a := range s.attrs {
		m = pbBytes(m, 9, a)
	}
	if s.statusError {
		m = pbBytes(m, 15, pbVarint(nil, 3, 2))
	}
	return pbBytes(b, 2, m)
}

// request encodes one ExportTraceServiceRequest with one resource of
// resourceAttrs holding spans (already encoded as ScopeSpans.spans fields).
func request(resourceAttrs [][]byte, spans []byte) []byte {
	var res []byte
	for _, a := range resourceAttrs {
		res = pbBytes(res, 1, a)
	}
	rs := pbBytes(nil, 1, res)
	rs = pbBytes(rs, 2, spans)
	return pbBytes(nil, 1, rs)
}

func service(name string) [][]byte { return [][]byte{strKV("service.name", name)} }

func traceN(i int) (t [16]byte) {
	binary.BigEndian.PutUint64(t[8:], uint64(i)+1)
	t[0] = 0x7e
	return t
}

func spanN(i int) (s [8]byte) {
	binary.BigEndian.PutUint64(s[:], uint64(i)+1)
	return s
}

// nestedKVList is an AnyValue nested depth kvlist levels deep, built
// outside in so that building it is linear.
func nestedKVList(depth int) []byte {
	inner := pbString(nil, 1, "x")
	type level struct{ v, kvl, kv int }
	ls := make([]level, depth)
	size := len(inner)
	for i := range depth {
		kv := 3 + 1 + protowire.SizeVarint(uint64(size)) + size
		kvl := 1 + protowire.SizeVarint(uint64(kv)) + kv
		ls[i] = level{v: 1 + protowire.SizeVarint(uint64(kvl)) + kvl, kvl: kvl, kv: kv}
		size = ls[i].v
	}
	out := make([]byte, 0, size)
	for i := depth - 1; i >= 0; i-- {
		out = protowire.AppendVarint(protowire.AppendTag(out, 6, protowire.BytesType), uint64(ls[i].kvl))
		out = protowire.AppendVarint(protowire.AppendTag(out, 1, protowire.BytesType), uint64(ls[i].kv))
		out = pbString(out, 1, "k")
		next := len(inner)
		if i > 0 {
			next = ls[i-1].v
		}
		out = protowire.AppendVarint(protowire.AppendTag(out, 2, protowire.BytesType), uint64(next))
	}
	return append(out, inner...)
}

// --- the pipeline under attack ---------------------------------------------

type hostileRig struct {
	*testReceiver
	g     *graph.Graph
	paths *critpath.Sampler
	reg   *prometheus.Registry
	clock *hostileClock
}

type hostileClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *hostileClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *hostileClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startHostileRig(t *testing.T) *hostileRig {
	t.Helper()
	reg := prometheus.NewRegistry()
	clk := &hostileClock{t: time.Now()}
	paths, err := critpath.New(critpath.Options{SampleOneIn: 1, TraceIdle: time.Second, Now: clk.now, Registerer: reg})
	require.NoError(t, err)
	g, err := graph.New(graph.Options{MaxPending: 20_000, MaxNodes: 1000, PairTTL: time.Second, Paths: paths, Now: clk.now, Registerer: reg})
	require.NoError(t, err)
	p, err := semconv.NewPipeline(semconv.Options{Sink: g, Registerer: reg})
	require.NoError(t, err)
	tr := startReceiver(t, func(o *Options) { o.Traces = p; o.Metrics = nil })
	return &hostileRig{testReceiver: tr, g: g, paths: paths, reg: reg, clock: clk}
}

// pipelineMetric reads a metric of the graph, pipeline or sampler.
func (r *hostileRig) pipelineMetric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := gatherValue(t, r.reg, name, labels)
	require.Truef(t, ok, "no series %s%v", name, labels)
	return v
}

// snapshotJSON checks the graph still snapshots into valid JSON.
func (r *hostileRig) snapshotJSON(t *testing.T) *graph.Snapshot {
	t.Helper()
	s, err := r.g.Snapshot(0)
	require.NoError(t, err)
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.True(t, json.Valid(b))
	return s
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func TestHostileInput(t *testing.T) {
	r := startHostileRig(t)
	url := r.httpURL("/v1/traces")
	clientKind, serverKind := uint64(3), uint64(2)

	cases := []struct {
		name        string
		body        func() []byte
		contentType string
		gzip        bool
		wantCode    int
		maxAlloc    uint64 // bytes allocated while answering, at most
		check       func(t *testing.T, res *httpResponse)
	}{
		{
			name:     "gzip bomb",
			body:     func() []byte { return gzipBomb(t, 256) }, // 256 MiB of zeros in ~256 KiB
			gzip:     true,
			wantCode: http.StatusRequestEntityTooLarge,
			maxAlloc: 64 << 20,
		},
		{
			name: "1M spans",
			body: func() []byte {
				var spans []byte
				for i := range 1_000_000 {
					spans = rawSpan{trace: traceN(i), id: spanN(i), name: "x", kind: serverKind, start: 1, end: 2}.encode(spans)
				}
				return request(service("many"), spans) // ~50 MB, over the 16 MiB limit
			},
			wantCode: http.StatusRequestEntityTooLarge,
			maxAlloc: 64 << 20,
		},
		{
			name: "100k client spans beyond the half-edge bound",
			body: func() []byte {
				var spans []byte
				for i := range 100_000 {
					spans = rawSpan{trace: traceN(i), id: spanN(i), parent: spanN(1 << 30), name: "GET", kind: clientKind, start: 1, end: 2}.encode(spans)
				}
				return request(service("caller"), spans)
			},
			wantCode: http.StatusOK,
			maxAlloc: 1 << 30,
			check: func(t *testing.T, res *httpResponse) {
				rejected, msg := partialSuccess(t, signalTraces, res)
				require.EqualValues(t, 80_000, rejected, "beyond --max-pending, refused and said so")
				require.Contains(t, msg, "half-edge store full")
				r.clock.advance(2 * time.Second) // they expire and make room again
				r.g.Expire()
			},
		},
		{
			name: "10k attributes on a span",
			body: func() []byte {
				attrs := make([][]byte, 10_000)
				for i := range attrs {
					attrs[i] = strKV("attr."+strings.Repeat("k", i%50)+string(rune('a'+i%26)), strings.Repeat("v", 20))
				}
				sp := rawSpan{trace: traceN(1), id: spanN(1), name: "wide", kind: serverKind, start: 1, end: 2, attrs: attrs}
				return request(service("wide"), sp.encode(nil))
			},
			wantCode: http.StatusOK,
			maxAlloc: 128 << 20,
		},
		{
			name: "attribute value nested 900k levels deep",
			body: func() []byte {
				attr := pbBytes(pbString(nil, 1, "deep"), 2, nestedKVList(900_000)) // ~15.8 MB, under the size limit
				sp := rawSpan{trace: traceN(2), id: spanN(2), name: "deep", kind: serverKind, start: 1, end: 2, attrs: [][]byte{attr}}
				return request(service("deep"), sp.encode(nil))
			},
			wantCode: http.StatusBadRequest,
			maxAlloc: 128 << 20,
			check: func(t *testing.T, res *httpResponse) {
				require.Contains(t, errorStatus(t, res).GetMessage(), "nesting deeper than")
			},
		},
		{
			name: "attribute value nested ten levels deep is fine",
			body: func() []byte {
				attr := pbBytes(pbString(nil, 1, "nested"), 2, nestedKVList(10))
				sp := rawSpan{trace: traceN(3), id: spanN(3), name: "nested", kind: serverKind, start: 1, end: 2, attrs: [][]byte{attr}}
				return request(service("nested"), sp.encode(nil))
			},
			wantCode: http.StatusOK,
			maxAlloc: 16 << 20,
		},
		{
			name: "JSON nested a million levels deep",
			body: func() []byte {
				var b strings.Builder
				b.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":`)
				const depth = 400_000 // ~11 MB, under the size limit
				for range depth {
					b.WriteString(`{"arrayValue":{"values":[`)
				}
				b.WriteString(`{"stringValue":"x"}`)
				for range depth {
					b.WriteString(`]}}`)
				}
				b.WriteString(`}]}}]}`)
				return []byte(b.String())
			},
			contentType: contentTypeJSON,
			wantCode:    http.StatusBadRequest,
			maxAlloc:    128 << 20,
		},
		{
			name: "JSON traces, read straight into the graph",
			body: func() []byte {
				return []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json\u0073vc"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"GET","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":2}]}]}]}`)
			},
			contentType: contentTypeJSON,
			wantCode:    http.StatusOK,
			maxAlloc:    16 << 20,
			check: func(t *testing.T, _ *httpResponse) {
				s := r.snapshotJSON(t)
				_, ok := s.Node("service:jsonsvc")
				require.True(t, ok, "the JSON request's service, unescaped: %v", s.Nodes)
			},
		},
		{
			name: "JSON refused as pdata refuses it",
			body: func() []byte {
				return []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`)
			},
			contentType: contentTypeJSON,
			wantCode:    http.StatusBadRequest,
			maxAlloc:    16 << 20,
			check: func(t *testing.T, res *httpResponse) {
				require.Contains(t, errorStatus(t, res).GetMessage(), "malformed OTLP JSON traces request")
			},
		},
		{
			name: "invalid UTF-8 in names",
			body: func() []byte {
				sp := rawSpan{trace: traceN(4), id: spanN(4), name: "op\xff\xfe", kind: serverKind, start: 1, end: 2}
				return request(service("bad\xff\xc0name"), sp.encode(nil))
			},
			wantCode: http.StatusOK,
			maxAlloc: 16 << 20,
			check: func(t *testing.T, _ *httpResponse) {
				s := r.snapshotJSON(t)
				_, ok := s.Node("service:bad\uFFFDname")
				require.True(t, ok, "the name is repaired, not kept invalid: %v", s.Nodes)
				for _, n := range s.Nodes {
					require.True(t, utf8.ValidString(n.ID), "node id %q", n.ID)
				}
				require.GreaterOrEqual(t, r.pipelineMetric(t, "cartograph_ingest_names_sanitized_total", lbl("reason", "invalid_utf8")), 2.0, "service and operation")
			},
		},
		{
			name: "8 MiB service name",
			body: func() []byte {
				sp := rawSpan{trace: traceN(5), id: spanN(5), name: strings.Repeat("o", 4<<20), kind: serverKind, start: 1, end: 2}
				return request(service(strings.Repeat("s", 8<<20)), sp.encode(nil))
			},
			wantCode: http.StatusOK,
			maxAlloc: 128 << 20,
			check: func(t *testing.T, _ *httpResponse) {
				s := r.snapshotJSON(t)
				found := false
				for _, n := range s.Nodes {
					require.LessOrEqual(t, len(n.Name), semconv.MaxNameBytes, "no name is kept whole beyond the bound")
					if strings.HasPrefix(n.Name, "sss") {
						found = true
						require.True(t, strings.HasSuffix(n.Name, "…"))
					}
				}
				require.True(t, found)
				require.GreaterOrEqual(t, r.pipelineMetric(t, "cartograph_ingest_names_sanitized_total", lbl("reason", "too_long")), 2.0)
			},
		},
		{
			name: "negative, reversed and far-future timestamps",
			body: func() []byte {
				var spans []byte
				for i, se := range [][2]uint64{
					{math.MaxUint64, 1},                    // start beyond int64: clamped, end before it
					{100, 1},                               // end before start
					{0, math.MaxUint64},                    // far future
					{uint64(16725225600) * 1e9, 1 << 63},   // year 2500 to beyond int64
					{1 << 63, math.MaxUint64},              // both beyond int64
					{1, uint64(time.Now().UnixNano()) * 2}, // end centuries ahead
				} {
					spans = rawSpan{trace: traceN(100 + i), id: spanN(100 + i), parent: spanN(200 + i), name: "t", kind: clientKind, start: se[0], end: se[1]}.encode(spans)
					spans = rawSpan{trace: traceN(100 + i), id: spanN(300 + i), parent: spanN(100 + i), name: "t", kind: serverKind, start: se[0], end: se[1]}.encode(spans)
				}
				return request(service("clock"), spans)
			},
			wantCode: http.StatusOK,
			maxAlloc: 16 << 20,
			check: func(t *testing.T, res *httpResponse) {
				rejected, msg := partialSuccess(t, signalTraces, res)
				require.Zero(t, rejected, msg)
				r.snapshotJSON(t)
			},
		},
		{
			// The same span three times, as an exporter re-sending a batch
			// sends it: taken once, and not refused (the graph counts
			// cartograph_graph_observations_dropped_total{reason="resent_span"}).
			name: "duplicate span ids",
			body: func() []byte {
				sp := rawSpan{trace: traceN(7), id: spanN(7), parent: spanN(70), name: "dup", kind: clientKind, start: 1, end: 2}
				return request(service("dup"), sp.encode(sp.encode(sp.encode(nil))))
			},
			wantCode: http.StatusOK,
			maxAlloc: 16 << 20,
			check: func(t *testing.T, res *httpResponse) {
				rejected, msg := partialSuccess(t, signalTraces, res)
				require.Zero(t, rejected, msg)
			},
		},
		{
			name: "parent links forming a cycle",
			body: func() []byte {
				// a -> b -> c -> a, plus one span its own parent.
				tr := traceN(8)
				spans := rawSpan{trace: tr, id: spanN(81), parent: spanN(83), name: "a", kind: serverKind, start: 1, end: 10}.encode(nil)
				spans = rawSpan{trace: tr, id: spanN(82), parent: spanN(81), name: "b", kind: clientKind, start: 2, end: 9}.encode(spans)
				spans = rawSpan{trace: tr, id: spanN(83), parent: spanN(82), name: "c", kind: serverKind, start: 3, end: 8}.encode(spans)
				spans = rawSpan{trace: tr, id: spanN(84), parent: spanN(84), name: "self", kind: serverKind, start: 3, end: 8}.encode(spans)
				return request(service("loop"), spans)
			},
			wantCode: http.StatusOK,
			maxAlloc: 16 << 20,
			check: func(t *testing.T, _ *httpResponse) {
				r.clock.advance(2 * time.Second) // the trace goes idle and is analysed
				done := make(chan []graph.EntryPath, 1)
				go func() { done <- r.paths.Paths(0) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("critical-path analysis of a cyclic trace did not finish")
				}
				r.snapshotJSON(t)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			ct := tc.contentType
			if ct == "" {
				ct = contentTypeProto
			}
			enc := ""
			if tc.gzip {
				enc = "gzip"
			}
			runtime.GC()
			before, t0 := totalAlloc(), time.Now()
			var res *httpResponse
			var err error
			if tc.gzip {
				res, err = doHTTP(http.MethodPost, url, http.Header{"Content-Type": {ct}, "Content-Encoding": {enc}}, strings.NewReader(string(body)))
			} else {
				res, err = postOTLP(url, ct, enc, body)
			}
			took, alloc := time.Since(t0), totalAlloc()-before
			require.NoError(t, err)
			require.Equal(t, tc.wantCode, res.code, "answer: %.300s", res.body)
			t.Logf("%d bytes: HTTP %d in %v, %d MiB allocated", len(body), res.code, took, alloc>>20)
			require.Less(t, took, 30*time.Second, "bounded time")
			require.LessOrEqual(t, alloc, tc.maxAlloc, "bounded allocation")
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}

	t.Run("still serving", func(t *testing.T) {
		res, err := postOTLP(url, contentTypeProto, "", request(service("after"),
			rawSpan{trace: traceN(9), id: spanN(9), name: "ok", kind: serverKind, start: 1, end: 2}.encode(nil)))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.code)
	})
}

// TestGRPCRefusesDeepNesting: the gRPC transport checks nesting too, before
// pdata's recursive decoder runs.
func TestGRPCRefusesDeepNesting(t *testing.T) {
	r := startHostileRig(t)
	cc := r.grpcConn(t)
	attr := pbBytes(pbString(nil, 1, "deep"), 2, nestedKVList(900_000))
	body := request(service("deep"), rawSpan{trace: traceN(1), id: spanN(1), name: "deep", kind: 2, start: 1, end: 2, attrs: [][]byte{attr}}.encode(nil))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var reply []byte
	err := cc.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", body, &reply, grpc.ForceCodec(rawCodec{}))
	require.Error(t, err)
	require.NotEqual(t, codes.OK, status.Code(err))
	require.Contains(t, err.Error(), "nesting deeper than")

	_, err = exportTraces(cc, makeTraces(1))
	require.NoError(t, err, "the receiver keeps serving")
}

// TestNestingCheckLinearAndExact: legitimate OTLP passes, the scan is linear
// in the input, and the bound is where it says.
func TestNestingCheckLinearAndExact(t *testing.T) {
	legit := protoTraces(t, makeTraces(1000))
	require.False(t, protoTooDeep(legit, msgTraceRequest))
	require.False(t, protoTooDeep(legit, msgAny))
	legitMetrics, err := pmetricotlp.NewExportRequestFromMetrics(makeMetrics(1000)).MarshalProto()
	require.NoError(t, err)
	require.False(t, protoTooDeep(legitMetrics, msgMetricsRequest))

	spanAttr := func(kv []byte) []byte {
		return request(service("s"), rawSpan{trace: traceN(1), id: spanN(1), name: "n", kind: 2, start: 1, end: 2, attrs: [][]byte{kv}}.encode(nil))
	}
	// The request is at depth 0, a span at 3, its attributes at 4, their
	// values at 5; a resource's attribute values at 4, a span event's at 6;
	// a kvlist adds 3 levels, an array 2.
	for _, tc := range []struct {
		name    string
		body    []byte
		deepest int // depth of the innermost message
	}{
		{"kvlist 5", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(5))), 20},
		{"kvlist 15", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(15))), 50},
		{"kvlist 19", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(19))), 62},
		{"kvlist 20", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(20))), 65},
		{"kvlist 30", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(30))), 95},
		{"kvlist 100000", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(100_000))), 300_005},
		{"span attribute, array 29", spanAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedArray(29))), 63},
		{"resource attribute, array 29", request([][]byte{pbBytes(pbString(nil, 1, "a"), 2, nestedArray(29))}, nil), 62},
		{"resource attribute, array 30", request([][]byte{pbBytes(pbString(nil, 1, "a"), 2, nestedArray(30))}, nil), 64},
		{"span event attribute, array 28", eventAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedArray(28))), 62},
		{"span event attribute, array 29", eventAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedArray(29))), 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deep := tc.deepest >= maxNesting
			require.Equal(t, deep, protoTooDeep(tc.body, msgTraceRequest))
			if tc.deepest < 1000 {
				req := ptraceotlp.NewExportRequest()
				require.NoError(t, req.UnmarshalProto(tc.body))
				require.Equal(t, tc.deepest, tracesDepth(req.Traces()), "the depth pdata decodes")
			}
		})
	}
	for _, tc := range []struct {
		nest int
		deep bool
	}{{27, false}, {28, true}} {
		// A request 0, resource metrics 1, scope metrics 2, metric 3, sum 4,
		// data point 5, exemplar 6, its attributes 7, their values 8.
		require.Equal(t, tc.deep, protoTooDeep(exemplarAttr(pbBytes(pbString(nil, 1, "a"), 2, nestedArray(tc.nest))), msgMetricsRequest), "array %d", tc.nest)
	}

	// Bytes that look like messages all the way down, 16 MiB of them, are
	// scanned in about the time of one pass, with a schema or without.
	nested := nestedKVList(20)
	big := make([]byte, 0, 16<<20)
	for len(big) < 16<<20-len(nested)-8 {
		big = pbBytes(big, 1, nested)
	}
	t0 := time.Now()
	protoTooDeep(big, msgAny)
	require.Less(t, time.Since(t0), 5*time.Second)
	// Attributes nested as deep as allowed, each scanned to the bottom.
	attr := pbBytes(pbString(nil, 1, "a"), 2, nestedKVList(19))
	var sp rawSpan
	for len(sp.attrs)*(len(attr)+4) < 16<<20-1000 {
		sp.attrs = append(sp.attrs, attr)
	}
	big = request(service("s"), sp.encode(nil))
	t0 = time.Now()
	require.False(t, protoTooDeep(big, msgTraceRequest))
	require.Less(t, time.Since(t0), 5*time.Second)

	require.NoError(t, checkJSONNesting([]byte(`{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"{{{{"}`)),
		"brackets inside strings do not count")
	require.Error(t, checkJSONNesting([]byte(strings.Repeat("[", maxNesting+1))))
}

// TestNestingCheckReadsAsPdata: where pdata's decoder reads the wire more
// leniently than google.golang.org/protobuf's protowire, the check reads it
// as pdata does, so a deep attribute behind such a field is still seen.
func TestNestingCheckReadsAsPdata(t *testing.T) {
	deepAttr := pbBytes(pbString(nil, 1, "a"), 2, nestedArray(40))
	// Field 9 (attributes), length-delimited, tag written in ten bytes
	// whose last is above 1: protowire calls it an overflow, pdata reads
	// field 9.
	longTag := append([]byte{0x4a | 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, protowire.AppendVarint(nil, uint64(len(deepAttr)))...)
	longTag = append(longTag, deepAttr...)
	// A group ended with another field's number (protowire refuses it,
	// pdata skips it), before the attribute.
	group := protowire.AppendTag(nil, 20, protowire.StartGroupType)
	group = protowire.AppendTag(group, 21, protowire.EndGroupType)
	group = pbBytes(group, 9, deepAttr)
	for name, fields := range map[string][]byte{"ten-byte tag": longTag, "mismatched group": group} {
		t.Run(name, func(t *testing.T) {
			sp := pbBytes(nil, 1, make([]byte, 16))
			sp = pbBytes(sp, 2, make([]byte, 8))
			sp = append(sp, fields...)
			body := request(service("s"), pbBytes(nil, 2, sp))
			req := ptraceotlp.NewExportRequest()
			require.NoError(t, req.UnmarshalProto(body), "pdata reads it")
			require.Equal(t, 5+2*40, tracesDepth(req.Traces()), "and decodes the attribute")
			require.True(t, protoTooDeep(body, msgTraceRequest))
		})
	}
}

// nestedArray is an AnyValue nested depth arrays deep: AnyValue,
// ArrayValue, AnyValue ... with a string at the bottom.
func nestedArray(depth int) []byte {
	v := pbString(nil, 1, "x")
	for range depth {
		v = pbBytes(nil, 5, pbBytes(nil, 1, v))
	}
	return v
}

// eventAttr is a trace request of one span with one event with attribute
// kv.
func eventAttr(kv []byte) []byte {
	trace, id := traceN(1), spanN(1)
	sp := pbBytes(nil, 1, trace[:])
	sp = pbBytes(sp, 2, id[:])
	sp = pbBytes(sp, 11, pbBytes(pbString(nil, 2, "ev"), 3, kv))
	return request(service("s"), pbBytes(nil, 2, sp))
}

// exemplarAttr is a metrics request of one sum with one data point with one
// exemplar with filtered attribute kv.
func exemplarAttr(kv []byte) []byte {
	point := pbBytes(nil, 5, pbBytes(nil, 7, kv))
	metric := pbBytes(pbString(nil, 1, "m"), 7, pbBytes(nil, 1, point))
	return pbBytes(nil, 1, pbBytes(nil, 2, pbBytes(nil, 2, metric)))
}

// tracesDepth is the depth of the innermost message of td as decoded, the
// request at 0 (a resource's attribute values at 4, a span's at 5).
func tracesDepth(td ptrace.Traces) int {
	deepest := 1
	for _, rs := range td.ResourceSpans().All() {
		deepest = max(deepest, 2, mapDepth(rs.Resource().Attributes(), 3))
		for _, ss := range rs.ScopeSpans().All() {
			deepest = max(deepest, 2, mapDepth(ss.Scope().Attributes(), 4))
			for _, sp := range ss.Spans().All() {
				deepest = max(deepest, 3, mapDepth(sp.Attributes(), 4))
				for _, ev := range sp.Events().All() {
					deepest = max(deepest, 4, mapDepth(ev.Attributes(), 5))
				}
				for _, l := range sp.Links().All() {
					deepest = max(deepest, 4, mapDepth(l.Attributes(), 5))
				}
			}
		}
	}
	return deepest
}

// mapDepth is the depth of the innermost message of attributes m whose
// KeyValues are at depth d (0 without any).
func mapDepth(m pcommon.Map, d int) int {
	deepest := 0
	for _, v := range m.All() {
		deepest = max(deepest, valueDepth(v, d+1))
	}
	return deepest
}

// valueDepth is the depth of the innermost message of v, an AnyValue at d.
func valueDepth(v pcommon.Value, d int) int {
	switch v.Type() {
	case pcommon.ValueTypeSlice:
		deepest := d + 1
		for _, e := range v.Slice().All() {
			deepest = max(deepest, valueDepth(e, d+2))
		}
		return deepest
	case pcommon.ValueTypeMap:
		return max(d+1, mapDepth(v.Map(), d+2))
	}
	return d
}
