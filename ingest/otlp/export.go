package otlp

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/seed-a49a8342/cartograph/ingest"
)

// batch is one decoded export request: how many items (spans or data
// points) it carries and how to hand it to its consumer.
type batch struct {
	items   int64
	consume func(context.Context) error
	// release, when set, ends the request's use of what it decoded, after
	// consume (called or not).
	release func()
}

// verdict is what became of an export request that reached the limiter.
type verdict uint8

const (
	verdictAccepted    verdict = iota
	verdictPartial             // accepted except result.rejected items
	verdictOverloaded          // in-flight limit reached, or ingest.ErrOverloaded
	verdictUnavailable         // ingest.ErrUnavailable
	verdictFailed              // any other consumer error; answered like unavailable
	verdictCanceled            // the consumer failed because the request's context ended; answered like unavailable
	verdictRejected            // ingest.IsPermanent: the sender must not retry
)

// result is the verdict on one export request and what to tell the sender.
type result struct {
	verdict  verdict
	rejected int64  // items rejected, for verdictPartial
	message  string // partial-success error_message, or the error status message
	err      error  // the consumer's error, if any
}

// limited returns the result for a request refused by the in-flight limiter.
func limited() result {
	return result{verdict: verdictOverloaded, message: "otlp: too many export requests in flight (or memory above its bound), retry later"}
}

func (v verdict) outcome() string {
	switch v {
	case verdictAccepted:
		return outcomeSuccess
	case verdictPartial:
		return outcomePartial
	case verdictOverloaded:
		return outcomeRefused
	case verdictUnavailable:
		return outcomeUnavailable
	case verdictRejected:
		return outcomeRejected
	case verdictCanceled:
		return outcomeCanceled
	default:
		return outcomeError
	}
}

// classify maps the consumer's error for a request of n items to a result.
func classify(err error, n int64) result {
	var pe *ingest.PartialError
	switch {
	case err == nil:
		return result{verdict: verdictAccepted}
	case errors.As(err, &pe):
		msg := pe.Reason
		if msg == "" {
			msg = pe.Error()
		}
		return result{verdict: verdictPartial, rejected: min(max(pe.Rejected, 0), n), message: msg, err: err}
	case errors.Is(err, ingest.ErrOverloaded):
		return result{verdict: verdictOverloaded, message: err.Error(), err: err}
	case errors.Is(err, ingest.ErrUnavailable):
		return result{verdict: verdictUnavailable, message: err.Error(), err: err}
	case ingest.IsPermanent(err):
		return result{verdict: verdictRejected, message: err.Error(), err: err}
	default:
		return result{verdict: verdictFailed, message: err.Error(), err: err}
	}
}

// export hands b to its consumer, synchronously, and counts its items by
// result. The caller must hold an in-flight slot. Requests without items are
// accepted without calling the consumer.
func (r *Receiver) export(ctx context.Context, transport, signal string, b batch) result {
	if b.items == 0 {
		return result{verdict: verdictAccepted}
	}
	res := classify(b.consume(ctx), b.items)
	if res.verdict == verdictFailed && ctx.Err() != nil {
		// The sender went away or the server is stopping: not a pipeline fault.
		res.verdict = verdictCanceled
	}
	switch res.verdict {
	case verdictAccepted:
		r.countItems(ctx, transport, signal, itemsAccepted, b.items)
	case verdictPartial:
		r.countItems(ctx, transport, signal, itemsAccepted, b.items-res.rejected)
		r.countItems(ctx, transport, signal, itemsRejected, res.rejected)
	case verdictRejected:
		r.countItems(ctx, transport, signal, itemsRejected, b.items)
		r.log.Debug("otlp export rejected", "transport", transport, "signal", signal, "items", b.items, "err", res.err)
	case verdictFailed:
		r.countItems(ctx, transport, signal, itemsRefused, b.items)
		r.log.Warn("otlp export failed", "transport", transport, "signal", signal, "items", b.items, "err", res.err)
	default: // overloaded, unavailable, canceled
		r.countItems(ctx, transport, signal, itemsRefused, b.items)
	}
	return res
}

// retryable reports whether the sender is told to retry after RetryAfter.
func (res result) retryable() bool {
	switch res.verdict {
	case verdictOverloaded, verdictUnavailable, verdictFailed, verdictCanceled:
		return true
	}
	return false
}

// status returns the google.rpc.Status for a failed result, with a RetryInfo
// detail when the sender should retry, or nil for a success.
func (r *Receiver) status(res result) *status.Status {
	var code codes.Code
	switch res.verdict {
	case verdictAccepted, verdictPartial:
		return nil
	case verdictOverloaded:
		code = codes.ResourceExhausted
	case verdictRejected:
		code = codes.InvalidArgument
	default: // unavailable, failed, canceled
		code = codes.Unavailable
	}
	st := status.New(code, res.message)
	if res.retryable() {
		st = r.withRetryInfo(st)
	}
	return st
}

// withRetryInfo returns st with a RetryInfo detail carrying RetryAfter.
func (r *Receiver) withRetryInfo(st *status.Status) *status.Status {
	withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.opts.RetryAfter)})
	if err != nil {
		return st // cannot happen: RetryInfo always marshals
	}
	return withInfo
}

// httpCode returns the HTTP status code for res.
func (res result) httpCode() int {
	switch res.verdict {
	case verdictAccepted, verdictPartial:
		return http.StatusOK
	case verdictOverloaded:
		return http.StatusTooManyRequests
	case verdictRejected:
		return http.StatusBadRequest
	default: // unavailable, failed, canceled
		return http.StatusServiceUnavailable
	}
}
