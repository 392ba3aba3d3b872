package otlp

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a49a8342/cartograph/ingest"
)

// OTLP/HTTP paths and content types.
const (
	pathTraces  = "/v1/traces"
	pathMetrics = "/v1/metrics"

	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

// format is the wire format of an OTLP/HTTP request; the response uses the
// same one.
type format uint8

const (
	formatUnknown format = iota // not (yet) known: errors are answered in text/plain
	formatProto
	formatJSON
)

func (f format) contentType() string {
	switch f {
	case formatProto:
		return contentTypeProto
	case formatJSON:
		return contentTypeJSON
	default:
		return "text/plain; charset=utf-8"
	}
}

// parseContentType returns the format named by a Content-Type header value.
// Parameters such as charset are ignored.
func parseContentType(v string) (format, bool) {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return formatUnknown, false
	}
	switch mt {
	case contentTypeProto:
		return formatProto, true
	case contentTypeJSON:
		return formatJSON, true
	}
	return formatUnknown, false
}

// parseContentEncoding reports whether a Content-Encoding header value is
// gzip, and whether it is supported at all (gzip, identity or none).
func parseContentEncoding(v string) (gzipped, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "identity":
		return false, true
	case "gzip", "x-gzip":
		return true, true
	}
	return false, false
}

// otlpRequest and otlpResponse are the pdata codecs both signals share.
type otlpRequest interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
}

type otlpResponse interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

func unmarshal(req otlpRequest, body []byte, f format, k msgKind) error {
	if err := checkNesting(body, f, k); err != nil {
		return err
	}
	if f == formatJSON {
		return req.UnmarshalJSON(body)
	}
	return req.UnmarshalProto(body)
}

func marshal(resp otlpResponse, f format) ([]byte, error) {
	if f == formatJSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}

// httpEndpoint serves one signal's OTLP/HTTP path.
type httpEndpoint struct {
	r      *Receiver
	signal string
	// decode decodes a request body into a batch for the signal's consumer.
	decode func(body []byte, f format) (batch, error)
	// response builds the success or partial-success response for res.
	response func(res result) otlpResponse
}

// httpHandler returns the OTLP/HTTP handler: one path per enabled signal;
// every other path answers 404.
func (r *Receiver) httpHandler() http.Handler {
	mux := http.NewServeMux()
	if c := r.opts.Traces; c != nil {
		mux.Handle(pathTraces, &httpEndpoint{
			r:      r,
			signal: signalTraces,
			decode: func(body []byte, f format) (batch, error) {
				var d ingest.DecodedTraces
				var err error
				var read bool
				switch f {
				case formatProto:
					if pd, ok := c.(ingest.TracesProtoDecoder); ok {
						d, err = pd.DecodeTracesProto(body)
						read = true
					}
				case formatJSON:
					// The decoder checks the nesting itself, as
					// checkNesting would.
					if jd, ok := c.(ingest.TracesJSONDecoder); ok {
						d, err = jd.DecodeTracesJSON(body)
						read = true
					}
				}
				if read {
					if err != nil {
						return batch{}, err
					}
					return batch{items: int64(d.SpanCount()), consume: d.Consume, release: d.Release}, nil
				}
				req := ptraceotlp.NewExportRequest()
				if err := unmarshal(req, body, f, msgTraceRequest); err != nil {
					return batch{}, err
				}
				td := req.Traces()
				return batch{items: int64(td.SpanCount()), consume: func(ctx context.Context) error { return c.ConsumeTraces(ctx, td) }}, nil
			},
			response: func(res result) otlpResponse {
				resp := ptraceotlp.NewExportResponse()
				if res.verdict == verdictPartial {
					resp.PartialSuccess().SetRejectedSpans(res.rejected)
					resp.PartialSuccess().SetErrorMessage(res.message)
				}
				return resp
			},
		})
	}
	if c := r.opts.Metrics; c != nil {
		mux.Handle(pathMetrics, &httpEndpoint{
			r:      r,
			signal: signalMetrics,
			decode: func(body []byte, f format) (batch, error) {
				req := pmetricotlp.NewExportRequest()
				if err := unmarshal(req, body, f, msgMetricsRequest); err != nil {
					return batch{}, err
				}
				md := req.Metrics()
				return batch{items: int64(md.DataPointCount()), consume: func(ctx context.Context) error { return c.ConsumeMetrics(ctx, md) }}, nil
			},
			response: func(res result) otlpResponse {
				resp := pmetricotlp.NewExportResponse()
				if res.verdict == verdictPartial {
					resp.PartialSuccess().SetRejectedDataPoints(res.rejected)
					resp.PartialSuccess().SetErrorMessage(res.message)
				}
				return resp
			},
		})
	}
	return mux
}

