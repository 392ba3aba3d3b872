package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/changes"
)

// TestChanges: changes written are read back by time range, oldest first,
// each once though written twice (a retry), with every field.
func TestChanges(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	s, err := Open(ctx, Options{DSN: dsnFor(chAddr, db), Collector: "c"})
	require.NoError(t, err)
	defer s.Close()
	at := recent()
	cs := []changes.Change{
		{ID: "chg-b", At: at.Add(40 * time.Second), Kind: changes.KindVersion, Node: "payment", NodeID: "service:payment",
			Attribute: changes.AttrVersion, From: "1.41", To: "1.42", Summary: "version 1.42 of payment (was 1.41)"},
		{ID: "chg-a", At: at.Add(1234 * time.Millisecond), Kind: changes.KindEdgeRemoved, Source: "api", Target: "audit",
			EdgeID: "service:api->service:audit http", SourceID: "service:api", TargetID: "service:audit", Summary: "dependency gone: api → audit"},
		{ID: "chg-old", At: at.Add(-time.Hour), Kind: changes.KindNodeAdded, Node: "api", NodeID: "service:api", Summary: "new node api"},
	}
	require.NoError(t, s.AppendChanges(ctx, cs))
	require.NoError(t, s.AppendChanges(ctx, cs[:1])) // a retry
	got, err := s.Changes(ctx, at, at.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []changes.Change{cs[1], cs[0]}, got)
	got, err = s.Changes(ctx, at.Add(1234*time.Millisecond), at.Add(1234*time.Millisecond))
	require.NoError(t, err)
	require.Len(t, got, 1, "both ends are in the range")
	got, err = s.Changes(ctx, time.Time{}, at.Add(-time.Minute))
	require.NoError(t, err)
	require.Equal(t, []changes.Change{cs[2]}, got)
}
