package clickhouse

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMembersSeeCollectorsStopAndStart: each instance beats; one that
// stops is seen gone four beats later, with the window in which traffic
// moved starting just before its last beat; one that starts (or comes back
// as a new instance) is seen at once.
func TestMembersSeeCollectorsStopAndStart(t *testing.T) {
	db := freshDB(t)
	const every = time.Second
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var mu sync.Mutex
	var windows [][2]time.Time
	changed := func(lo, hi time.Time) { mu.Lock(); windows = append(windows, [2]time.Time{lo, hi}); mu.Unlock() }
	take := func() [][2]time.Time { mu.Lock(); defer mu.Unlock(); w := windows; windows = nil; return w }
	ctx := context.Background()
	members := func(id string, cb func(lo, hi time.Time)) *Members {
		m, err := openStore(t, db, id).NewMembers(MembersOptions{Every: every, Follow: 10 * time.Second, Changed: cb, Now: clock.Now})
		require.NoError(t, err)
		return m
	}
	watcher := members("c1", changed)
	other := members("c2", func(lo, hi time.Time) {})
	require.NoError(t, other.Step(ctx))
	require.NoError(t, watcher.Step(ctx))
	require.Empty(t, take(), "those there before it started are no change")

	for range 3 {
		clock.Add(every)
		require.NoError(t, other.Step(ctx))
		require.NoError(t, watcher.Step(ctx))
	}
	require.Empty(t, take())
	lastBeat := clock.Now()

	// c2 stops.
	for range 3 {
		clock.Add(every)
		require.NoError(t, watcher.Step(ctx))
		require.Empty(t, take(), "not gone before four beats are missed")
	}
	clock.Add(every)
	require.NoError(t, watcher.Step(ctx))
	require.Equal(t, [][2]time.Time{{lastBeat.Add(-every), lastBeat.Add(every + 10*time.Second)}}, take(), "stopped between its last beat and the next")

	// c2 comes back, a new instance.
	back := members("c2", func(lo, hi time.Time) {})
	clock.Add(every)
	require.NoError(t, back.Step(ctx))
	require.NoError(t, watcher.Step(ctx))
	now := clock.Now()
	require.Equal(t, [][2]time.Time{{now.Add(-every), now.Add(10 * time.Second)}}, take(), "started")
}
