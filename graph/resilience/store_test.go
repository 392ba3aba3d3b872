package resilience

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCircuitsNewestWinsAndGoesStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Options{Now: func() time.Time { return now }, MaxKeys: 2})
	require.NoError(t, err)
	k := BreakerKey{Service: "orders", Name: "stock"}
	rej := s.AddCircuits([]CircuitSample{
		{Time: now, BreakerKey: k, State: CircuitOpen},
		{Time: now.Add(-time.Second), BreakerKey: k, State: CircuitClosed}, // older: ignored
		{Time: now, BreakerKey: BreakerKey{Service: "orders"}, State: CircuitOpen},
		{Time: now, BreakerKey: BreakerKey{Service: "a", Name: "b"}, State: CircuitClosed},
		{Time: now, BreakerKey: BreakerKey{Service: "c", Name: "d"}, State: CircuitClosed},
	})
	require.Equal(t, 2, rej, "one without a name, one over the key limit")
	c := s.Circuits()
	require.Len(t, c, 2)
	require.Equal(t, CircuitOpen, c[1].State)
	require.True(t, c[1].State.IsOpen())
	require.False(t, c[1].Stale)
	now = now.Add(3 * time.Minute)
	require.True(t, s.Circuits()[1].Stale)
	now = now.Add(time.Hour)
	require.Empty(t, s.Circuits(), "forgotten after the retention")
}

func TestRetryRatesHandleResets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	s, err := New(Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	k := BreakerKey{Service: "edge", Name: "payment"}
	t0 := now.Add(-40 * time.Second)
	require.Zero(t, s.AddRetries([]RetrySample{
		{Time: t0.Add(30 * time.Second), BreakerKey: k, Retries: 5, Calls: 50},
		{Time: t0, BreakerKey: k, Retries: 100, Calls: 1000},
		{Time: t0.Add(10 * time.Second), BreakerKey: k, Retries: 130, Calls: 1100},
		{Time: t0.Add(20 * time.Second), BreakerKey: k, Retries: 2, Calls: 20}, // restart
	}))
	r := s.RetryRates(time.Minute)
	require.Len(t, r, 1)
	require.InDelta(t, 30+2+3, r[0].Retries, 1e-9)
	require.InDelta(t, 100+20+30, r[0].Calls, 1e-9)
	require.InDelta(t, 30, r[0].Seconds, 1e-9)
	require.Equal(t, 1, s.AddRetries([]RetrySample{{Time: now, BreakerKey: k, Retries: -1}}))
}

func TestCircuitStateText(t *testing.T) {
	var c CircuitState
	require.NoError(t, c.UnmarshalText([]byte("half_open")))
	require.Equal(t, CircuitHalfOpen, c)
	require.NoError(t, c.UnmarshalText([]byte("metrics_only")))
	require.Equal(t, CircuitClosed, c)
	require.Error(t, c.UnmarshalText([]byte("ajar")))
}
