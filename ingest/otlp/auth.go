package otlp

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenAuthenticator decides whether a bearer token may export, and names
// it. Implementations must compare in constant time and be safe for
// concurrent use; Authenticate runs on gRPC's connection reader, so it must
// be fast. The name becomes the "token" label of
// cartograph_receiver_token_items_total, so an implementation must only
// return names from a small fixed set. If it also has a Names() []string
// method, those series are created up front.
type TokenAuthenticator interface {
	Authenticate(token string) (name string, ok bool)
}

// Authentication failure reasons (label "reason" of
// cartograph_receiver_auth_failures_total).
const (
	authMissing = "missing" // no authorization header or metadata
	authInvalid = "invalid" // not "Bearer <token>", or a token the authenticator refuses
)

// tokenNameKey is the context key of the authenticated token's name.
type tokenNameKey struct{}

// TokenName returns the name of the token an export request was
// authenticated with, from the context the consumer receives. It returns
// false when the receiver does not authenticate.
func TokenName(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(tokenNameKey{}).(string)
	return name, ok
}

// authenticate checks an authorization header value and returns the token
// name, or the failure reason.
func (r *Receiver) authenticate(header string) (name, reason string) {
	if header == "" {
		return "", authMissing
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", authInvalid
	}
	name, ok = r.opts.Auth.Authenticate(tok)
	if !ok {
		return "", authInvalid
	}
	return name, ""
}

// authMessage is what a sender refused for reason is told.
func authMessage(reason string) string {
	if reason == authMissing {
		return "otlp: authentication required: send authorization: Bearer <token>"
	}
	return "otlp: invalid bearer token"
}

// authGRPC authenticates an RPC from its metadata before gRPC reads the
// message. It returns ctx carrying the token name, or an UNAUTHENTICATED
// status error (counted for export RPCs).
func (r *Receiver) authGRPC(ctx context.Context, md metadata.MD, fullMethod string) (context.Context, error) {
	var header string
	if v := md.Get("authorization"); len(v) > 0 {
		header = v[0]
	}
	name, reason := r.authenticate(header)
	if reason == "" {
		return context.WithValue(ctx, tokenNameKey{}, name), nil
	}
	if signal, ok := grpcMethodSignal(fullMethod); ok {
		r.metrics.authFailure(transportGRPC, signal, reason)
		r.metrics.request(transportGRPC, signal, outcomeUnauthenticated, 0)
	}
	r.log.Debug("otlp request refused: not authenticated", "transport", transportGRPC, "method", fullMethod, "reason", reason)
	return ctx, status.Error(codes.Unauthenticated, authMessage(reason))
}

// authHTTP authenticates an OTLP/HTTP request before its body is read. On
// success it returns the request with the token name in its context; on
// failure it answers 401 with WWW-Authenticate, counts the request and
// returns nil.
func (e *httpEndpoint) authHTTP(w http.ResponseWriter, req *http.Request) *http.Request {
	name, reason := e.r.authenticate(req.Header.Get("Authorization"))
	if reason == "" {
		return req.WithContext(context.WithValue(req.Context(), tokenNameKey{}, name))
	}
	e.r.metrics.authFailure(transportHTTP, e.signal, reason)
	e.r.log.Debug("otlp request refused: not authenticated", "transport", transportHTTP, "path", req.URL.Path, "remote", req.RemoteAddr, "reason", reason)
	challenge := `Bearer realm="cartograph"`
	if reason == authInvalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	f, _ := parseContentType(req.Header.Get("Content-Type"))
	e.writeStatus(w, f, http.StatusUnauthorized, status.New(codes.Unauthenticated, authMessage(reason)))
	return nil
}

// countItems counts n items of a request with the given result, also per
// token name when the request was authenticated.
func (r *Receiver) countItems(ctx context.Context, transport, signal, result string, n int64) {
	r.metrics.addItems(transport, signal, result, n)
	if name, ok := TokenName(ctx); ok && n > 0 {
		r.metrics.tokenItems.WithLabelValues(name, signal, result).Add(float64(n))
	}
}
