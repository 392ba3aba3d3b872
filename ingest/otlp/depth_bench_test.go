package otlp

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/mem"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// scenarioRequest is one encoded ExportTraceServiceRequest of the generated
// system of simulate/scenario (24 services, 50 traces, about 1,300 spans):
// what cmd/loadgen and bench/compare.sh send.
func scenarioRequest(b *testing.B) (body []byte, spans int) {
	b.Helper()
	gen, err := scenario.New(scenario.Options{Services: 24, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	td := gen.Traces(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 50)
	body, err = ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	return body, td.SpanCount()
}

// BenchmarkProtoTooDeep measures the nesting check every OTLP/protobuf
// request goes through before pdata decodes it, on a realistic request.
func BenchmarkProtoTooDeep(b *testing.B) {
	body, spans := scenarioRequest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if protoTooDeep(body, msgTraceRequest) {
			b.Fatal("a legitimate request refused")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkDecodeTraces is pdata's decode of the same request, for scale:
// the work the nesting check guards.
func BenchmarkDecodeTraces(b *testing.B) {
	body, spans := scenarioRequest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkMaterialize is the copy the gRPC codec makes of a request that
// arrived in HTTP/2 frames of 16 KiB (what the nesting check reads and pdata
// decodes): once per request since the codec decodes pdata requests itself,
// twice before.
func BenchmarkMaterialize(b *testing.B) {
	body, spans := scenarioRequest(b)
	var data mem.BufferSlice
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 16<<10)
		data = append(data, mem.SliceBuffer(rest[:n]))
		rest = rest[n:]
	}
	pool := newNestingCodec().pool
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		data.MaterializeToBuffer(pool).Free()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}
