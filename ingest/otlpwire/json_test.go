package otlpwire

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// naiveTooDeep is the receiver's nesting check, byte by byte.
func naiveTooDeep(b []byte) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > MaxNesting {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// TestJSONTooDeepMatchesTheReceiver compares the fast nesting check with
// the receiver's on random bodies of brackets, quotes and escapes.
func TestJSONTooDeepMatchesTheReceiver(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{[{[{[{["\\a}]`)
	deep, shallow := 0, 0
	for range 20000 {
		b := make([]byte, rng.IntN(400))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		want := naiveTooDeep(b)
		if got := jsonTooDeep(b, 0); got != want {
			t.Fatalf("jsonTooDeep(%q) = %v, want %v", b, got, want)
		}
		if want {
			deep++
		} else {
			shallow++
		}
	}
	if deep < 100 || shallow < 100 {
		t.Fatalf("%d deep and %d shallow bodies: the test compared too little", deep, shallow)
	}
}

// TestPlainRun checks that plainRun never skips a byte readString must
// look at.
func TestPlainRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			switch rng.IntN(12) {
			case 0:
				b[i] = '"'
			case 1:
				b[i] = '\\'
			case 2:
				b[i] = byte(rng.IntN(0x20))
			default:
				b[i] = byte(0x20 + rng.IntN(0xe0))
			}
		}
		start := rng.IntN(len(b) + 1)
		got := plainRun(b, start)
		if got < start || got > len(b) {
			t.Fatalf("plainRun(%q, %d) = %d", b, start, got)
		}
		for _, c := range b[start:got] {
			if c == '"' || c == '\\' || c < 0x20 {
				t.Fatalf("plainRun(%q, %d) = %d skips %q", b, start, got, c)
			}
		}
	}
}

// recorder is a Visitor writing down what it is handed.
type recorder struct {
	log       []string
	restarts  int
	restarter bool
}

func (r *recorder) ResourceAttr(key string, v Value) {
	r.log = append(r.log, fmt.Sprintf("res %s=%q", key, v.Str))
}
func (r *recorder) BeginSpans(rs ResourceSpans) {
	r.log = append(r.log, "begin "+string(rs.AppendJSON(nil)))
}
func (r *recorder) SpanAttr(key string, v Value) {
	r.log = append(r.log, fmt.Sprintf("attr %s=%q", key, v.Str))
}
func (r *recorder) SpanLink(trace [16]byte, span [8]byte) {
	r.log = append(r.log, fmt.Sprintf("link %x %x", trace, span))
}
func (r *recorder) Span(s *Span) {
	var evs []string
	e := s.Events()
	for ev, ok := e.Next(); ok; ev, ok = e.Next() {
		v, _ := ev.Attr("exception.type")
		evs = append(evs, ev.Name()+":"+v.Str)
	}
	r.log = append(r.log, fmt.Sprintf("span %x %x %q %d %v raw=%s", s.Trace, s.ID, s.Name, s.Kind, evs, s.Raw))
}

// restartingRecorder is a recorder that can start over.
type restartingRecorder struct{ recorder }

func (r *restartingRecorder) Restart() { r.log, r.restarts = nil, r.restarts+1 }

const lateResource = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"a\u00e9","kind":"SPAN_KIND_SERVER","attributes":[{"key":"k","value":{"stringValue":"v\n"}}],"events":[{"name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"E\t"}}]}]}]}],` +
	`"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"late"}}]}},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f11","spanId":"0102030405060709","links":[{"traceId":"0102030405060708090a0b0c0d0e0f12","spanId":"010203040506070a"}]}]}]}]}`

// TestJSONReaderLateResource reads a request whose first resource follows
// its spans: a Restarter is restarted once, and ends with what a visitor
// read in two passes from the start is handed.
func TestJSONReaderLateResource(t *testing.T) {
	var careful recorder
	var r JSONReader
	if err := r.ReadTraces([]byte(lateResource), &careful); err != nil {
		t.Fatal(err)
	}
	var once restartingRecorder
	if err := r.ReadTraces([]byte(lateResource), &once); err != nil {
		t.Fatal(err)
	}
	if once.restarts != 1 {
		t.Fatalf("%d restarts, want 1", once.restarts)
	}
	if !slices.Equal(careful.log, once.log) {
		t.Fatalf("careful:\n%s\nrestarted:\n%s", strings.Join(careful.log, "\n"), strings.Join(once.log, "\n"))
	}
	want := []string{
		`res service.name="late"`,
		`begin "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"late"}}]},`,
		`attr k="v\n"`,
	}
	if !slices.Equal(careful.log[:3], want) {
		t.Fatalf("got %q, want %q first", careful.log[:3], want)
	}
	if !strings.Contains(careful.log[3], `"aé" 2 [exception:E	]`) {
		t.Fatalf("span: %s", careful.log[3])
	}
}

// TestJSONReaderArena checks that unescaped strings survive the
// reading of later ones (the arena never moves them) and that the reader
// refuses with ErrMalformed.
func TestJSONReaderArena(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceSpans":[{"scopeSpans":[{"spans":[`)
	for i := range 300 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"01020304050607%02x","name":"n\u00e9%d%s"}`, i%256, i, strings.Repeat("x", i*7))
	}
	b.WriteString(`]}]}]}`)
	var names []string
	v := &nameKeeper{names: &names}
	var r JSONReader
	if err := r.ReadTraces([]byte(b.String()), v); err != nil {
		t.Fatal(err)
	}
	if len(names) != 300 {
		t.Fatalf("%d names", len(names))
	}
	for i, n := range names {
		if want := fmt.Sprintf("né%d%s", i, strings.Repeat("x", i*7)); n != want {
			t.Fatalf("name %d = %q, want %q", i, n, want)
		}
	}
	r.Reset()
	err := r.ReadTraces([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\x"}]}]}]}`), v)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

// nameKeeper keeps the span names it is handed, without copying them.
type nameKeeper struct {
	recorder
	names *[]string
}

func (k *nameKeeper) Span(s *Span) { *k.names = append(*k.names, s.Name) }

// BenchmarkReadTracesJSON is BenchmarkReadTraces for the same request in
// OTLP/JSON: the checked walk, with a visitor that keeps nothing.
func BenchmarkReadTracesJSON(b *testing.B) {
	gen := synth.New(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	body, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(100)).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	var v restartingNop
	var r JSONReader
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		v.spans = 0
		if err := r.ReadTraces(body, &v); err != nil {
			b.Fatal(err)
		}
		r.Reset()
	}
	reportPerSpan(b, processCPU()-cpu, v.spans)
}

// restartingNop is a nopVisitor that can start over, so that the reader
// reads in one pass.
type restartingNop struct{ nopVisitor }

func (v *restartingNop) Restart() { v.spans, v.attrs = 0, 0 }

// TestJSONReaderOnePass checks that the benchmark's visitor is read in one
// pass (a pdata-written request has its resources first).
func TestJSONReaderOnePass(t *testing.T) {
	gen := synth.New(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	body, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(3)).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v restartingNop
	var r JSONReader
	if err := r.ReadTraces(body, &v); err != nil {
		t.Fatal(err)
	}
	if r.careful || v.spans == 0 {
		t.Fatalf("careful %v, %d spans", r.careful, v.spans)
	}
}
