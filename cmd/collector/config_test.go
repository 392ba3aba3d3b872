package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIdleExpiryFollowsTheWindow: unset, --idle-expiry grows with a long
// window (nothing of the window may leave memory); set explicitly below
// what the window needs, it is refused with a message, never replaced.
func TestIdleExpiryFollowsTheWindow(t *testing.T) {
	c, err := parseConfig([]string{"--window=15m"}, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute+2*75*time.Second, c.IdleExpiry)
	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, c.IdleExpiry)
	_, err = parseConfig([]string{"--window=15m", "--idle-expiry=15m"}, func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "--idle-expiry 15m0s must be at least 17m30s")
}
