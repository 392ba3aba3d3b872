package realism

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestBatchProcessor(t *testing.T) {
	res := &Resource{Service: "api", Instance: "api-1"}
	newBSP := func(exports *[]Export) *BatchProcessor {
		return NewBatchProcessor(res, t0, func(e Export) { *exports = append(*exports, e) })
	}
	span := func(name string) *Span { return &Span{Name: name} }

	t.Run("SDK defaults", func(t *testing.T) {
		b := newBSP(nil)
		require.Equal(t, 5*time.Second, b.Delay)
		require.Equal(t, 512, b.MaxBatch)
		require.Equal(t, 2048, b.MaxQueue)
		next, _ := b.Next()
		require.Equal(t, t0.Add(5*time.Second), next, "the timer starts with the replica")
	})

	t.Run("spans wait for the timer, in the order they ended", func(t *testing.T) {
		var got []Export
		b := newBSP(&got)
		b.OnEnd(span("child"), t0.Add(time.Second))
		b.OnEnd(span("root"), t0.Add(4*time.Second))
		require.Empty(t, got, "nothing is exported before the scheduled delay")
		next, gen := b.Next()
		require.True(t, b.Tick(next, gen))
		require.Len(t, got, 1)
		require.Equal(t, t0.Add(5*time.Second), got[0].At)
		require.Equal(t, "timer", got[0].Reason)
		require.Equal(t, []string{"child", "root"}, names(got[0].Spans))
		next, _ = b.Next()
		require.Equal(t, t0.Add(10*time.Second), next)
	})

	t.Run("a trace ending across a tick is split, its root last", func(t *testing.T) {
		var got []Export
		b := newBSP(&got)
		b.OnEnd(span("db"), t0.Add(4900*time.Millisecond))
		next, gen := b.Next()
		b.Tick(next, gen)
		b.OnEnd(span("root"), t0.Add(5100*time.Millisecond))
		next, gen = b.Next()
		b.Tick(next, gen)
		require.Len(t, got, 2)
		require.Equal(t, []string{"db"}, names(got[0].Spans))
		require.Equal(t, []string{"root"}, names(got[1].Spans))
		require.Equal(t, 5*time.Second, got[1].At.Sub(got[0].At))
	})

	t.Run("512 queued spans are exported at once and restart the timer", func(t *testing.T) {
		var got []Export
		b := newBSP(&got)
		_, gen0 := b.Next()
		at := t0.Add(2 * time.Second)
		for i := range 512 {
			restarted := b.OnEnd(span("s"), at)
			require.Equal(t, i == 511, restarted)
		}
		require.Len(t, got, 1)
		require.Equal(t, "full", got[0].Reason)
		require.Equal(t, at, got[0].At)
		require.Len(t, got[0].Spans, 512)
		require.False(t, b.Tick(t0.Add(5*time.Second), gen0), "the tick of the old timer is stale")
		next, _ := b.Next()
		require.Equal(t, at.Add(5*time.Second), next)
	})

	t.Run("a full queue drops and counts", func(t *testing.T) {
		var got []Export
		b := newBSP(&got)
		b.MaxBatch, b.MaxQueue = 10, 4 // an exporter that cannot keep up
		for range 6 {
			b.OnEnd(span("s"), t0)
		}
		require.Equal(t, 2, b.Dropped)
		next, gen := b.Next()
		b.Tick(next, gen)
		require.Len(t, got[0].Spans, 4)
	})

	t.Run("shutdown flushes", func(t *testing.T) {
		var got []Export
		b := newBSP(&got)
		b.OnEnd(span("last"), t0.Add(time.Second))
		_, gen := b.Next()
		b.Shutdown(t0.Add(2 * time.Second))
		require.Len(t, got, 1)
		require.Equal(t, "shutdown", got[0].Reason)
		require.False(t, b.Tick(t0.Add(5*time.Second), gen))
	})
}

func names(spans []*Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
