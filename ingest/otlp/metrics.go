package otlp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values. Every label takes its values from these fixed sets; no
// request data ever becomes a label value.
const (
	transportGRPC = "grpc"
	transportHTTP = "http"

	signalTraces  = "traces"
	signalMetrics = "metrics"
)

// Request outcomes (label "outcome" of cartograph_receiver_requests_total).
const (
	outcomeSuccess          = "success"                // accepted in full
	outcomePartial          = "partial"                // accepted except some items (partial_success)
	outcomeRefused          = "refused"                // backpressure: in-flight limit or ingest.ErrOverloaded
	outcomeUnavailable      = "unavailable"            // ingest.ErrUnavailable
	outcomeError            = "error"                  // any other consumer error, answered as unavailable
	outcomeRejected         = "rejected"               // consumer returned a permanent error
	outcomeBadRequest       = "bad_request"            // undecodable body or compression, bad method
	outcomeTooLarge         = "too_large"              // body above MaxRequestBytes
	outcomeUnsupportedMedia = "unsupported_media_type" // unknown content type or content encoding
	outcomeCanceled         = "canceled"               // the request's context ended (sender gone, shutdown) before it was done
	outcomeUnauthenticated  = "unauthenticated"        // no valid bearer token (Options.Auth)
)

// Item results (label "result" of cartograph_receiver_items_total).
const (
	itemsAccepted = "accepted" // handed to the consumer and taken
	itemsRefused  = "refused"  // backpressure or unavailable: the sender should retry them
	itemsRejected = "rejected" // partial success or permanent error: the sender must not retry them
)

// Bad request reasons (label "reason" of cartograph_receiver_bad_requests_total).
const (
	reasonMalformed           = "malformed"              // body does not decode as OTLP
	reasonInvalidCompression  = "invalid_compression"    // body is not valid gzip
	reasonUnsupportedEncoding = "unsupported_encoding"   // unknown Content-Encoding / grpc-encoding
	reasonUnsupportedMedia    = "unsupported_media_type" // unknown Content-Type
	reasonTooLarge            = "too_large"              // above MaxRequestBytes, compressed or not
	reasonMethodNotAllowed    = "method_not_allowed"     // HTTP method other than POST
	reasonReadError           = "read_error"             // the body could not be read from the connection
)

// metrics are the receiver's own Prometheus metrics.
type metrics struct {
	requests      *prometheus.CounterVec
	items         *prometheus.CounterVec
	badRequests   *prometheus.CounterVec
	inFlight      prometheus.Gauge
	inFlightLimit prometheus.Gauge
	duration      *prometheus.HistogramVec
	authFailures  *prometheus.CounterVec
	tokenItems    *prometheus.CounterVec // by token name; only with Options.Auth
}

func newMetrics(maxInFlight int) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_receiver_requests_total",
			Help: "OTLP export requests answered, by transport, signal and outcome.",
		}, []string{"transport", "signal", "outcome"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_receiver_items_total",
			Help: "Spans (signal=traces) or data points (signal=metrics) received, by result: " +
				"accepted, refused (backpressure or unavailable; retryable) or rejected (partial success or permanent error).",
		}, []string{"transport", "signal", "result"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_receiver_bad_requests_total",
			Help: "OTLP export requests refused before reaching the pipeline because of the request itself, by reason.",
		}, []string{"transport", "signal", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_receiver_in_flight_requests",
			Help: "OTLP export requests being processed now, over all transports and signals.",
		}),
		inFlightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_receiver_in_flight_requests_limit",
			Help: "Most OTLP export requests processed at once; more are refused with 429 / RESOURCE_EXHAUSTED.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cartograph_receiver_request_duration_seconds",
			Help:    "Time to answer an OTLP export request, including the consumer, by transport and signal.",
			Buckets: prometheus.DefBuckets,
		}, []string{"transport", "signal"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_receiver_auth_failures_total",
			Help: "OTLP export requests refused for want of a valid bearer token (gRPC UNAUTHENTICATED, HTTP 401), by reason: missing or invalid.",
		}, []string{"transport", "signal", "reason"}),
		tokenItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_receiver_token_items_total",
			Help: "Spans (signal=traces) or data points (signal=metrics) received from senders authenticated by a bearer token, by token name and result " +
				"(as cartograph_receiver_items_total).",
		}, []string{"token", "signal", "result"}),
	}
	m.inFlightLimit.Set(float64(maxInFlight))
	// Create every series up front so rates start from zero.
	allOutcomes := []string{
		outcomeSuccess, outcomePartial, outcomeRefused, outcomeUnavailable, outcomeError,
		outcomeRejected, outcomeBadRequest, outcomeTooLarge, outcomeUnsupportedMedia, outcomeCanceled,
		outcomeUnauthenticated,
	}
	allReasons := []string{
		reasonMalformed, reasonInvalidCompression, reasonUnsupportedEncoding, reasonUnsupportedMedia,
		reasonTooLarge, reasonMethodNotAllowed, reasonReadError,
	}
	for _, tr := range []string{transportGRPC, transportHTTP} {
		for _, sig := range []string{signalTraces, signalMetrics} {
			for _, o := range allOutcomes {
				m.requests.WithLabelValues(tr, sig, o)
			}
			for _, res := range []string{itemsAccepted, itemsRefused, itemsRejected} {
				m.items.WithLabelValues(tr, sig, res)
			}
			for _, reason := range allReasons {
				m.badRequests.WithLabelValues(tr, sig, reason)
			}
			m.duration.WithLabelValues(tr, sig)
			for _, reason := range []string{authMissing, authInvalid} {
				m.authFailures.WithLabelValues(tr, sig, reason)
			}
		}
	}
	return m
}

// register registers every metric on reg, or none: on error it unregisters
// those it had registered.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.requests, m.items, m.badRequests, m.inFlight, m.inFlightLimit, m.duration, m.authFailures, m.tokenItems}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// request records one answered request.
func (m *metrics) request(transport, signal, outcome string, took time.Duration) {
	m.requests.WithLabelValues(transport, signal, outcome).Inc()
	m.duration.WithLabelValues(transport, signal).Observe(took.Seconds())
}

// badRequest records one request refused because of the request itself.
func (m *metrics) badRequest(transport, signal, reason string) {
	m.badRequests.WithLabelValues(transport, signal, reason).Inc()
}

// addItems adds n items with the given result.
func (m *metrics) addItems(transport, signal, result string, n int64) {
	if n > 0 {
		m.items.WithLabelValues(transport, signal, result).Add(float64(n))
	}
}

// authFailure records one request refused for want of a valid token.
func (m *metrics) authFailure(transport, signal, reason string) {
	m.authFailures.WithLabelValues(transport, signal, reason).Inc()
}

// tokenSeries creates the per-token series of names up front.
func (m *metrics) tokenSeries(names []string) {
	for _, name := range names {
		for _, sig := range []string{signalTraces, signalMetrics} {
			for _, res := range []string{itemsAccepted, itemsRefused, itemsRejected} {
				m.tokenItems.WithLabelValues(name, sig, res)
			}
		}
	}
}
