package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// changingSource is the fixture with changes recorded, as the collector
// lists them (GET /api/v1/changes).
type changingSource struct {
	*fixedSource
	cs []changes.Change
}

func (s *changingSource) Changes(_ context.Context, from, to time.Time) ([]changes.Change, error) {
	return changes.Between(s.cs, from, to), nil
}

// TestChangeMarkers: a change recorded within a chart's span is drawn on
// the node's and the edge's charts as a marker with its label, and listed
// under them; the diff draws the changes between its two times on a
// timeline; a change outside the span is not drawn; names are escaped.
func TestChangeMarkers(t *testing.T) {
	fx := fixture()
	hostile := "<script>alert(1)</script>"
	src := &changingSource{fixedSource: fx, cs: []changes.Change{
		{ID: "chg-old", At: now.Add(-3 * time.Hour), Kind: changes.KindVersion, Node: "frontend", NodeID: "service:shop/frontend", Attribute: changes.AttrVersion, From: "1.40", To: "1.41", Summary: "version 1.41 of frontend (was 1.40)"},
		{ID: "chg-v", At: now.Add(-90 * time.Second), Kind: changes.KindVersion, Node: "frontend", NodeID: "service:shop/frontend", Attribute: changes.AttrVersion, From: "1.41", To: "1.42", Summary: "version 1.42 of frontend (was 1.41)"},
		{ID: "chg-e", At: now.Add(-30 * time.Second), Kind: changes.KindEdgeAdded, Source: "frontend", Target: hostile, EdgeID: fx.snap.Edges[1].ID,
			SourceID: "service:shop/frontend", TargetID: "service:shop/" + hostile, Summary: "new dependency: frontend → " + hostile},
	}}
	u := newUI(t, src, newLayouter(t, layout.Options{}), Options{})
	for _, ago := range []time.Duration{3 * time.Minute, 2 * time.Minute, time.Minute, 0} {
		s := *fx.snap
		s.GeneratedAt = now.Add(-ago)
		u.hist.record(&s)
	}
	u.refresh(context.Background())

	t.Run("node", func(t *testing.T) {
		_, _, body := get(t, u, "/node?id="+urlEscape("service:shop/frontend"))
		require.Equal(t, 3, strings.Count(body, `<g class="change-marker version">`), "on each of its three charts")
		require.Contains(t, body, ">frontend 1.42</text>")
		require.Contains(t, body, "version 1.42 of frontend (was 1.41)")
		require.Contains(t, body, `<li data-change="chg-e">`, "its new edge")
		require.NotContains(t, body, "chg-old", "three hours ago is outside the charts")
		require.NotContains(t, body, "<script>alert")
	})
	t.Run("edge", func(t *testing.T) {
		_, _, body := get(t, u, "/edge?id="+urlEscape(fx.snap.Edges[1].ID))
		require.Contains(t, body, `<g class="change-marker edge_added">`)
		require.Contains(t, body, `<g class="change-marker version">`, "its caller's new version")
		require.Contains(t, body, "+ frontend → &lt;script&gt;")
		require.NotContains(t, body, "<script>alert")
	})
	t.Run("other edge", func(t *testing.T) {
		_, _, body := get(t, u, "/edge?id="+urlEscape(fx.snap.Edges[4].ID))
		require.NotContains(t, body, "change-marker")
		require.NotContains(t, body, `id="changes"`)
	})
	t.Run("diff", func(t *testing.T) {
		_, _, body := get(t, u, "/architecture?from=2026-11-22T09:00&to=2026-11-22T10:00&dwindow=5m")
		require.Contains(t, body, `id="diff-changes"`)
		require.Equal(t, 2, strings.Count(body, `<g class="change-marker`), "the two changes of the hour")
		require.Contains(t, body, `<li data-change="chg-v">`)
	})
}
