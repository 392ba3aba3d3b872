package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// verdict is what became of one attempt to send a request.
type verdict uint8

const (
	verdictAccepted verdict = iota // whole or partial success
	verdictRefused                 // backpressure: retry later
	verdictFailed                  // anything else: not retried
)

// reply is the answer to one attempt.
type reply struct {
	verdict verdict
	// rejected is partial_success.rejected_spans of an accepted request.
	rejected int64
	// retryAfter is the delay a refusal asked for (0: none given).
	retryAfter time.Duration
	err        error
}

// sender sends one request. Each worker has its own; a sender need not be
// safe for concurrent use, but senders may share connections.
type sender interface {
	send(ctx context.Context, e *entry) reply
}

const traceExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// dialGRPC connects to endpoint over plaintext gRPC and waits until the
// connection is up, so that connecting is not part of the measurement.
func dialGRPC(ctx context.Context, endpoint string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(4<<20),
		grpc.WithInitialConnWindowSize(16<<20),
	)
	if err != nil {
		return nil, err
	}
	cc.Connect()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			cc.Close()
			return nil, fmt.Errorf("connecting to %s: %w (last state %s)", endpoint, ctx.Err(), s)
		}
	}
	return cc, nil
}

// rawRequest is an encoded ExportTraceServiceRequest that rawCodec sends as
// is.
type rawRequest []byte

// rawCodec sends rawRequest bytes without re-encoding and decodes the
// response into a ptraceotlp.ExportResponse. Its name is "proto", so the
// server sees an ordinary application/grpc+proto request.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(rawRequest)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*ptraceotlp.ExportResponse)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return resp.UnmarshalProto(buf.ReadOnlyData())
}

func (rawCodec) Name() string { return "proto" }

// grpcRaw replays encoded requests with ClientConn.Invoke: no per-send
// encoding at all.
type grpcRaw struct{ cc *grpc.ClientConn }

func (s grpcRaw) send(ctx context.Context, e *entry) reply {
	resp := ptraceotlp.NewExportResponse()
	err := s.cc.Invoke(ctx, traceExportMethod, rawRequest(e.raw), &resp, grpc.ForceCodecV2(rawCodec{}))
	return grpcReply(resp, err)
}

// grpcPdata sends decoded requests with the pdata gRPC client, which
// encodes each request on every send.
type grpcPdata struct{ c ptraceotlp.GRPCClient }

func (s grpcPdata) send(ctx context.Context, e *entry) reply {
	resp, err := s.c.Export(ctx, e.req)
	return grpcReply(resp, err)
}

func grpcReply(resp ptraceotlp.ExportResponse, err error) reply {
	if err == nil {
		return reply{verdict: verdictAccepted, rejected: resp.PartialSuccess().RejectedSpans()}
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.ResourceExhausted, codes.Unavailable:
		r := reply{verdict: verdictRefused, err: err}
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				r.retryAfter = ri.GetRetryDelay().AsDuration()
			}
		}
		return r
	}
	return reply{verdict: verdictFailed, err: err}
}

// httpSender posts encoded requests to an OTLP/HTTP endpoint.
type httpSender struct {
	client *http.Client
	url    string
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // never go through a proxy: only the given address is targeted
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

func (s httpSender) send(ctx context.Context, e *entry) reply {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(e.raw))
	if err != nil {
		return reply{verdict: verdictFailed, err: err}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	res, err := s.client.Do(req)
	if err != nil {
		return reply{verdict: verdictFailed, err: err}
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if err != nil {
		return reply{verdict: verdictFailed, err: fmt.Errorf("reading the response: %w", err)}
	}
	switch res.StatusCode {
	case http.StatusOK:
		resp := ptraceotlp.NewExportResponse()
		if err := resp.UnmarshalProto(body); err != nil {
			return reply{verdict: verdictFailed, err: fmt.Errorf("decoding the response: %w", err)}
		}
		return reply{verdict: verdictAccepted, rejected: resp.PartialSuccess().RejectedSpans()}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return reply{
			verdict:    verdictRefused,
			retryAfter: parseRetryAfter(res.Header.Get("Retry-After"), time.Now()),
			err:        fmt.Errorf("HTTP %s", res.Status),
		}
	}
	return reply{verdict: verdictFailed, err: fmt.Errorf("HTTP %s: %.200s", res.Status, body)}
}

// parseRetryAfter returns the delay of a Retry-After header value (seconds
// or an HTTP date), or 0 when it is missing or malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// errRunOver is the error of a refused request whose retry would end after
// the run's drain time.
var errRunOver = errors.New("refused, and the run is over: not retried")
