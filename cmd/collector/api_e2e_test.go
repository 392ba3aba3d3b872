package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestE2EAPIClientMistakesAndShortDiff runs the collector with 1 s buckets
// and embedded storage, sends a -> b, and checks through its HTTP API that
// a diff works at two buckets (2 s) and that each client mistake is a 4xx
// with a JSON error, never a 5xx: a window longer than history keeps,
// times in the future or before history begins, unknown paths, and a diff
// window under two buckets.
func TestE2EAPIClientMistakesAndShortDiff(t *testing.T) {
	col := startCollector(t, "--window=12s", "--bucket=1s", "--flush-interval=200ms")
	startedAt := time.Now().UTC()
	// Before: empty history. A window is read in whole buckets, the one
	// holding its end included, so "from" (startedAt + 500 ms) must end a
	// bucket before the first call: 2.1 s puts the calls at least one 1 s
	// bucket past the bucket holding "from", wherever bucket edges fall.
	time.Sleep(2100 * time.Millisecond)
	// The first call ends 10 ms before sendStart whatever the load: the
	// window ending 900 ms after sendStart holds its bucket, however long
	// the sends take on a busy machine.
	sendStart := time.Now().UTC()
	sendAB(t, col, 5)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col) > 0 }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // the buckets holding the calls close and are written

	diff := func(from, to time.Time, window string) (int, map[string]any) {
		v := url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}, "window": {window}}
		code, hdr, body := httpGet(t, apiURL(col, "/api/v1/graph/diff?"+v.Encode()))
		require.Contains(t, hdr.Get("Content-Type"), "application/json", "%s", body)
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m), "%s", body)
		return code, m
	}
	now := time.Now().UTC()
	// Some 2 s window ending within 2 s after the sends holds a bucket of
	// the calls, however the sends and bucket edges fell on a busy
	// machine: the diff from the empty second before finds a -> b added.
	var d map[string]any
	added := false
	for off := 500 * time.Millisecond; off <= 2500*time.Millisecond && !added; off += 100 * time.Millisecond {
		var code int
		code, d = diff(startedAt.Add(500*time.Millisecond), sendStart.Add(off), "2s")
		require.Equal(t, http.StatusOK, code, d)
		added = len(d["added_edges"].([]any)) == 1
	}
	require.True(t, added, "a -> b appeared between two 2 s windows: %v", d)

	for _, tc := range []struct {
		name, path string
		code       int
		says       string
	}{
		{"window longer than history keeps", "/api/v1/graph?window=99999h", 400, "window"},
		{"at in the future", "/api/v1/graph?at=" + now.Add(time.Hour).Format(time.RFC3339), 400, "in the future"},
		{"at before history", "/api/v1/graph?at=" + startedAt.Add(-time.Hour).Format(time.RFC3339), 404, "before stored history begins"},
		{"diff window of one bucket", "/api/v1/graph/diff?" + url.Values{"from": {startedAt.Format(time.RFC3339Nano)}, "to": {now.Format(time.RFC3339Nano)}, "window": {"1s"}}.Encode(), 400, "at least two buckets (2s here)"},
		{"unknown path", "/api/v1/nope", 404, "no API endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := httpGet(t, apiURL(col, tc.path))
			require.Equal(t, tc.code, code, "%s", body)
			require.Contains(t, hdr.Get("Content-Type"), "application/json")
			var e struct {
				Error string `json:"error"`
			}
			require.NoError(t, json.Unmarshal(body, &e), "%s", body)
			require.True(t, strings.Contains(e.Error, tc.says), "error %q lacks %q", e.Error, tc.says)
		})
	}
}
