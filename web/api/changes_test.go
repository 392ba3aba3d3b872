package api

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
)

// changeList is a ChangeSource over a list; err, when set, is its answer.
type changeList struct {
	cs       []changes.Change
	err      error
	from, to time.Time
}

func (l *changeList) Changes(_ context.Context, from, to time.Time) ([]changes.Change, error) {
	l.from, l.to = from, to
	return changes.Between(l.cs, from, to), l.err
}

// TestChanges: GET /api/v1/changes lists the changes of [from, to] (the
// last hour by default) as SPEC.md has them; a bad or reversed range is a
// 400; a source that fails is a 503; without a source, 501; the in-process
// reader reads the same.
func TestChanges(t *testing.T) {
	g, err := graph.New(graph.Options{})
	require.NoError(t, err)
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	src := &changeList{cs: []changes.Change{
		{ID: "chg-1", At: at.Add(-2 * time.Hour), Kind: changes.KindNodeAdded, Node: "audit", NodeID: "service:audit", Summary: "new node audit"},
		{ID: "chg-2", At: at.Add(-40 * time.Second), Kind: changes.KindVersion, Node: "payment", NodeID: "service:payment", Attribute: changes.AttrVersion, From: "1.41", To: "1.42", Summary: "version 1.42 of payment (was 1.41)"},
	}}
	a, err := New(Options{Graph: g, Changes: src, Now: func() time.Time { return at }})
	require.NoError(t, err)

	code, body := get(t, a, "/api/v1/changes")
	require.Equal(t, http.StatusOK, code, body)
	list := body["changes"].([]any)
	require.Len(t, list, 1, "the last hour")
	c := list[0].(map[string]any)
	require.Equal(t, map[string]any{"id": "chg-2", "at": "2026-05-01T09:59:20Z", "kind": "version", "node": "payment", "node_id": "service:payment",
		"attribute": "service.version", "from": "1.41", "to": "1.42", "summary": "version 1.42 of payment (was 1.41)"}, c)
	require.Equal(t, at.Add(-time.Hour), src.from)

	code, body = get(t, a, "/api/v1/changes?from=2026-05-01T07:00:00Z&to=2026-05-01T09:00:00Z")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, body["changes"], 1)
	require.Equal(t, "chg-1", body["changes"].([]any)[0].(map[string]any)["id"])

	code, body = get(t, a, "/api/v1/changes?from=2026-05-01T04:00:00Z&to=2026-05-01T05:00:00Z")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{}, body["changes"], "an empty list, not null")

	for _, bad := range []string{"?from=yesterday", "?to=2026-05-01", "?from=2026-05-01T09:00:00Z&to=2026-05-01T08:00:00Z"} {
		code, body = get(t, a, "/api/v1/changes"+bad)
		require.Equal(t, http.StatusBadRequest, code, "%s: %v", bad, body)
	}

	got, err := a.Local().Changes(context.Background(), at.Add(-time.Minute), at)
	require.NoError(t, err)
	require.Equal(t, []string{"chg-2"}, []string{got[0].ID})

	src.err = errors.New("clickhouse: connection refused")
	code, _ = get(t, a, "/api/v1/changes")
	require.Equal(t, http.StatusServiceUnavailable, code)

	none, err := New(Options{Graph: g})
	require.NoError(t, err)
	code, _ = get(t, none, "/api/v1/changes")
	require.Equal(t, http.StatusNotImplemented, code)
	_, err = none.Local().Changes(context.Background(), at.Add(-time.Minute), at)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusNotImplemented, se.Code)
}
