package otlpwire

import (
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// nopVisitor counts spans and reads nothing.
type nopVisitor struct{ spans, attrs int }

func (*nopVisitor) ResourceAttr(string, Value) {}
func (*nopVisitor) BeginSpans(ResourceSpans)   {}
func (v *nopVisitor) SpanAttr(string, Value)   { v.attrs++ }
func (*nopVisitor) SpanLink([16]byte, [8]byte) {}
func (v *nopVisitor) Span(*Span)               { v.spans++ }

func pbLen(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// attrRequest is a request of one span with one attribute whose value is
// v (an encoded AnyValue).
func attrRequest(v []byte) []byte {
	kv := pbLen(pbLen(nil, 1, []byte("k")), 2, v)
	span := pbLen(nil, 9, kv)
	return pbLen(nil, 1, pbLen(nil, 2, pbLen(nil, 2, span)))
}

// nestedArray is an AnyValue n arrays deep.
func nestedArray(n int) []byte {
	v := pbLen(nil, 1, []byte("x"))
	for range n {
		v = pbLen(nil, 5, pbLen(nil, 1, v))
	}
	return v
}

func TestReadTracesErrors(t *testing.T) {
	// The span is at level 3, its KeyValue at 4, the value at 5; each
	// array adds two levels: 29 arrays end at level 63, 30 at 65.
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"29 arrays deep", attrRequest(nestedArray(29)), nil},
		{"30 arrays deep", attrRequest(nestedArray(30)), ErrTooDeep},
		{"truncated field", []byte{0x0a, 0x05, 0x12}, ErrTruncated},
		{"eleven-byte varint", []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, ErrOverflow},
		{"field number 0", []byte{0x02, 0x00}, ErrMalformed},
		{"resource spans as a varint", []byte{0x08, 0x01}, ErrMalformed},
		{"unknown fields skipped", []byte{0x10, 0x01, 0x1a, 0x00, 0x21, 1, 2, 3, 4, 5, 6, 7, 8}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ReadTraces(c.body, &nopVisitor{})
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("ReadTraces: %v, want %v", err, c.want)
			}
		})
	}
}

// BenchmarkReadTraces is the cost of reading a request's bytes once and
// checking them, with nothing translated: the floor under the wire path.
// One request of the synthetic 800-span traffic per op.
func BenchmarkReadTraces(b *testing.B) {
	gen := synth.New(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	body, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(100)).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	var v nopVisitor
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		v.spans = 0
		if err := ReadTraces(body, &v); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSpan(b, processCPU()-cpu, v.spans)
}

// reportPerSpan reports the time per span, and the process's CPU time
// per span (steadier on a loaded machine).
func reportPerSpan(b *testing.B, cpu time.Duration, spansPerOp int) {
	spans := float64(b.N * spansPerOp)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/spans, "cpu-ns/span")
	}
}