// requestError is a request refused because of the request itself, before
// it reached the consumer.
type requestError struct {
	httpCode int
	outcome  string
	reason   string
	msg      string
}

func (e *httpEndpoint) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	outcome := e.serve(w, req)
	e.r.metrics.request(transportHTTP, e.signal, outcome, time.Since(start))
}

// serve answers one request and returns its outcome.
func (e *httpEndpoint) serve(w http.ResponseWriter, req *http.Request) string {
	if e.r.opts.Auth != nil {
		if req = e.authHTTP(w, req); req == nil {
			return outcomeUnauthenticated
		}
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		f, _ := parseContentType(req.Header.Get("Content-Type"))
		return e.fail(w, f, requestError{http.StatusMethodNotAllowed, outcomeBadRequest, reasonMethodNotAllowed,
			fmt.Sprintf("method %s not allowed, use POST", req.Method)})
	}
	f, ok := parseContentType(req.Header.Get("Content-Type"))
	if !ok {
		return e.fail(w, formatUnknown, requestError{http.StatusUnsupportedMediaType, outcomeUnsupportedMedia, reasonUnsupportedMedia,
			fmt.Sprintf("unsupported Content-Type %q, use %s or %s", req.Header.Get("Content-Type"), contentTypeProto, contentTypeJSON)})
	}
	gzipped, ok := parseContentEncoding(req.Header.Get("Content-Encoding"))
	if !ok {
		return e.fail(w, f, requestError{http.StatusUnsupportedMediaType, outcomeUnsupportedMedia, reasonUnsupportedEncoding,
			fmt.Sprintf("unsupported Content-Encoding %q, use gzip or none", req.Header.Get("Content-Encoding"))})
	}
	limit := e.r.opts.MaxRequestBytes
	if req.ContentLength > limit {
		return e.fail(w, f, tooLarge(fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", req.ContentLength, limit)))
	}
	if !e.r.limiter.tryAcquire() {
		// Refused before reading the body, so its items are unknown and only
		// the request is counted.
		res := limited()
		e.writeStatus(w, f, res.httpCode(), e.r.status(res))
		return res.verdict.outcome()
	}
	res, reqErr, drain := e.process(w, req, f, gzipped)
	if reqErr != nil {
		if drain != nil {
			// Read what is left of the (size-limited) wire body so the
			// sender sees the answer and the connection can be reused.
			_, _ = io.Copy(io.Discard, drain)
		}
		return e.fail(w, f, *reqErr)
	}
	if st := e.r.status(res); st != nil {
		e.writeStatus(w, f, res.httpCode(), st)
		return res.verdict.outcome()
	}
	body, err := marshal(e.response(res), f)
	if err != nil {
		e.r.log.Error("otlp http: encoding response", "signal", e.signal, "err", err)
		http.Error(w, "encoding response failed", http.StatusInternalServerError)
		return res.verdict.outcome()
	}
	w.Header().Set("Content-Type", f.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return res.verdict.outcome()
}

// process reads, decodes and exports the body while holding an in-flight
// slot. On a request error it may return the wire body still to be drained.
func (e *httpEndpoint) process(w http.ResponseWriter, req *http.Request, f format, gzipped bool) (result, *requestError, io.Reader) {
	defer e.r.limiter.release()
	wire := &wireReader{r: http.MaxBytesReader(w, req.Body, e.r.opts.MaxRequestBytes)}
	body, reqErr := readBody(wire, gzipped, e.r.opts.MaxRequestBytes, req.ContentLength)
	if reqErr != nil {
		if wire.err == nil {
			return result{}, reqErr, wire
		}
		return result{}, reqErr, nil
	}
	b, err := e.decode(body, f)
	if err != nil {
		what := "protobuf"
		if f == formatJSON {
			what = "JSON"
		}
		return result{}, &requestError{http.StatusBadRequest, outcomeBadRequest, reasonMalformed,
			fmt.Sprintf("malformed OTLP %s %s request: %v", what, e.signal, err)}, nil
	}
	if b.release != nil {
		defer b.release()
	}
	return e.r.export(req.Context(), transportHTTP, e.signal, b), nil, nil
}

// fail counts a request error and answers it.
func (e *httpEndpoint) fail(w http.ResponseWriter, f format, re requestError) string {
	e.r.metrics.badRequest(transportHTTP, e.signal, re.reason)
	code := codes.InvalidArgument
	if re.httpCode == http.StatusRequestEntityTooLarge {
		code = codes.ResourceExhausted
	}
	e.writeStatus(w, f, re.httpCode, status.New(code, re.msg))
	return re.outcome
}

// writeStatus answers with httpCode and st as a google.rpc.Status body in
// format f (text/plain with its message when f is unknown). For 429 and 503
// it sets Retry-After.
func (e *httpEndpoint) writeStatus(w http.ResponseWriter, f format, httpCode int, st *status.Status) {
	if httpCode == http.StatusTooManyRequests || httpCode == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.r.opts.RetryAfter)))
	}
	var body []byte
	var err error
	switch f {
	case formatProto:
		body, err = proto.Marshal(st.Proto())
	case formatJSON:
		body, err = protojson.Marshal(st.Proto())
	default:
		http.Error(w, st.Message(), httpCode)
		return
	}
	if err != nil {
		e.r.log.Error("otlp http: encoding error status", "signal", e.signal, "err", err)
		http.Error(w, st.Message(), httpCode)
		return
	}
	w.Header().Set("Content-Type", f.contentType())
	w.WriteHeader(httpCode)
	_, _ = w.Write(body)
}

