package semconv

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/seed-a49a8342/cartograph/graph"
)

// MaxNameBytes bounds every name a span gives the graph (service,
// namespace, operation, peer, destination, consumer group). The graph keeps
// names for as long as it runs, so a sender must not be able to make it keep
// megabytes per node: a longer name is cut at a character boundary and ends
// in "…".
const MaxNameBytes = 256

// Reasons of cartograph_ingest_names_sanitized_total.
const (
	reasonTooLong     = "too_long"     // cut to MaxNameBytes
	reasonInvalidUTF8 = "invalid_utf8" // invalid bytes replaced by U+FFFD
)

// sanitize bounds and repairs the names of s but its resource's (service
// and namespace: sanitizeResource), counting what it changed.
// Invalid UTF-8 is replaced, so that two names that differ only in invalid
// bytes are one node, as they are once encoded as JSON.
func (t *translator) sanitize(s *graph.Span) {
	for _, p := range [...]*string{&s.Operation, &s.Target, &s.Peer.Group, &s.Peer.Name,
		&s.Destination.Group, &s.Destination.Name, &s.ConsumerGroup} {
		if v := *p; v != "" && (len(v) > MaxNameBytes || !utf8.ValidString(v)) {
			*p = t.sanitizeName(v)
		}
	}
}

// resourceNames are a resource's service and namespace, sanitized once for
// all its spans, and what sanitizing them changed (0 or 1 of each), to be
// counted for each span as if each span's names were sanitized.
type resourceNames struct {
	service, namespace   string
	instance             string       // service.instance.id, sanitized
	attrs                []graph.Attr // kept attributes (resourceAttrs.keep), sanitized
	tooLong, invalidUTF8 int
}

// sanitizeResource sanitizes service and namespace.
func sanitizeResource(service, namespace string) resourceNames {
	var t translator
	r := resourceNames{service: service, namespace: namespace}
	for _, p := range [...]*string{&r.service, &r.namespace} {
		if v := *p; len(v) > MaxNameBytes || !utf8.ValidString(v) {
			*p = t.sanitizeName(v)
		}
	}
	r.tooLong, r.invalidUTF8 = t.tooLong, t.invalidUTF8
	return r
}

func (t *translator) sanitizeName(v string) string {
	if !utf8.ValidString(v) {
		t.invalidUTF8++
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if len(v) > MaxNameBytes {
		t.tooLong++
		cut := MaxNameBytes - len("…")
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut] + "…"
	}
	return v
}

// DefaultNodeAttributes returns the resource attributes a collector keeps
// on service nodes unless told otherwise (--node-attributes): its version
// (graph/changes records a new one) and those services are grouped by
// (Kubernetes namespace and workload, environment, owning team).
func DefaultNodeAttributes() []string {
	return []string{"service.version", "k8s.namespace.name", "k8s.deployment.name", "k8s.statefulset.name", "deployment.environment.name", "deployment.environment", "team", "service.owner"}
}

// CheckNodeAttributes checks a list of resource attributes to keep on
// service nodes (Options.NodeAttributes): at most graph.MaxNodeAttributes,
// none empty, repeated or read already (service.name, service.namespace).
func CheckNodeAttributes(keys []string) error {
	if len(keys) > graph.MaxNodeAttributes {
		return fmt.Errorf("semconv: %d node attributes, at most %d", len(keys), graph.MaxNodeAttributes)
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		switch {
		case k == "" || len(k) > MaxNameBytes:
			return fmt.Errorf("semconv: node attribute %q: want a name of 1 to %d bytes", k, MaxNameBytes)
		case k == "service.name" || k == "service.namespace":
			return fmt.Errorf("semconv: node attribute %q is kept already (the node's name and namespace)", k)
		case seen[k]:
			return fmt.Errorf("semconv: node attribute %q named twice", k)
		}
		seen[k] = true
	}
	return nil
}
