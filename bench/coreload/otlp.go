package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// call is one trace of two spans: a CLIENT span of service Caller calling
// Callee over HTTP (the trace's root), and Callee's SERVER span answering
// it. The collector pairs them into the edge Caller -> Callee (a root
// SERVER span would add an edge from a "client" node).
type call struct {
	Caller, Callee string
	Seq            uint64        // makes the trace and span ids; unique per run
	Latency        time.Duration // the server span's (1 ms when 0); the client's is 1 ms more
	Error          bool          // the server answers 500
}

// spansPerCall is the spans of one call.
const spansPerCall = 2

// buildRequest encodes calls as one OTLP/HTTP protobuf export request,
// every span ending at now.
func buildRequest(calls []call, now time.Time) ([]byte, error) {
	td := ptrace.NewTraces()
	end := pcommon.NewTimestampFromTime(now)
	for _, c := range calls {
		lat := c.Latency
		if lat <= 0 {
			lat = time.Millisecond
		}
		code := int64(200)
		if c.Error {
			code = 500
		}
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], 0xc0de10ad00000000|c.Seq>>32)
		binary.BigEndian.PutUint64(tid[8:], c.Seq*0x9e3779b97f4a7c15+1)
		sid := func(k uint64) pcommon.SpanID {
			var s pcommon.SpanID
			binary.BigEndian.PutUint64(s[:], c.Seq*4+k+1)
			return s
		}
		caller := td.ResourceSpans().AppendEmpty()
		caller.Resource().Attributes().PutStr("service.name", c.Caller)
		spans := caller.ScopeSpans().AppendEmpty().Spans()

		client := spans.AppendEmpty()
		client.SetTraceID(tid)
		client.SetSpanID(sid(1))
		client.SetKind(ptrace.SpanKindClient)
		client.SetName("GET")
		client.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-lat - time.Millisecond)))
		client.SetEndTimestamp(end)
		client.Attributes().PutStr("http.request.method", "GET")
		client.Attributes().PutStr("server.address", c.Callee)
		client.Attributes().PutInt("http.response.status_code", code)

		callee := td.ResourceSpans().AppendEmpty()
		callee.Resource().Attributes().PutStr("service.name", c.Callee)
		server := callee.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		server.SetTraceID(tid)
		server.SetSpanID(sid(2))
		server.SetParentSpanID(sid(1))
		server.SetKind(ptrace.SpanKindServer)
		server.SetName("GET /work")
		server.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-lat - time.Millisecond)))
		server.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
		server.Attributes().PutStr("http.request.method", "GET")
		server.Attributes().PutStr("http.route", "/work")
		server.Attributes().PutInt("http.response.status_code", code)
		if c.Error {
			client.Status().SetCode(ptrace.StatusCodeError)
			server.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
}

// exportStats count what a sender's requests came to. Spans are counted
// once per request, whatever its retries.
type exportStats struct {
	Requests  int64 // requests answered 200
	Accepted  int64 // spans the collector took (sent minus partial-success rejections)
	Rejected  int64 // spans refused in a partial success
	Refusals  int64 // 429/503 answers (each retried after Retry-After)
	Abandoned int64 // spans of requests still refused when the sending time ended
	Failed    int64 // spans of requests answered otherwise, or not at all
}

func (s *exportStats) add(o exportStats) {
	s.Requests += o.Requests
	s.Accepted += o.Accepted
	s.Rejected += o.Rejected
	s.Refusals += o.Refusals
	s.Abandoned += o.Abandoned
	s.Failed += o.Failed
}

// exporter posts OTLP/HTTP protobuf requests as an OTLP exporter does. Safe
// for concurrent use.
type exporter struct {
	client *http.Client
	url    string
}

func newExporter(otlpHTTP string, conns int) *exporter {
	return &exporter{
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute, DisableCompression: true,
		}},
		url: "http://" + otlpHTTP + "/v1/traces",
	}
}

// export posts body (spans spans) until the collector takes it. A 429 or
// 503 is retried after its Retry-After (1 s when absent), unless that is
// past until: then the spans count as abandoned.
func (e *exporter) export(ctx context.Context, body []byte, spans int, until time.Time) exportStats {
	var st exportStats
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
		if err != nil {
			st.Failed += int64(spans)
			return st
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := e.client.Do(req)
		if err != nil {
			st.Failed += int64(spans)
			return st
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			st.Requests++
			var rejected int64
			if len(rb) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "protobuf") {
				r := ptraceotlp.NewExportResponse()
				if err := r.UnmarshalProto(rb); err == nil {
					rejected = r.PartialSuccess().RejectedSpans()
				}
			}
			st.Rejected += rejected
			st.Accepted += int64(spans) - rejected
			return st
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			st.Refusals++
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			if time.Now().Add(wait).After(until) {
				st.Abandoned += int64(spans)
				return st
			}
			select {
			case <-ctx.Done():
				st.Abandoned += int64(spans)
				return st
			case <-time.After(wait):
			}
		default:
			st.Failed += int64(spans)
			return st
		}
	}
}

// String is the stats in one line.
func (s exportStats) String() string {
	return fmt.Sprintf("requests=%d accepted=%d rejected=%d refusals=%d abandoned=%d failed=%d",
		s.Requests, s.Accepted, s.Rejected, s.Refusals, s.Abandoned, s.Failed)
}