// retryAfterSeconds returns d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func tooLarge(msg string) requestError {
	return requestError{http.StatusRequestEntityTooLarge, outcomeTooLarge, reasonTooLarge, msg}
}

// wireReader remembers the first error, other than io.EOF, of the reader it
// wraps, so errors of the connection can be told apart from errors of the
// gzip stream read from it.
type wireReader struct {
	r   io.Reader
	err error
}

func (w *wireReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

// errBodyTooLarge is returned by readLimited for a body above its limit.
var errBodyTooLarge = errors.New("body too large")

// readBody reads the whole body from wire, gunzipping it if gzipped, and
// refuses it if it decompresses to more than limit bytes. It never holds
// more than limit+1 bytes of body.
func readBody(wire *wireReader, gzipped bool, limit, contentLength int64) ([]byte, *requestError) {
	var src io.Reader = wire
	hint := contentLength
	if gzipped {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, bodyError(wire, err)
		}
		defer zr.Close()
		src, hint = zr, 0
	}
	body, err := readLimited(src, limit, hint)
	if err != nil {
		return nil, bodyError(wire, err)
	}
	return body, nil
}

// bodyError classifies an error met while reading the body.
func bodyError(wire *wireReader, err error) *requestError {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(wire.err, &tooBig):
		re := tooLarge(fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit))
		return &re
	case wire.err != nil:
		return &requestError{http.StatusBadRequest, outcomeBadRequest, reasonReadError,
			fmt.Sprintf("reading request body: %v", wire.err)}
	case errors.Is(err, errBodyTooLarge):
		re := tooLarge("decompressed request body exceeds the size limit")
		return &re
	default:
		return &requestError{http.StatusBadRequest, outcomeBadRequest, reasonInvalidCompression,
			fmt.Sprintf("invalid gzip request body: %v", err)}
	}
}

// readLimited reads r to the end and returns what it read, or
// errBodyTooLarge as soon as it has read more than limit bytes. hint, when
// positive, is the expected size. The buffer never grows beyond limit+1
// bytes.
func readLimited(r io.Reader, limit, hint int64) ([]byte, error) {
	size := int64(512)
	if hint > 0 {
		size = hint + 1 // room to see io.EOF without growing
	}
	buf := make([]byte, 0, min(size, limit+1))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errBodyTooLarge
			}
			grown := make([]byte, len(buf), min(max(2*int64(cap(buf)), 512), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return nil, errBodyTooLarge
	}
	return buf, nil
}
