package realism

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Resource is one replica's OpenTelemetry resource.
type Resource struct {
	Service   string
	Namespace string
	Instance  string // service.instance.id, unique per replica
	Version   string
	Language  string // telemetry.sdk.language
}

// Attr is one span attribute: a string, or an integer when Int is set.
type Attr struct {
	Key   string
	Str   string
	Int   int64
	IsInt bool
}

// S returns a string attribute.
func S(k, v string) Attr { return Attr{Key: k, Str: v} }

// I returns an integer attribute.
func I(k string, v int64) Attr { return Attr{Key: k, Int: v, IsInt: true} }

// SpanRef is a span context a link points to.
type SpanRef struct {
	Trace [16]byte
	Span  [8]byte
}

// Span is one simulated span as the SDK holds it until export.
type Span struct {
	Trace      [16]byte
	ID, Parent [8]byte
	Name       string
	Kind       ptrace.SpanKind
	Start, End time.Time
	Error      bool
	Attrs      []Attr
	Links      []SpanRef
	// Fault marks a span the injected fault shaped (its first delivery
	// makes the fault visible).
	Fault bool

	replica   *replica
	publishTo string // a producer span's topic: its message is published when it ends
}

// Traces builds the OTLP request of e: one ResourceSpans with the replica's
// resource, one ScopeSpans, the spans in queue order.
func (e Export) Traces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	r := e.Resource
	ra.EnsureCapacity(6)
	ra.PutStr("service.name", r.Service)
	if r.Namespace != "" {
		ra.PutStr("service.namespace", r.Namespace)
	}
	ra.PutStr("service.instance.id", r.Instance)
	ra.PutStr("service.version", r.Version)
	ra.PutStr("telemetry.sdk.name", "opentelemetry")
	ra.PutStr("telemetry.sdk.language", r.Language)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	ss.Scope().SetVersion("0.70.0")
	spans := ss.Spans()
	spans.EnsureCapacity(len(e.Spans))
	for _, s := range e.Spans {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(s.Trace))
		sp.SetSpanID(pcommon.SpanID(s.ID))
		sp.SetParentSpanID(pcommon.SpanID(s.Parent))
		sp.SetName(s.Name)
		sp.SetKind(s.Kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.Start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.End))
		if s.Error {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		a := sp.Attributes()
		a.EnsureCapacity(len(s.Attrs))
		for _, kv := range s.Attrs {
			if kv.IsInt {
				a.PutInt(kv.Key, kv.Int)
			} else {
				a.PutStr(kv.Key, kv.Str)
			}
		}
		for _, l := range s.Links {
			pl := sp.Links().AppendEmpty()
			pl.SetTraceID(pcommon.TraceID(l.Trace))
			pl.SetSpanID(pcommon.SpanID(l.Span))
		}
	}
	return td
}
