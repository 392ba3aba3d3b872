package detect

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Threshold documents one tunable of a detector: its key in the config
// file, its default, its unit and what it does.
type Threshold struct {
	Detector string
	Key      string
	Default  string
	Unit     string
	Doc      string
}

// thresholdDocs gives the unit and meaning of every config key, by
// detector. TestCatalogueCoversEveryOption keeps it complete.
var thresholdDocs = map[string]map[string][2]string{
	"retry_storm": {
		"budget":                 {"ratio", "retry ratio (retries / calls) above which a sync edge storms"},
		"min_retries":            {"retries", "retries in the window before an edge is judged"},
		"critical_amplification": {"factor", "amplification (attempts reaching the callee per request at the root) from which a storm is critical"},
	},
	"open_circuit": {
		"min_calls":              {"calls", "unanswered calls in the window before an edge is judged"},
		"min_unanswered_ratio":   {"ratio", "share of calls that must go unanswered"},
		"fast_ratio":             {"ratio", "unanswered calls count as failing fast when their p50 is at most this share of the edge's normal p50"},
		"fast_absolute":          {"duration", "the fail-fast bound used when no normal latency is known"},
		"half_open_max_answered": {"ratio", "share of answered calls below which the circuit is half-open (above it: partial failure, not a breaker)"},
		"max_remembered":         {"edges", "edges whose normal latency is remembered across evaluations"},
	},
	"bottleneck": {
		"min_share":               {"ratio", "self-time share of an entry operation's critical path from which a node is its bottleneck"},
		"min_traces":              {"traces", "complete traces of the entry operation in the window before it is judged"},
		"critical_share":          {"ratio", "self-time share from which a bottleneck is critical"},
		"saturation_flat":         {"ratio", "saturation: throughput counts as flat within this share of its mean"},
		"saturation_rise":         {"ratio", "saturation: latency and in-flight concurrency must both rise by this share"},
		"saturation_ticks":        {"evaluations", "saturation: evaluations the trend is judged over"},
		"saturation_min_requests": {"requests", "saturation: requests in the window before a node is judged"},
		"max_tracked":             {"nodes", "nodes (and entry operations) whose history is kept"},
		"degraded_ratio":          {"factor", "an entry operation is slow when its p95 is this many times its usual p95; only then is its dominant node a bottleneck"},
		"latency_objective_ms":    {"ms", "also slow whenever an entry's p95 exceeds this (0: off)"},
	},
	"consumer_lag": {
		"max_seconds":          {"seconds", "time lag above which a group is behind even when its lag is steady"},
		"max_drain_seconds":    {"seconds", "drain time above which a group is behind"},
		"trace_min_delay_ms":   {"ms", "without broker metrics: producer-to-consumer delay p95 from which growth is judged"},
		"trace_growth_ticks":   {"evaluations", "without broker metrics: evaluations over which the delay must grow each time"},
		"trace_rate_shortfall": {"ratio", "without broker metrics: consume rate below this share of the produce rate"},
		"max_tracked":          {"edges", "consumer edges whose delay history is kept"},
	},
}

// Catalogue lists every detector threshold with its default, from the
// detectors' own defaults, so documentation and config validation cannot
// drift from the code.
func Catalogue() []Threshold {
	var out []Threshold
	for _, d := range []struct {
		name string
		opts any
	}{
		{"retry_storm", RetryStormOptions{}.withDefaults()},
		{"open_circuit", OpenCircuitOptions{}.withDefaults()},
		{"consumer_lag", ConsumerLagOptions{}.withDefaults()},
		{"bottleneck", BottleneckOptions{}.withDefaults()},
	} {
		v := reflect.ValueOf(d.opts)
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			doc := thresholdDocs[d.name][key]
			out = append(out, Threshold{Detector: d.name, Key: key, Default: fmtDefault(v.Field(i).Interface()), Unit: doc[0], Doc: doc[1]})
		}
	}
	return out
}

func fmtDefault(v any) string {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case float64:
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprint(v)
}
