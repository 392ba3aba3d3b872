package review

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Options are the thresholds of the review (the config file's
// detectors.review keys). Zero fields take the defaults.
type Options struct {
	// ChainMinHops is how many synchronous hops an entry operation's
	// chain needs to be reported (default 4).
	ChainMinHops int `yaml:"chain_min_hops"`
	// ChainWarningHops is how many make it a warning (default 6).
	ChainWarningHops int `yaml:"chain_warning_hops"`
	// ChainMinTraces is how many complete traces an entry operation needs
	// in the window before its chain is judged (default 5).
	ChainMinTraces int `yaml:"chain_min_traces"`

	// ChattyMinCalls is the median of requests per parent span to one
	// callee operation from which an edge is chatty (default 10).
	ChattyMinCalls float64 `yaml:"chatty_min_calls"`
	// ChattyMinParents is how many parent spans must have made such
	// calls in the window (default 5).
	ChattyMinParents int `yaml:"chatty_min_parents"`

	// RetryMinRetried is how many requests must have been retried in the
	// window before an edge's retries are judged (default 5).
	RetryMinRetried int `yaml:"retry_min_retried"`
	// RetryMaxGapMs is the median wait before a retry at or under which
	// retries come back-to-back (default 10 ms).
	RetryMaxGapMs float64 `yaml:"retry_max_gap_ms"`
	// RetryMinGrowing is the share of requests of three attempts or more
	// whose second wait is at least 1.5 times the first under which
	// retries that do wait have no exponential backoff (default 0.5).
	RetryMinGrowing float64 `yaml:"retry_min_growing"`

	// BreakerMinErrorRatio is the error ratio of the calls reaching the
	// callee, over the window and over its recent buckets, from which a
	// caller keeps calling a failing callee (default 0.5).
	BreakerMinErrorRatio float64 `yaml:"breaker_min_error_ratio"`
	// BreakerMinCalls is how many calls the edge needs in the window
	// (default 100).
	BreakerMinCalls uint64 `yaml:"breaker_min_calls"`
	// BreakerMinReached is the share of calls that still reach the callee
	// from which the caller does not fail fast (default 0.9).
	BreakerMinReached float64 `yaml:"breaker_min_reached"`
	// BreakerMinCallRatio is the calls to the callee per request the
	// caller serves from which the caller still calls at full rate
	// (default 0.5): a breaker that opens stops most calls, leaving a
	// probe now and then.
	BreakerMinCallRatio float64 `yaml:"breaker_min_call_ratio"`

	// TimeoutMinCalls is how many calls an edge needs in the window
	// before its timeouts are judged (default 100).
	TimeoutMinCalls uint64 `yaml:"timeout_min_calls"`
	// TimeoutMinTailRatio is how many times its p50 the callee's p99 must
	// be for it to have a long tail (default 5).
	TimeoutMinTailRatio float64 `yaml:"timeout_min_tail_ratio"`
	// TimeoutMinTailMs is the least callee p99 that is a long tail
	// (default 500 ms).
	TimeoutMinTailMs float64 `yaml:"timeout_min_tail_ms"`
	// TimeoutMinFollow is the share of the callee's p99 from which the
	// caller's p99 follows it, with no cut-off (default 0.9).
	TimeoutMinFollow float64 `yaml:"timeout_min_follow"`

	// AsyncMinStages is how many consumer stages (destination ->
	// consumer) a pipeline needs to be reported (default 2).
	AsyncMinStages int `yaml:"async_min_stages"`
	// AsyncWarningMs is the end-to-end p50 (from the first produce to the
	// last consumer's end) from which a pipeline is a warning (default
	// 10,000 ms).
	AsyncWarningMs float64 `yaml:"async_warning_ms"`

	// HubMinDegree is the distinct callers and callees a node needs to be
	// a hub (default 4).
	HubMinDegree int `yaml:"hub_min_degree"`
	// HubMinBetweenness is the betweenness centrality from which a node
	// is a hub (default 0.1).
	HubMinBetweenness float64 `yaml:"hub_min_betweenness"`
	// HubMinEntryShare is the share of the entry traffic (complete traces)
	// whose critical path crosses a node from which it is a gateway
	// (default 0.5).
	HubMinEntryShare float64 `yaml:"hub_min_entry_share"`
}

// Defaults of Options.
const (
	DefaultChainMinHops         = 4
	DefaultChainWarningHops     = 6
	DefaultChainMinTraces       = 5
	DefaultChattyMinCalls       = 10
	DefaultChattyMinParents     = 5
	DefaultRetryMinRetried      = 5
	DefaultRetryMaxGapMs        = 10
	DefaultRetryMinGrowing      = 0.5
	DefaultBreakerMinErrorRatio = 0.5
	DefaultBreakerMinCalls      = 100
	DefaultBreakerMinReached    = 0.9
	DefaultBreakerMinCallRatio  = 0.5
	DefaultTimeoutMinCalls      = 100
	DefaultTimeoutMinTailRatio  = 5
	DefaultTimeoutMinTailMs     = 500
	DefaultTimeoutMinFollow     = 0.9
	DefaultAsyncMinStages       = 2
	DefaultAsyncWarningMs       = 10_000
	DefaultHubMinDegree         = 4
	DefaultHubMinBetweenness    = 0.1
	DefaultHubMinEntryShare     = 0.5
)

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.ChainMinHops, DefaultChainMinHops)
	def(&o.ChainWarningHops, DefaultChainWarningHops)
	def(&o.ChainMinTraces, DefaultChainMinTraces)
	deff(&o.ChattyMinCalls, DefaultChattyMinCalls)
	def(&o.ChattyMinParents, DefaultChattyMinParents)
	def(&o.RetryMinRetried, DefaultRetryMinRetried)
	deff(&o.RetryMaxGapMs, DefaultRetryMaxGapMs)
	deff(&o.RetryMinGrowing, DefaultRetryMinGrowing)
	deff(&o.BreakerMinErrorRatio, DefaultBreakerMinErrorRatio)
	if o.BreakerMinCalls == 0 {
		o.BreakerMinCalls = DefaultBreakerMinCalls
	}
	deff(&o.BreakerMinReached, DefaultBreakerMinReached)
	deff(&o.BreakerMinCallRatio, DefaultBreakerMinCallRatio)
	if o.TimeoutMinCalls == 0 {
		o.TimeoutMinCalls = DefaultTimeoutMinCalls
	}
	deff(&o.TimeoutMinTailRatio, DefaultTimeoutMinTailRatio)
	deff(&o.TimeoutMinTailMs, DefaultTimeoutMinTailMs)
	deff(&o.TimeoutMinFollow, DefaultTimeoutMinFollow)
	def(&o.AsyncMinStages, DefaultAsyncMinStages)
	deff(&o.AsyncWarningMs, DefaultAsyncWarningMs)
	def(&o.HubMinDegree, DefaultHubMinDegree)
	deff(&o.HubMinBetweenness, DefaultHubMinBetweenness)
	deff(&o.HubMinEntryShare, DefaultHubMinEntryShare)
	return o
}

