package corpus_test

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Span kinds, short.
const (
	server   = ptrace.SpanKindServer
	client   = ptrace.SpanKindClient
	producer = ptrace.SpanKindProducer
	consumer = ptrace.SpanKindConsumer
	internal = ptrace.SpanKindInternal
)

// attrs are span or resource attributes: string, bool, int, int64, float64
// or []string values.
type attrs map[string]any

// fspan is one span of a fixture. Ids are labels, unique in the fixture,
// hashed into span and trace ids; times are milliseconds after the
// fixture's start.
type fspan struct {
	svc    string // the resource's service.name
	trace  string // trace label
	id     string // span label
	parent string // parent span label; "" for a root
	kind   ptrace.SpanKind
	name   string
	at, ms int
	a      attrs
	links  []string // linked spans, "trace/span" labels
	err    bool     // status ERROR
	state  string   // W3C tracestate
	spanID string   // explicit span id label, for spans sharing an id (Zipkin)
	scope  string   // instrumentation scope; "" means the fixture's
}

// fixture is one case: the spans in export requests, in sending order (each
// request a []fspan; a request holds the spans of one or more services, as a
// collector forwarding batches does), with the resource attributes each
// service reports beside service.name.
type fixture struct {
	name     string
	scope    string           // instrumentation scope name of every span
	resource map[string]attrs // extra resource attributes by service
	requests [][]fspan
}

// ids hashes a label into a fixed-size id, never all zeros.
func ids(fixture, label string) [32]byte {
	h := sha256.Sum256([]byte(fixture + "\x00" + label))
	h[0] |= 1
	return h
}

// traces renders request i of f as pdata, with spans starting at base.
func (f *fixture) traces(i int, base time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, s := range f.requests[i] {
		scope := cmpOr(s.scope, f.scope)
		ss, ok := bySvc[s.svc+"\x00"+scope]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			ra := rs.Resource().Attributes()
			ra.PutStr("service.name", s.svc)
			putAttrs(ra, f.resource[s.svc])
			sc := rs.ScopeSpans().AppendEmpty()
			sc.Scope().SetName(scope)
			ss = sc.Spans()
			bySvc[s.svc+"\x00"+scope] = ss
		}
		sp := ss.AppendEmpty()
		tid := ids(f.name, "trace:"+s.trace)
		sp.SetTraceID(pcommon.TraceID(tid[:16]))
		sid := ids(f.name, "span:"+cmpOr(s.spanID, s.id))
		sp.SetSpanID(pcommon.SpanID(sid[:8]))
		if s.parent != "" {
			pid := ids(f.name, "span:"+s.parent)
			sp.SetParentSpanID(pcommon.SpanID(pid[:8]))
		}
		sp.SetKind(s.kind)
		sp.SetName(s.name)
		start := base.Add(time.Duration(s.at) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(s.ms) * time.Millisecond)))
		putAttrs(sp.Attributes(), s.a)
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		if s.state != "" {
			sp.TraceState().FromRaw(s.state)
		}
		for _, l := range s.links {
			tr, span, ok := strings.Cut(l, "/")
			if !ok {
				panic("link " + l + " is not trace/span")
			}
			ln := sp.Links().AppendEmpty()
			lt := ids(f.name, "trace:"+tr)
			ln.SetTraceID(pcommon.TraceID(lt[:16]))
			ls := ids(f.name, "span:"+span)
			ln.SetSpanID(pcommon.SpanID(ls[:8]))
		}
	}
	return td
}

func putAttrs(m pcommon.Map, a attrs) {
	for k, v := range a {
		switch v := v.(type) {
		case string:
			m.PutStr(k, v)
		case bool:
			m.PutBool(k, v)
		case int:
			m.PutInt(k, int64(v))
		case int64:
			m.PutInt(k, v)
		case float64:
			m.PutDouble(k, v)
		case []string:
			s := m.PutEmptySlice(k)
			for _, e := range v {
				s.AppendEmpty().SetStr(e)
			}
		default:
			panic(fmt.Sprintf("attribute %s: unsupported type %T", k, v))
		}
	}
}

// TestFixtures sends each fixture, request by request as OTLP/JSON, to the
// receiver and asserts the exact edges of testdata/<fixture>-graph.json.
func TestFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			require.NotEmpty(t, f.requests)
			e := newEnv(t)
			base := time.Now().Add(-5 * time.Second)
			var m ptrace.JSONMarshaler
			for i := range f.requests {
				body, err := m.MarshalTraces(f.traces(i, base))
				require.NoError(t, err)
				e.post(t, body)
			}
			e.assertEdges(t, f.name)
		})
	}
}

// fixtures is the corpus of recorded shapes; see fixtures_*_test.go.
var fixtures []*fixture

func register(f ...*fixture) bool {
	fixtures = append(fixtures, f...)
	return true
}
