package graph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UnplacedReason says why spans could not be placed on any edge: what the
// instrumentation that sent them lacks.
type UnplacedReason uint8

// Reasons a span is unplaced.
const (
	// ReasonClientNoPeer: a client span no server span answered, naming no
	// peer (no service.peer.name, peer.service, server.address, URL or
	// peer address), so its callee is unknown.
	ReasonClientNoPeer UnplacedReason = iota + 1
	// ReasonParentNotSeen: a span (not a client, server or messaging span)
	// whose parent never arrived within the pair TTL, so whether it was
	// called from another service is unknown.
	ReasonParentNotSeen
	// ReasonNoDestination: a consumer span naming no destination whose
	// producer was not seen either.
	ReasonNoDestination
	// ReasonSampledOut: a sampled server span whose caller's span was not
	// kept (samplers that do not agree along the trace).
	ReasonSampledOut
	numReasons
)

const (
	reasonClientNoPeer  = ReasonClientNoPeer
	reasonParentNotSeen = ReasonParentNotSeen
	reasonNoDestination = ReasonNoDestination
	reasonSampledOut    = ReasonSampledOut
)

var reasonNames = [numReasons]string{"", "client_no_peer", "parent_not_seen", "no_destination", "sampled_out"}

// String returns the reason's name.
func (r UnplacedReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// MarshalText implements encoding.TextMarshaler.
func (r UnplacedReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Unplaced counts the spans of one service that could not be placed on any
// edge for one reason, over a window.
type Unplaced struct {
	Service   string         `json:"service"`
	Namespace string         `json:"namespace,omitempty"`
	Reason    UnplacedReason `json:"reason"`
	Spans     uint64         `json:"spans"`
	// Examples are names of spans of that service seen in that state.
	Examples []string `json:"examples,omitempty"`
}

// unplacedOther names the service standing for every service beyond the
// table's bound.
const unplacedOther = "(other)"

// maxExamples bounds the example span names kept per row.
const maxExamples = 3

type unplacedKey struct {
	svc    NodeKey
	reason UnplacedReason
}

// unplacedRow counts one (service, reason) per time bucket.
type unplacedRow struct {
	key      unplacedKey
	ring     []unplacedBucket
	examples [maxExamples]string
	nextEx   uint8
}

type unplacedBucket struct {
	epoch int64
	spans uint64
}

// unplacedTable keeps the unplaced-span counts over the graph's window, at
// most max rows. Caller holds Graph.mu.
type unplacedTable struct {
	idx    map[unplacedKey]int32
	rows   []unplacedRow
	max    int
	slots  int
	metric *prometheus.CounterVec
}

func newUnplacedTable(maxRows, slots int, reg prometheus.Registerer) unplacedTable {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartograph_graph_unplaced_spans_total",
		Help: "Spans that could not be placed on any edge, by service and reason (client_no_peer, parent_not_seen, " +
			"no_destination, sampled_out): what the instrumentation sending them lacks. See GET /api/v1/graph/unplaced.",
	}, []string{"service", "reason"})
	if reg != nil {
		reg.MustRegister(m)
	}
	return unplacedTable{idx: make(map[unplacedKey]int32), max: maxRows, slots: slots, metric: m}
}

// row returns the row of (svc, reason), creating it, or the "(other)" row
// beyond the bound.
func (u *unplacedTable) row(svc NodeKey, reason UnplacedReason) *unplacedRow {
	k := unplacedKey{svc: svc, reason: reason}
	if i, ok := u.idx[k]; ok {
		return &u.rows[i]
	}
	if len(u.rows) >= u.max {
		k.svc = NodeKey{Kind: NodeService, Name: unplacedOther}
		if i, ok := u.idx[k]; ok {
			return &u.rows[i]
		}
	}
	k.svc.Group = strings.Clone(k.svc.Group)
	k.svc.Name = strings.Clone(k.svc.Name)
	u.idx[k] = int32(len(u.rows))
	u.rows = append(u.rows, unplacedRow{key: k, ring: make([]unplacedBucket, u.slots)})
	return &u.rows[len(u.rows)-1]
}

// count counts one span of svc unplaced for reason in epoch ep.
func (u *unplacedTable) count(svc NodeKey, reason UnplacedReason, ep int64) {
	r := u.row(svc, reason)
	b := &r.ring[int(ep%int64(len(r.ring)))]
	if b.epoch != ep {
		*b = unplacedBucket{epoch: ep}
	}
	b.spans++
	u.metric.WithLabelValues(r.key.svc.Name, reasonNames[reason]).Inc()
}

// example remembers name as an example of a span of svc that may end
// unplaced for reason.
func (u *unplacedTable) example(svc NodeKey, reason UnplacedReason, name string) {
	if name == "" {
		return
	}
	r := u.row(svc, reason)
	for _, e := range r.examples {
		if e == name {
			return
		}
	}
	r.examples[r.nextEx] = strings.Clone(name)
	r.nextEx = (r.nextEx + 1) % maxExamples
}

// UnplacedReport is the spans no rule could place on an edge over a window.
type UnplacedReport struct {
	GeneratedAt   time.Time  `json:"generated_at"`
	WindowSeconds float64    `json:"window_seconds"`
	Unplaced      []Unplaced `json:"unplaced"`
}

// Unplaced returns the spans that could not be placed on any edge over the
// window ending now (0: the graph's window), by service and reason, most
// first. It returns an error wrapping ErrWindowTooLong for a window longer
// than the graph keeps. Safe for concurrent use.
func (g *Graph) Unplaced(window time.Duration) (UnplacedReport, error) {
	if window == 0 {
		window = g.opts.Window
	}
	if window > g.opts.Window {
		return UnplacedReport{}, fmt.Errorf("unplaced spans over %v: %w (%v)", window, ErrWindowTooLong, g.opts.Window)
	}
	now := g.opts.Now()
	cur := g.epoch(now)
	from := cur - int64((window+time.Duration(g.bucketN)-1)/time.Duration(g.bucketN))
	rep := UnplacedReport{GeneratedAt: now.UTC(), WindowSeconds: window.Seconds(), Unplaced: []Unplaced{}}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.unplaced.rows {
		r := &g.unplaced.rows[i]
		var n uint64
		for _, b := range r.ring {
			if b.epoch > from && b.epoch <= cur {
				n += b.spans
			}
		}
		if n == 0 {
			continue
		}
		u := Unplaced{Service: r.key.svc.Name, Namespace: r.key.svc.Group, Reason: r.key.reason, Spans: n}
		for _, e := range r.examples {
			if e != "" {
				u.Examples = append(u.Examples, e)
			}
		}
		slices.Sort(u.Examples)
		rep.Unplaced = append(rep.Unplaced, u)
	}
	slices.SortFunc(rep.Unplaced, func(a, b Unplaced) int {
		return cmp.Or(cmp.Compare(b.Spans, a.Spans), strings.Compare(a.Service, b.Service), cmp.Compare(a.Reason, b.Reason))
	})
	return rep, nil
}
