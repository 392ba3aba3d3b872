package otlp

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a49a8342/cartograph/ingest"
)

// httpResponse is a read HTTP response.
type httpResponse struct {
	code   int
	header http.Header
	body   []byte
}

// doHTTP sends one request and reads the whole answer. It does not touch t,
// so it may run in any goroutine.
func doHTTP(method, url string, header http.Header, body io.Reader) (*httpResponse, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &httpResponse{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// postOTLP posts body with contentType, gzipping it first if encoding is "gzip".
func postOTLP(url, contentType, encoding string, body []byte) (*httpResponse, error) {
	h := http.Header{"Content-Type": {contentType}}
	if encoding == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		body = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	return doHTTP(http.MethodPost, url, h, bytes.NewReader(body))
}

func protoTraces(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// encodeRequest encodes td or md (whichever signal is) in contentType.
func encodeRequest(t testing.TB, signal, contentType string, n int) []byte {
	t.Helper()
	type marshaler interface {
		MarshalProto() ([]byte, error)
		MarshalJSON() ([]byte, error)
	}
	var req marshaler = ptraceotlp.NewExportRequestFromTraces(makeTraces(n))
	if signal == signalMetrics {
		req = pmetricotlp.NewExportRequestFromMetrics(makeMetrics(n))
	}
	var b []byte
	var err error
	if strings.HasPrefix(contentType, contentTypeJSON) {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	require.NoError(t, err)
	return b
}

func signalPath(signal string) string {
	if signal == signalMetrics {
		return pathMetrics
	}
	return pathTraces
}

// partialSuccess decodes an OTLP/HTTP export response body and returns its
// partial_success fields.
func partialSuccess(t *testing.T, signal string, res *httpResponse) (rejected int64, msg string) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(res.header.Get("Content-Type"))
	require.NoError(t, err)
	unmarshal := func(r interface {
		UnmarshalProto([]byte) error
		UnmarshalJSON([]byte) error
	}) {
		if mt == contentTypeJSON {
			require.NoError(t, r.UnmarshalJSON(res.body), "JSON response %q", res.body)
		} else {
			require.Equal(t, contentTypeProto, mt)
			require.NoError(t, r.UnmarshalProto(res.body))
		}
	}
	if signal == signalMetrics {
		resp := pmetricotlp.NewExportResponse()
		unmarshal(resp)
		return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage()
	}
	resp := ptraceotlp.NewExportResponse()
	unmarshal(resp)
	return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage()
}

// errorStatus decodes an OTLP/HTTP error body: a google.rpc.Status in the
// response's content type, or plain text.
func errorStatus(t *testing.T, res *httpResponse) *spb.Status {
	t.Helper()
	mt, _, err := mime.ParseMediaType(res.header.Get("Content-Type"))
	require.NoError(t, err)
	st := &spb.Status{}
	switch mt {
	case contentTypeProto:
		require.NoError(t, proto.Unmarshal(res.body, st))
	case contentTypeJSON:
		require.NoError(t, protojson.Unmarshal(res.body, st), "JSON status %q", res.body)
	case "text/plain":
		st.Message = string(res.body)
	default:
		t.Fatalf("unexpected error content type %q", mt)
	}
	return st
}

func retryDelay(st *spb.Status) (time.Duration, bool) {
	for _, a := range st.GetDetails() {
		ri := &errdetails.RetryInfo{}
		if a.UnmarshalTo(ri) == nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

func TestHTTPExport(t *testing.T) {
	tr := startReceiver(t, nil)
	for _, signal := range []string{signalTraces, signalMetrics} {
		for _, ct := range []string{contentTypeProto, contentTypeJSON, contentTypeJSON + "; charset=utf-8"} {
			for _, enc := range []string{"", "gzip"} {
				t.Run(fmt.Sprintf("%s/%s/%s", signal, ct, enc), func(t *testing.T) {
					spans0, points0 := tr.sink.counts()
					accepted0 := tr.metric(t, "cartograph_receiver_items_total", lbl("transport", "http", "signal", signal, "result", "accepted"))

					res, err := postOTLP(tr.httpURL(signalPath(signal)), ct, enc, encodeRequest(t, signal, ct, 3))
					require.NoError(t, err)
					require.Equal(t, http.StatusOK, res.code, "body %q", res.body)
					wantCT, _, _ := mime.ParseMediaType(ct)
					require.Equal(t, wantCT, res.header.Get("Content-Type"), "answered in the request's content type")
					rejected, msg := partialSuccess(t, signal, res)
					require.Zero(t, rejected)
					require.Empty(t, msg)

					spans, points := tr.sink.counts()
					if signal == signalTraces {
						require.Equal(t, spans0+3, spans)
						require.Equal(t, "checkout", func() string {
							v, _ := tr.sink.lastTraces().ResourceSpans().At(0).Resource().Attributes().Get("service.name")
							return v.Str()
						}())
					} else {
						require.Equal(t, points0+3, points)
					}
					require.Equal(t, accepted0+3, tr.metric(t, "cartograph_receiver_items_total", lbl("transport", "http", "signal", signal, "result", "accepted")))
				})
			}
		}
	}
	require.Equal(t, 6.0, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "http", "outcome", "success", "signal", "traces")))
	require.Equal(t, 6.0, tr.metric(t, "cartograph_receiver_request_duration_seconds", lbl("transport", "http", "signal", "metrics")))
}

func TestHTTPEmptyRequestSkipsConsumer(t *testing.T) {
	tr := startReceiver(t, nil)
	tr.sink.setErr(errors.New("must not be called"))
	res, err := postOTLP(tr.httpURL(pathTraces), contentTypeProto, "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.code)
}

// errorCases are the consumer errors and what each must become.
var errorCases = []struct {
	name       string
	err        error
	httpCode   int
	grpcCode   codes.Code
	retry      bool   // Retry-After / RetryInfo expected
	rejected   int64  // partial success: rejected items
	msg        string // in the partial success or error message
	outcome    string
	itemsDelta map[string]float64 // of 5 items sent
}{
	{
		name: "partial", err: &ingest.PartialError{Rejected: 2, Reason: "2 spans lack service.name"},
		httpCode: http.StatusOK, grpcCode: codes.OK, rejected: 2, msg: "2 spans lack service.name", outcome: "partial",
		itemsDelta: map[string]float64{"accepted": 3, "rejected": 2},
	},
	{
		name: "partial wrapped, rejected clamped", err: fmt.Errorf("graph: %w", &ingest.PartialError{Rejected: 99, Reason: "too many"}),
		httpCode: http.StatusOK, grpcCode: codes.OK, rejected: 5, msg: "too many", outcome: "partial",
		itemsDelta: map[string]float64{"rejected": 5},
	},
	{
		name: "overloaded", err: fmt.Errorf("graph: %w", ingest.ErrOverloaded),
		httpCode: http.StatusTooManyRequests, grpcCode: codes.ResourceExhausted, retry: true, msg: "overloaded", outcome: "refused",
		itemsDelta: map[string]float64{"refused": 5},
	},
	{
		name: "unavailable", err: ingest.ErrUnavailable,
		httpCode: http.StatusServiceUnavailable, grpcCode: codes.Unavailable, retry: true, msg: "unavailable", outcome: "unavailable",
		itemsDelta: map[string]float64{"refused": 5},
	},
	{
		name: "permanent", err: ingest.NewPermanent(errors.New("span has no trace id")),
		httpCode: http.StatusBadRequest, grpcCode: codes.InvalidArgument, msg: "span has no trace id", outcome: "rejected",
		itemsDelta: map[string]float64{"rejected": 5},
	},
	{
		name: "other", err: errors.New("disk on fire"),
		httpCode: http.StatusServiceUnavailable, grpcCode: codes.Unavailable, retry: true, msg: "disk on fire", outcome: "error",
		itemsDelta: map[string]float64{"refused": 5},
	},
}

// itemCounts returns the items_total values by result.
func (tr *testReceiver) itemCounts(t *testing.T, transport, signal string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, r := range []string{"accepted", "refused", "rejected"} {
		m[r] = tr.metric(t, "cartograph_receiver_items_total", lbl("transport", transport, "signal", signal, "result", r))
	}
	return m
}

func requireItemsDelta(t *testing.T, before, after, want map[string]float64) {
	t.Helper()
	for _, r := range []string{"accepted", "refused", "rejected"} {
		require.Equal(t, want[r], after[r]-before[r], "items %s", r)
	}
}

func TestHTTPErrorMapping(t *testing.T) {
	tr := startReceiver(t, nil)
	for _, tc := range errorCases {
		for _, signal := range []string{signalTraces, signalMetrics} {
			for _, ct := range []string{contentTypeProto, contentTypeJSON} {
				t.Run(tc.name+"/"+signal+"/"+ct, func(t *testing.T) {
					tr.sink.setErr(tc.err)
					defer tr.sink.setErr(nil)
					items0 := tr.itemCounts(t, "http", signal)
					outcome0 := tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "http", "signal", signal, "outcome", tc.outcome))

					res, err := postOTLP(tr.httpURL(signalPath(signal)), ct, "", encodeRequest(t, signal, ct, 5))
					require.NoError(t, err)
					require.Equal(t, tc.httpCode, res.code, "body %q", res.body)
					require.Equal(t, ct, res.header.Get("Content-Type"))
					if tc.retry {
						require.Equal(t, "2", res.header.Get("Retry-After"), "1.5s rounds up to 2s")
					} else {
						require.Empty(t, res.header.Get("Retry-After"))
					}
					if tc.httpCode == http.StatusOK {
						rejected, msg := partialSuccess(t, signal, res)
						require.Equal(t, tc.rejected, rejected)
						require.Contains(t, msg, tc.msg)
					} else {
						st := errorStatus(t, res)
						require.Equal(t, int32(tc.grpcCode), st.GetCode())
						require.Contains(t, st.GetMessage(), tc.msg)
						d, ok := retryDelay(st)
						require.Equal(t, tc.retry, ok, "RetryInfo detail")
						if ok {
							require.Equal(t, 1500*time.Millisecond, d)
						}
					}
					requireItemsDelta(t, items0, tr.itemCounts(t, "http", signal), tc.itemsDelta)
					require.Equal(t, outcome0+1, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", "http", "signal", signal, "outcome", tc.outcome)))
				})
			}
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {30 * time.Second, 30},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			require.Equal(t, tt.want, retryAfterSeconds(tt.d))
		})
	}
}

// unsized hides a reader's length so the request is sent chunked.
type unsized struct{ io.Reader }

// gzipBomb returns a valid gzip stream that inflates to mib MiB of zeros. It
// compresses one MiB and repeats the compressed block (which ends on a flush
// boundary and only refers back within itself), so building it never holds
// the inflated data.
func gzipBomb(t testing.TB, mib int) []byte {
	t.Helper()
	zeros := make([]byte, 1<<20)
	var block bytes.Buffer
	fw, err := flate.NewWriter(&block, flate.BestCompression)
	require.NoError(t, err)
	_, err = fw.Write(zeros)
	require.NoError(t, err)
	require.NoError(t, fw.Flush())

	out := bytes.NewBuffer(make([]byte, 0, 10+mib*block.Len()+13))
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header, deflate, no flags
	crc := uint32(0)
	for range mib {
		out.Write(block.Bytes())
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	out.Write([]byte{1, 0, 0, 0xff, 0xff}) // final empty stored block
	out.Write(binary.LittleEndian.AppendUint32(nil, crc))
	out.Write(binary.LittleEndian.AppendUint32(nil, uint32(mib<<20)))
	return out.Bytes()
}

func TestGzipBombIsValidGzip(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(gzipBomb(t, 3)))
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, zr)
	require.NoError(t, err, "checksum and size trailer must verify")
	require.Equal(t, int64(3<<20), n)
}

func TestHTTPBadRequests(t *testing.T) {
	const limit = 4 << 20
	tr := startReceiver(t, func(o *Options) { o.MaxRequestBytes = limit })
	good := protoTraces(t, makeTraces(1))
	bomb := gzipBomb(t, 1024) // 1 GiB of zeros
	require.Less(t, len(bomb), limit, "the bomb must pass the wire limit so the decompressed limit is what stops it")
	var truncated bytes.Buffer
	zw := gzip.NewWriter(&truncated)
	_, _ = zw.Write(good)
	_ = zw.Close()

	tests := []struct {
		name     string
		method   string
		header   http.Header
		body     io.Reader
		wantCode int
		reason   string
		outcome  string
		msg      string
	}{
		{
			name: "malformed protobuf", header: http.Header{"Content-Type": {contentTypeProto}},
			body:     bytes.NewReader([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}),
			wantCode: http.StatusBadRequest, reason: "malformed", outcome: "bad_request", msg: "malformed OTLP protobuf traces request",
		},
		{
			name: "malformed JSON", header: http.Header{"Content-Type": {contentTypeJSON}},
			body:     strings.NewReader(`{"resourceSpans": [{"scopeSpans": `),
			wantCode: http.StatusBadRequest, reason: "malformed", outcome: "bad_request", msg: "malformed OTLP JSON traces request",
		},
		{
			name: "wrong content type", header: http.Header{"Content-Type": {"text/plain"}},
			body:     bytes.NewReader(good),
			wantCode: http.StatusUnsupportedMediaType, reason: "unsupported_media_type", outcome: "unsupported_media_type", msg: "unsupported Content-Type",
		},
		{
			name: "no content type", header: http.Header{},
			body:     bytes.NewReader(good),
			wantCode: http.StatusUnsupportedMediaType, reason: "unsupported_media_type", outcome: "unsupported_media_type", msg: "unsupported Content-Type",
		},
		{
			name: "unsupported encoding", header: http.Header{"Content-Type": {contentTypeProto}, "Content-Encoding": {"br"}},
			body:     bytes.NewReader(good),
			wantCode: http.StatusUnsupportedMediaType, reason: "unsupported_encoding", outcome: "unsupported_media_type", msg: "unsupported Content-Encoding",
		},
		{
			name: "GET", method: http.MethodGet, header: http.Header{},
			wantCode: http.StatusMethodNotAllowed, reason: "method_not_allowed", outcome: "bad_request", msg: "not allowed",
		},
		{
			name: "oversized body", header: http.Header{"Content-Type": {contentTypeProto}},
			body:     bytes.NewReader(make([]byte, limit+1)),
			wantCode: http.StatusRequestEntityTooLarge, reason: "too_large", outcome: "too_large", msg: "exceeds the limit",
		},
		{
			name: "oversized chunked body", header: http.Header{"Content-Type": {contentTypeProto}},
			body:     unsized{bytes.NewReader(make([]byte, limit+1))},
			wantCode: http.StatusRequestEntityTooLarge, reason: "too_large", outcome: "too_large", msg: "exceeds the limit",
		},
		{
			name: "invalid gzip", header: http.Header{"Content-Type": {contentTypeJSON}, "Content-Encoding": {"gzip"}},
			body:     strings.NewReader(`{"resourceSpans":[]}`),
			wantCode: http.StatusBadRequest, reason: "invalid_compression", outcome: "bad_request", msg: "invalid gzip",
		},
		{
			name: "truncated gzip", header: http.Header{"Content-Type": {contentTypeProto}, "Content-Encoding": {"gzip"}},
			body:     bytes.NewReader(truncated.Bytes()[:truncated.Len()-6]),
			wantCode: http.StatusBadRequest, reason: "invalid_compression", outcome: "bad_request", msg: "invalid gzip",
		},
		{
			name: "gzip bomb", header: http.Header{"Content-Type": {contentTypeProto}, "Content-Encoding": {"gzip"}},
			body:     bytes.NewReader(bomb),
			wantCode: http.StatusRequestEntityTooLarge, reason: "too_large", outcome: "too_large", msg: "decompressed request body exceeds",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reasonLabels := lbl("transport", "http", "signal", "traces", "reason", tc.reason)
			outcomeLabels := lbl("transport", "http", "signal", "traces", "outcome", tc.outcome)
			bad0 := tr.metric(t, "cartograph_receiver_bad_requests_total", reasonLabels)
			outcome0 := tr.metric(t, "cartograph_receiver_requests_total", outcomeLabels)
			spans0, _ := tr.sink.counts()

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := doHTTP(method, tr.httpURL(pathTraces), tc.header, tc.body)
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			require.Equal(t, tc.wantCode, res.code, "body %q", res.body)
			require.Contains(t, errorStatus(t, res).GetMessage(), tc.msg)
			if tc.wantCode == http.StatusMethodNotAllowed {
				require.Equal(t, http.MethodPost, res.header.Get("Allow"))
			}
			if tc.name == "gzip bomb" {
				t.Logf("bomb: %d bytes on the wire, %d bytes allocated while answering it", len(bomb), after.TotalAlloc-before.TotalAlloc)
				require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20),
					"inflating must stop at the limit instead of allocating the whole bomb")
			}
			require.Equal(t, bad0+1, tr.metric(t, "cartograph_receiver_bad_requests_total", reasonLabels))
			require.Equal(t, outcome0+1, tr.metric(t, "cartograph_receiver_requests_total", outcomeLabels))
			spans, _ := tr.sink.counts()
			require.Equal(t, spans0, spans, "nothing reaches the consumer")

			// The receiver keeps serving.
			res, err = postOTLP(tr.httpURL(pathTraces), contentTypeProto, "gzip", good)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.code, "body %q", res.body)
		})
	}
}

func TestHTTPDisabledSignalAndUnknownPath(t *testing.T) {
	tr := startReceiver(t, func(o *Options) { o.Metrics = nil })
	for _, path := range []string{pathMetrics, "/v1/logs", "/"} {
		t.Run(path, func(t *testing.T) {
			res, err := postOTLP(tr.httpURL(path), contentTypeProto, "", nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, res.code)
		})
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		limit   int64
		hint    int64
		wantErr error
	}{
		{name: "empty", size: 0, limit: 10},
		{name: "at limit", size: 10, limit: 10},
		{name: "at limit with hint", size: 10, limit: 10, hint: 10},
		{name: "over limit", size: 11, limit: 10, wantErr: errBodyTooLarge},
		{name: "over limit, lying hint", size: 5000, limit: 4096, hint: 1, wantErr: errBodyTooLarge},
		{name: "large", size: 100_000, limit: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bytes.Repeat([]byte{'x'}, tt.size)
			got, err := readLimited(bytes.NewReader(in), tt.limit, tt.hint)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, in, got)
			require.LessOrEqual(t, int64(cap(got)), tt.limit+1)
		})
	}
}
