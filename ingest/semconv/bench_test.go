package semconv

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
)

// BenchmarkTranslate translates a realistic request (100 resources x 10
// spans, ~10 attributes each) into a reused slice.
func BenchmarkTranslate(b *testing.B) {
	td := realisticRequest(b, 100)
	n := td.SpanCount()
	dst := make([]graph.Span, 0, n)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = Translate(dst[:0], td)
	}
	b.ReportMetric(float64(n), "spans/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

type discardSink struct{}

func (discardSink) ConsumeSpans([]graph.Span) (int, string) { return 0, "" }

// BenchmarkPipeline runs the realistic request through a Pipeline with
// pooled buffers, in parallel.
func BenchmarkPipeline(b *testing.B) {
	td := realisticRequest(b, 100)
	n := td.SpanCount()
	p, err := NewPipeline(Options{Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.ConsumeTraces(context.Background(), td); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n), "spans/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDecodeAndTranslate adds OTLP protobuf decoding, as a receiver
// does it, to show what translation costs next to decoding.
func BenchmarkDecodeAndTranslate(b *testing.B) {
	td := realisticRequest(b, 100)
	n := td.SpanCount()
	var m ptrace.ProtoMarshaler
	buf, err := m.MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPipeline(Options{Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(buf)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.ConsumeTraces(context.Background(), td); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "spans/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDecodeWire is BenchmarkDecodeAndTranslate with the request read
// from its bytes by DecodeTracesProto instead of pdata.
func BenchmarkDecodeWire(b *testing.B) {
	td := realisticRequest(b, 100)
	n := td.SpanCount()
	var m ptrace.ProtoMarshaler
	buf, err := m.MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPipeline(Options{Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.DecodeTracesProto(buf)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Consume(context.Background()); err != nil {
			b.Fatal(err)
		}
		d.Release()
	}
	b.ReportMetric(float64(n), "spans/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}