// Validate reports thresholds out of range: negative values, ratios above
// 1, a warning hop count under the reporting one.
func (o Options) Validate() error {
	var errs []error
	v := reflect.ValueOf(o)
	for i := range v.NumField() {
		key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int:
			if f.Int() < 0 {
				errs = append(errs, fmt.Errorf("review.%s = %d: must not be negative", key, f.Int()))
			}
		case reflect.Float64:
			if f.Float() < 0 {
				errs = append(errs, fmt.Errorf("review.%s = %g: must not be negative", key, f.Float()))
			}
		}
	}
	for key, r := range map[string]float64{"retry_min_growing": o.RetryMinGrowing, "breaker_min_error_ratio": o.BreakerMinErrorRatio,
		"breaker_min_reached": o.BreakerMinReached, "timeout_min_follow": o.TimeoutMinFollow, "hub_min_betweenness": o.HubMinBetweenness, "hub_min_entry_share": o.HubMinEntryShare} {
		if r > 1 {
			errs = append(errs, fmt.Errorf("review.%s = %g: a ratio in [0,1]", key, r))
		}
	}
	if d := o.WithDefaults(); d.ChainWarningHops < d.ChainMinHops {
		errs = append(errs, errors.New("review.chain_warning_hops must be at least chain_min_hops"))
	}
	return errors.Join(errs...)
}

// ThresholdDocs gives the unit and meaning of every Options key, for the
// catalogue of thresholds (detect.Catalogue).
func ThresholdDocs() map[string][2]string {
	return map[string][2]string{
		"chain_min_hops":          {"hops", "synchronous hops on an entry operation's chain from which the chain is reported (info)"},
		"chain_warning_hops":      {"hops", "synchronous hops from which a chain is a warning"},
		"chain_min_traces":        {"traces", "complete traces of the entry operation in the window before its chain is judged"},
		"chatty_min_calls":        {"calls", "median requests one parent span makes to the same callee operation from which the edge is chatty (N+1)"},
		"chatty_min_parents":      {"spans", "parent spans that made such calls in the window before an edge is judged chatty"},
		"retry_min_retried":       {"requests", "requests retried in the window before an edge's retries are judged"},
		"retry_max_gap_ms":        {"ms", "median wait between a failed attempt and its retry at or under which retries come back-to-back (no backoff)"},
		"retry_min_growing":       {"ratio", "share of requests of three attempts or more whose second wait is 1.5 times the first, under which waiting retries have no exponential backoff (info)"},
		"breaker_min_error_ratio": {"ratio", "error ratio of the calls reaching the callee, over the window and the recent buckets, from which the caller keeps calling a failing callee"},
		"breaker_min_calls":       {"calls", "calls on the edge in the window before it is judged for circuit breaking"},
		"breaker_min_reached":     {"ratio", "share of calls still reaching the callee from which the caller does not fail fast (a breaker would stop most)"},
		"breaker_min_call_ratio":  {"calls", "calls to the callee per request the caller serves (its incoming calls and messages, or for an entry its complete traces) from which it still calls at full rate: a breaker that opens leaves a probe now and then"},
		"timeout_min_calls":       {"calls", "calls on the edge in the window before its caller's timeouts are judged"},
		"timeout_min_tail_ratio":  {"factor", "the callee's p99 over its p50 from which it has a long tail"},
		"timeout_min_tail_ms":     {"ms", "the least callee p99 that is a long tail"},
		"timeout_min_follow":      {"ratio", "the caller's p99 over the callee's from which the caller follows the callee's worst cases with no cut-off (no timeout)"},
		"async_min_stages":        {"stages", "consumer stages (destination -> consumer) an async pipeline needs to be reported (info)"},
		"async_warning_ms":        {"ms", "end-to-end p50 of an async pipeline (first produce to last consume: the stages' delays and processing) from which it is a warning"},
		"hub_min_degree":          {"nodes", "distinct callers and callees a node needs to be a hub"},
		"hub_min_betweenness":     {"ratio", "betweenness centrality from which a node is a hub"},
		"hub_min_entry_share":     {"ratio", "share of complete traces whose critical path crosses a node from which it is a gateway"},
	}
}
