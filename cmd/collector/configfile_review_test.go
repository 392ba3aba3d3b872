package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReviewThresholdsInConfigFile: the review's thresholds are read from
// detectors.review, checked, and an unknown key is refused like any
// other.
func TestReviewThresholdsInConfigFile(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	fc, err := loadFileConfig(write("detectors:\n  review:\n    chain_min_hops: 3\n    chain_warning_hops: 5\n    breaker_min_error_ratio: 0.3\n"))
	require.NoError(t, err)
	require.Equal(t, 3, fc.Detectors.Review.ChainMinHops)
	require.Equal(t, 5, fc.Detectors.Review.ChainWarningHops)
	require.Equal(t, 0.3, fc.Detectors.Review.BreakerMinErrorRatio)

	for body, want := range map[string]string{
		"detectors:\n  review:\n    breaker_min_reached: 1.5\n": "review.breaker_min_reached = 1.5: a ratio in [0,1]",
		"detectors:\n  review:\n    chain_min_hops: 7\n":        "chain_warning_hops must be at least chain_min_hops",
		"detectors:\n  review:\n    chatty_min_calls: -1\n":     "review.chatty_min_calls = -1: must not be negative",
		"detectors:\n  review:\n    chain_hops: 3\n":            "field chain_hops not found",
	} {
		_, err := loadFileConfig(write(body))
		require.ErrorContains(t, err, want, body)
	}
}
