// Package changes records what changed on the graph: a service's new
// version (service.version, deployment.environment.name,
// k8s.deployment.name, its instances replaced), a dependency that appeared
// or went away, a node that appeared or went away. Changes are evidence:
// incidents cite those shortly before they began, charts and the graph
// diff draw them as markers, and GET /api/v1/changes lists them.
//
// A Recorder learns resources from the spans ingest hands on (Observe) and
// nodes and edges from each tick's snapshot (Record). It keeps the newest
// changes in a bounded ring and, when given a Store, writes them there so
// that past ones outlive a restart.
package changes

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// Kind is what kind of change a Change is (SPEC.md: version, edge_added,
// edge_removed, node_added, node_removed).
type Kind uint8

// Kinds of change.
const (
	// KindVersion: a service was deployed anew: a new service.version,
	// deployment.environment.name or k8s.deployment.name (Change.Attribute
	// says which), or most of its instances replaced at once
	// (Attribute service.instance.id: a restart or a redeploy that kept
	// its version).
	KindVersion Kind = iota + 1
	KindEdgeAdded
	KindEdgeRemoved
	KindNodeAdded
	KindNodeRemoved
)

var kindNames = enumtext.Names[Kind]{Type: "change kind", List: []string{"", "version", "edge_added", "edge_removed", "node_added", "node_removed"}}

// String returns the name of the value.
func (k Kind) String() string { return kindNames.String(k) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (k Kind) MarshalText() ([]byte, error) { return kindNames.Marshal(k) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are
// rejected.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := kindNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	*k = v
	return nil
}

// Resource attributes a version change is told by (Change.Attribute).
const (
	AttrVersion     = "service.version"
	AttrEnvironment = "deployment.environment.name"
	AttrDeployment  = "k8s.deployment.name"
	AttrInstance    = "service.instance.id"
)

// tracked are the kept node attributes whose new values are changes.
var tracked = [...]string{AttrVersion, AttrEnvironment, AttrDeployment}

// Change is one change, as GET /api/v1/changes lists it. A node change
// names its node (Node, NodeID); an edge change its edge (Source and
// Target by name, EdgeID). From and To are the values before and after
// (version changes only; omitted for the others). Values are read only
// once recorded.
type Change struct {
	// ID is stable: the same change has the same id in every answer and
	// after a restart (a hash of what changed, when, and from and to).
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`

	Node   string `json:"node,omitempty"`
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	NodeID string `json:"node_id,omitempty"`
	EdgeID string `json:"edge_id,omitempty"`
	// SourceID and TargetID are an edge change's node ids.
	SourceID string `json:"source_id,omitempty"`
	TargetID string `json:"target_id,omitempty"`

	// Attribute is the resource attribute a version change was seen in.
	Attribute string `json:"attribute,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// Summary says it in words ("version 1.42 of payment (was 1.41)").
	Summary string `json:"summary"`
}

// Label is the change's short label for a chart marker.
func (c Change) Label() string {
	switch c.Kind {
	case KindVersion:
		if c.Attribute == AttrInstance {
			return "restart " + c.Node
		}
		if c.Attribute == AttrVersion {
			return c.Node + " " + c.To
		}
		return c.Node + " " + c.Attribute + "=" + c.To
	case KindEdgeAdded:
		return "+ " + c.Source + " → " + c.Target
	case KindEdgeRemoved:
		return "− " + c.Source + " → " + c.Target
	case KindNodeAdded:
		return "+ " + c.Node
	case KindNodeRemoved:
		return "− " + c.Node
	}
	return c.Summary
}

// On reports whether the change is on node id: the node itself, or an
// edge from or to it.
func (c Change) On(id string) bool {
	if c.NodeID != "" {
		return c.NodeID == id
	}
	return c.SourceID == id || c.TargetID == id
}

// finish sets the change's id from what it says, its time to the
// millisecond (as storage keeps it), in UTC.
func (c *Change) finish() {
	c.At = c.At.UTC().Truncate(time.Millisecond)
	h := sha256.New()
	for _, s := range []string{c.Kind.String(), c.NodeID, c.EdgeID, c.Attribute, c.From, c.To, strconv.FormatInt(c.At.UnixMilli(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	c.ID = "chg-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// Between returns the changes of cs at or after from and at or before
// to, oldest first (ties by id).
func Between(cs []Change, from, to time.Time) []Change {
	var out []Change
	for _, c := range cs {
		if !c.At.Before(from) && !c.At.After(to) {
			out = append(out, c)
		}
	}
	Sort(out)
	return out
}

// Sort orders cs oldest first, ties by id.
func Sort(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int { return cmp.Or(a.At.Compare(b.At), strings.Compare(a.ID, b.ID)) })
}

// listIDs names at most three ids, then how many more.
func listIDs(ids []string) string {
	slices.Sort(ids)
	if len(ids) <= 3 {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:3], ", ") + fmt.Sprintf(" and %d more", len(ids)-3)
}
