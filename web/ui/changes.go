package ui

import (
	"context"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/changes"
)

// changeReader is a Source that lists the changes the collector recorded
// (GET /api/v1/changes): web/api.Local and web/api/client.Client are. A
// Source without it, or a collector that records none, draws no marker.
type changeReader interface {
	Changes(ctx context.Context, from, to time.Time) ([]changes.Change, error)
}

// marker is a recorded change drawn on a chart or on the diff's
// timeline: at X (SVG units), with a short label and its summary as the
// title.
type marker struct {
	X, Label, Title, Kind string
}

// changeItem is a recorded change listed under charts and in the diff.
type changeItem struct {
	ID, At, Kind, Summary string
}

// timeline is the diff's span, from its earlier time to its later one,
// with the changes recorded in it.
type timeline struct {
	XStart, XEnd string
	Markers      []marker
}

// changesIn returns the changes in [from, to] that keep accepts (all when
// keep is nil); none when the source lists none or cannot be read (the
// charts and the diff are drawn without them).
func (u *UI) changesIn(ctx context.Context, from, to time.Time, keep func(changes.Change) bool) []changes.Change {
	cr, ok := u.o.Source.(changeReader)
	if !ok || !to.After(from) {
		return nil
	}
	cs, err := cr.Changes(ctx, from, to)
	if err != nil {
		return nil
	}
	out := cs[:0]
	for _, c := range cs {
		if keep == nil || keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// markersOf places cs on a chart whose time axis runs from `from` to `to`.
func markersOf(cs []changes.Change, from, to time.Time) []marker {
	span := to.Sub(from).Seconds()
	if span <= 0 {
		return nil
	}
	out := make([]marker, 0, len(cs))
	for _, c := range cs {
		if c.At.Before(from) || c.At.After(to) {
			continue
		}
		x := chartPad + (chartW-chartPad)*c.At.Sub(from).Seconds()/span
		out = append(out, marker{X: f1(x), Label: c.Label(), Title: fmtTime(c.At) + ": " + c.Summary, Kind: c.Kind.String()})
	}
	return out
}

func changeItems(cs []changes.Change) []changeItem {
	out := make([]changeItem, 0, len(cs))
	for i := len(cs) - 1; i >= 0; i-- { // newest first
		c := cs[i]
		out = append(out, changeItem{ID: c.ID, At: fmtTime(c.At), Kind: c.Kind.String(), Summary: c.Summary})
	}
	return out
}

// withMarkers draws ms on every chart of cs.
func withMarkers(cs []chart, ms []marker) {
	for i := range cs {
		cs[i].Markers = ms
	}
}
