package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// heldLease is a judge's lease held or not.
type heldLease bool

func (h heldLease) Held() bool                  { return bool(h) }
func (heldLease) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// namedSource is a tick source whose graph says which source it is.
type namedSource string

func (n namedSource) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	return graph.NewSnapshot(time.Time{}, window, []graph.Node{{ID: string(n)}}, nil), nil
}

// TestServeMerged: with --detect merged a collector's tick graph is the
// merged graph while it holds the judge's lease and its own share while
// another judges; with --serve-merged it is the merged graph either way
// (every collector behind one Service shows the whole graph). The flag
// needs --detect merged.
func TestServeMerged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		held   bool
		always bool
		want   string
	}{
		{"judge", true, false, "merged"},
		{"not the judge", false, false, "local"},
		{"judge, --serve-merged", true, true, "merged"},
		{"not the judge, --serve-merged", false, true, "merged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newSeat(detectMerged, nil, heldLease(tc.held), nil, slog.New(slog.DiscardHandler), nil)
			require.NoError(t, err)
			snap, err := judgedSource{seat: s, merged: namedSource("merged"), local: namedSource("local"), always: tc.always}.Snapshot(time.Minute)
			require.NoError(t, err)
			require.Equal(t, tc.want, snap.Nodes[0].ID)
		})
	}
	getenv := func(string) string { return "" }
	_, err := parseConfig([]string{"--serve-merged", "--detect=local"}, getenv, io.Discard)
	require.ErrorContains(t, err, "--serve-merged needs --detect merged")
	cfg, err := parseConfig([]string{"--serve-merged", "--detect=merged", "--storage=clickhouse", "--clickhouse-dsn=clickhouse://127.0.0.1:9000/cartograph"}, getenv, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.ServeMerged)
}
