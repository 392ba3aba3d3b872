package semconv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/graph"
)

// attrSink keeps, per service, the kept attributes of its spans (copied:
// the pipeline reuses their arena).
type attrSink struct {
	mu        sync.Mutex
	attrs     map[string][][]graph.Attr
	instances map[string][]string // service.instance.id of each span
}

func (s *attrSink) ConsumeSpans(spans []graph.Span) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		a := make([]graph.Attr, len(sp.Attributes))
		for i, kv := range sp.Attributes {
			a[i] = graph.Attr{Key: strings.Clone(kv.Key), Value: strings.Clone(kv.Value)}
		}
		s.attrs[strings.Clone(sp.Service)] = append(s.attrs[strings.Clone(sp.Service)], a)
		if s.instances != nil {
			s.instances[strings.Clone(sp.Service)] = append(s.instances[strings.Clone(sp.Service)], strings.Clone(sp.Instance))
		}
	}
	return 0, ""
}

// TestNodeAttributes sends resources with and without the attributes a
// pipeline keeps, through pdata (ConsumeTraces) and the wire
// (DecodeTracesProto): both keep the same, in the order they were named,
// string values only, long values cut and counted; and each span carries
// its resource's service.instance.id (a string; kept or not).
func TestNodeAttributes(t *testing.T) {
	long := strings.Repeat("x", MaxNameBytes+40)
	td := buildTraces(t,
		resourceSpec{attrs: map[string]any{
			"service.name": "checkout", "service.namespace": "shop",
			"team": "payments", "k8s.namespace.name": "shop-prod", "host.name": "node-1", "k8s.deployment.name": 3,
			"service.instance.id": "checkout-7f9c-1",
		}, spans: []spanSpec{{name: "a", kind: server}, {name: "b", kind: server}}},
		resourceSpec{attrs: map[string]any{"service.name": "cart", "service.instance.id": 42}, spans: []spanSpec{{name: "c", kind: server}}},
		resourceSpec{attrs: map[string]any{"service.name": "search", "team": long, "k8s.deployment.name": "search-v2"}, spans: []spanSpec{{name: "d", kind: server}}},
	)
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	keep := []string{"k8s.namespace.name", "k8s.deployment.name", "team"}
	want := map[string][]graph.Attr{
		"checkout": {{Key: "k8s.namespace.name", Value: "shop-prod"}, {Key: "team", Value: "payments"}},
		"cart":     {},
		"search":   {{Key: "k8s.deployment.name", Value: "search-v2"}, {Key: "team", Value: long[:MaxNameBytes-len("…")] + "…"}},
	}
	jsonBody, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	lateBody := resourceLast(t, jsonBody)
	for _, path := range []string{"pdata", "wire", "json", "json-resource-last"} {
		t.Run(path, func(t *testing.T) {
			sink := &attrSink{attrs: map[string][][]graph.Attr{}, instances: map[string][]string{}}
			reg := prometheus.NewRegistry()
			p, err := NewPipeline(Options{Sink: sink, NodeAttributes: keep, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second request reuses the pooled arena
				if path == "pdata" {
					err = p.ConsumeTraces(context.Background(), td)
				} else {
					var d interface {
						Consume(context.Context) error
						Release()
					}
					switch path {
					case "wire":
						d, err = p.DecodeTracesProto(slices.Clone(body))
					case "json":
						d, err = p.DecodeTracesJSON(slices.Clone(jsonBody))
					default:
						// The reader starts the request again once it
						// finds a resource after its spans: the kept
						// attributes must survive that.
						d, err = p.DecodeTracesJSON(slices.Clone(lateBody))
					}
					if err == nil {
						err = d.Consume(context.Background())
						d.Release()
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for svc, w := range want {
				got := sink.attrs[svc]
				if len(got) == 0 {
					t.Fatalf("%s: no spans", svc)
				}
				for _, a := range got {
					if !slices.Equal(a, w) {
						t.Errorf("%s: attributes %v, want %v", svc, a, w)
					}
				}
			}
			for svc, want := range map[string]string{"checkout": "checkout-7f9c-1", "cart": "", "search": ""} {
				for _, got := range sink.instances[svc] {
					if got != want {
						t.Errorf("%s: instance %q, want %q", svc, got, want)
					}
				}
			}
			// The long value is counted as cut, once per span, each time.
			if got := counterValues(t, reg)["cartograph_ingest_names_sanitized_total{reason=too_long}"]; got != 2 {
				t.Errorf("too_long = %v, want 2 (one span of the long value, two requests)", got)
			}
		})
	}
}

// TestNodeAttributesNone keeps nothing by default.
func TestNodeAttributesNone(t *testing.T) {
	td := buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": "checkout", "team": "payments"}, spans: []spanSpec{{name: "a", kind: server}}})
	sink := &attrSink{attrs: map[string][][]graph.Attr{}}
	p, err := NewPipeline(Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	if a := sink.attrs["checkout"][0]; len(a) != 0 {
		t.Errorf("attributes %v kept without NodeAttributes", a)
	}
}

func TestCheckNodeAttributes(t *testing.T) {
	many := make([]string, graph.MaxNodeAttributes+1)
	for i := range many {
		many[i] = "a" + strings.Repeat("b", i)
	}
	tests := []struct {
		name string
		keys []string
		bad  string // a part of the error, "" when valid
	}{
		{"none", nil, ""},
		{"defaults", []string{"k8s.namespace.name", "team"}, ""},
		{"empty name", []string{"team", ""}, "want a name"},
		{"twice", []string{"team", "team"}, "named twice"},
		{"service.name", []string{"service.name"}, "kept already"},
		{"too many", many, "at most"},
		{"at the limit", many[:graph.MaxNodeAttributes], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNodeAttributes(tt.keys)
			switch {
			case tt.bad == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
				t.Fatalf("error %v, want one saying %q", err, tt.bad)
			}
			if _, perr := NewPipeline(Options{Sink: &attrSink{}, NodeAttributes: tt.keys}); (perr == nil) != (err == nil) {
				t.Fatalf("NewPipeline: %v, CheckNodeAttributes: %v", perr, err)
			}
		})
	}
}

// resourceLast rewrites an OTLP/JSON export request so that every
// resourceSpans object has its "resource" after its "scopeSpans".
func resourceLast(t *testing.T, body []byte) []byte {
	t.Helper()
	var req struct {
		ResourceSpans []map[string]json.RawMessage `json:"resourceSpans"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`{"resourceSpans":[`)
	for i, rs := range req.ResourceSpans {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"scopeSpans":%s,"resource":%s}`, rs["scopeSpans"], rs["resource"])
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
