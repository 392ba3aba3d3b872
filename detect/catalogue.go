package detect

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
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
		"min_calls":              {"calls", "unanswered calls an edge needs before it opens: over the window, or over the recent buckets among all the callee's callers when the calls try to connect; an open edge stays open on one"},
		"min_recent_calls":       {"calls", "calls an edge makes at its rate in the recent buckets (10-15s by default) for it to be judged on them, where one call failing without trying, none answered, suffices and it fires within the pair TTL and a few intervals; slower edges are judged over the window"},
		"min_unanswered_ratio":   {"ratio", "share of calls that must go unanswered"},
		"fast_ratio":             {"ratio", "unanswered calls count as failing fast when their p50 is at most this share of the edge's normal p50"},
		"fast_absolute":          {"duration", "the fail-fast bound used when no normal latency is known"},
		"half_open_max_answered": {"ratio", "share of answered calls below which the circuit is half-open (above it: partial failure, not a breaker)"},
		"attempt_min":            {"duration", "unanswered p50 from which the calls tried to connect (a refused connection takes a round trip): cause callee_unreachable rather than breaker_open, when nothing else tells"},
		"max_remembered":         {"edges", "edges whose normal latency is remembered across evaluations"},
	},
	"bottleneck": {
		"min_share":                {"ratio", "part of an entry operation's slowdown (mean latency over its usual, counted as at least degraded_ratio-1 of the usual) that the rise of one node's own time must account for to make it the bottleneck; with latency_objective_ms, also the self-time share of the critical path from which a node is the bottleneck of an entry over the objective"},
		"min_traces":               {"traces", "complete traces of the entry operation in the window before it is judged"},
		"critical_share":           {"ratio", "self-time share of the critical path from which a bottleneck is critical"},
		"saturation_flat":          {"ratio", "saturation: throughput counts as flat within this share of its mean"},
		"saturation_rise":          {"ratio", "saturation: latency and in-flight concurrency must both rise by this share"},
		"saturation_ticks":         {"evaluations", "saturation: evaluations the trend is judged over"},
		"saturation_min_requests":  {"requests", "saturation: requests in the window before a node is judged"},
		"saturation_min_in_flight": {"requests", "saturation: least in-flight concurrency (rate x p50) at the last evaluation; below it the node is mostly idle"},
		"max_tracked":              {"nodes", "nodes (and entry operations) whose history is kept"},
		"degraded_ratio":           {"factor", "an entry operation is slow when its p95 over the window is this many times its usual; only then is a node whose own time rose to this many times its usual a bottleneck (a node that always dominates is the path's normal)"},
		"usual_minutes":            {"minutes", "horizon of the usual latency of an entry and of each node's usual self time on its path; slow evaluations teach it four times more slowly, so a permanent shift stops paging after a few horizons"},
		"min_rise_ms":              {"ms", "least rise of a node's own time per request that makes it a bottleneck: a fast path a millisecond slower is no page"},
		"latency_objective_ms":     {"ms", "also a bottleneck: the node doing at least min_share of the work of an entry whose p95 exceeds this, usual or not (0: off)"},
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

// messageKey is the config key of a detector's summary template.
const messageKey = "message"

// messageTemplates are the default summary templates (text/template
// syntax, with the functions of messageFuncs), by detector. Each renders
// the one-sentence Observation.Summary from the detector's message data;
// the data types and their doc tags tell which fields there are.
// TestDefaultSummaries pins what they render.
var messageTemplates = map[finding.Kind]string{
	finding.KindRetryStorm: `{{.Source}} retries {{pct .RetryRatio}} of its calls to {{.Target}} (` +
		`{{if .Metric}}{{num .Metric.Retries}} retries in {{num .Metric.Seconds}} s, reported as metrics by {{.Metric.Name}})` +
		`{{else}}{{num .RetriesPerMin}} retries/min); each request entering at the root reaches {{.Target}} {{num .Amplification}} times{{end}}`,
	finding.KindOpenCircuit: `{{if .FromTraces}}` +
		`{{possessive .Source}} calls to {{.Target}} fail fast without reaching it; cause: ` +
		`{{if eq .Cause "callee_unreachable"}}{{.Target}} unreachable{{else}}{{possessive .Source}} circuit breaker open{{end}} ({{.CauseReason}}): ` +
		`{{.Unanswered}} of {{.Requests}} calls in the last {{.Span}} never reached {{.Target}}, failing in {{ms .UnansweredP50Ms}} ms` +
		`{{if eq .NormalFrom "absolute"}}, with no normal latency known to compare (fast below {{ms .FastBoundMs}} ms)` +
		`{{else}} against {{ms .NormalP50Ms}} ms normally{{end}}` +
		`{{else}}` +
		`{{possessive .Source}} circuit breaker {{if ne .Breaker.Name .Target}}{{printf "%q" .Breaker.Name}} {{end}}` +
		`for {{.Target}} reports {{.Breaker.State}} (metrics), so its calls fail fast without reaching {{.Target}}` +
		`{{if .Requests}}; {{.Answered}} of {{.Requests}} calls in the last {{.Window}} reached it{{end}}` +
		`{{end}}`,
	finding.KindConsumerLag: `consumer group {{.Group}} on {{.Destination}} ` +
		`{{if eq .Source "traces"}}is falling behind (from traces): it consumes {{printf "%.3g" .ConsumeRatePerS}}/s ` +
		`of the {{printf "%.3g" .ProduceRatePerS}}/s produced, and the producer-to-consumer delay p95 grew to {{secs .DelayP95Seconds}}` +
		`{{else if eq .Status "stopped"}}has stopped consuming` +
		`{{else if eq .Status "stalled"}}has stalled: its position is not moving` +
		`{{else if eq .Status "warning"}}is falling further behind` +
		`{{else if eq .Over "max_seconds"}}is more than {{printf "%.0f" .MaxSeconds}}s behind` +
		`{{else}}needs more than {{printf "%.0f" .MaxDrainSeconds}}s to drain its backlog{{end}}` +
		`{{if .LagMessages}} ({{count .LagMessages}} messages behind{{if .LagSeconds}}, {{secs .LagSeconds}}{{end}}){{end}}` +
		`{{if .Reason}}: {{.Reason}}{{end}}`,
	finding.KindBottleneck: `{{if .Top}}{{if .Top.Slowdown}}{{possessive .Node}} own time on the critical path of {{.Top.Operation}} at {{.Top.Entry}} ` +
		`rose from {{ms .Top.UsualSelfMs}} to {{ms .Top.SelfMs}} ms a request, {{pct .Top.Explained}} of its slowdown ` +
		`(mean {{ms .Top.MeanMs}} ms, {{printf "%.1f" .Top.Slowdown}}x its usual {{ms .Top.UsualMeanMs}} ms; ` +
		`p95 {{num .Top.P95Ms}} ms; {{pct .Top.Share}} of the path over {{.Top.Traces}} traces)` +
		`{{else}}{{.Node}} does {{pct .Top.Share}} of the work on the critical path of {{.Top.Operation}} at {{.Top.Entry}} ` +
		`(p95 {{num .Top.P95Ms}} ms over {{.Top.Traces}} traces){{end}}` +
		`{{if eq .OtherEntries 1}}, and of 1 other entry operation{{else if gt .OtherEntries 1}}, and of {{.OtherEntries}} other entry operations{{end}}` +
		`{{end}}` +
		`{{if .Saturation}}{{if .Top}}; it is also saturated: {{else}}{{.Node}} is saturated: {{end}}` +
		`throughput flat at {{num .Saturation.RatePerS}}/s while its p95 rose from {{num .Saturation.FromP95Ms}} to {{num .Saturation.ToP95Ms}} ms ` +
		`and its in-flight requests from {{num .Saturation.FromConcurrency}} to {{num .Saturation.ToConcurrency}} ` +
		`over the last {{.Saturation.Evaluations}} evaluations{{end}}`,
}

// messageData is the type of the data each detector's template is
// executed on.
var messageData = map[finding.Kind]reflect.Type{
	finding.KindRetryStorm:  reflect.TypeFor[retryStormMessage](),
	finding.KindOpenCircuit: reflect.TypeFor[openCircuitMessage](),
	finding.KindConsumerLag: reflect.TypeFor[consumerLagMessage](),
	finding.KindBottleneck:  reflect.TypeFor[bottleneckMessage](),
}

// Message documents the summary template of one detector: its key in the
// config file, its default and the fields the template can use.
type Message struct {
	Detector string
	Key      string
	Template string // the default, in text/template syntax
	Fields   []MessageField
}

// MessageField is a field of a detector's message data (Name as written in
// a template: ".Source", ".Breaker.Name"), or a function a template may
// call.
type MessageField struct {
	Name string
	Doc  string
}

// Messages lists every detector's default summary template with the
// fields available to it, in the order of Catalogue. A detector's
// "message" option replaces the default.
func Messages() []Message {
	out := make([]Message, 0, len(messageTemplates))
	for _, k := range []finding.Kind{finding.KindRetryStorm, finding.KindOpenCircuit, finding.KindConsumerLag, finding.KindBottleneck} {
		out = append(out, Message{Detector: k.String(), Key: messageKey, Template: messageTemplates[k], Fields: messageFields(messageData[k], "")})
	}
	return out
}

// MessageFuncs lists the functions a message template may call besides
// text/template's built-ins (printf, eq, if, ...).
func MessageFuncs() []MessageField {
	return slices.Clone(messageFuncDocs)
}

// messageFields lists the exported fields of struct type t with their doc
// tags, descending into struct and pointer-to-struct fields.
func messageFields(t reflect.Type, prefix string) []MessageField {
	var out []MessageField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + "." + f.Name
		out = append(out, MessageField{Name: name, Doc: f.Tag.Get("doc")})
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, messageFields(ft, name)...)
		}
	}
	return out
}

// Catalogue lists every detector threshold with its default, from the
// detectors' own defaults, so documentation and config validation cannot
// drift from the code. The summary templates (key "message") are listed
// by Messages instead. The communication review's thresholds
// (graph/review, documented there) come last, as detector "review": the
// config file's detectors.review.
func Catalogue() []Threshold {
	var out []Threshold
	for _, d := range []struct {
		name string
		opts any
		docs map[string][2]string
	}{
		{"retry_storm", RetryStormOptions{}.withDefaults(), thresholdDocs["retry_storm"]},
		{"open_circuit", OpenCircuitOptions{}.withDefaults(), thresholdDocs["open_circuit"]},
		{"consumer_lag", ConsumerLagOptions{}.withDefaults(), thresholdDocs["consumer_lag"]},
		{"bottleneck", BottleneckOptions{}.withDefaults(), thresholdDocs["bottleneck"]},
		{"review", review.Options{}.WithDefaults(), review.ThresholdDocs()},
	} {
		v := reflect.ValueOf(d.opts)
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "-" || key == messageKey {
				continue // the message template is listed by Messages
			}
			doc := d.docs[key]
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
