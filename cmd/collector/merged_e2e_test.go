package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// abCall is one a->b call as OTLP JSON; resent marks a retry
// (http.request.resend_count 1).
func abCall(traceID string, resent bool) string {
	now := time.Now()
	ns := func(d time.Duration) string { return fmt.Sprint(now.Add(d).UnixNano()) }
	resend := ""
	if resent {
		resend = `,{"key":"http.request.resend_count","value":{"intValue":"1"}}`
	}
	return `{"resourceSpans":[
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
  "scopeSpans":[{"spans":[{"traceId":"` + traceID + `","spanId":"1111111111111111","parentSpanId":"9999999999999999","name":"GET","kind":3,
    "startTimeUnixNano":"` + ns(-50*time.Millisecond) + `","endTimeUnixNano":"` + ns(-10*time.Millisecond) + `",
    "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"server.address","value":{"stringValue":"b"}}` + resend + `]}]}]},
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b"}}]},
  "scopeSpans":[{"spans":[{"traceId":"` + traceID + `","spanId":"2222222222222222","parentSpanId":"1111111111111111","name":"GET /items","kind":2,
    "startTimeUnixNano":"` + ns(-40*time.Millisecond) + `","endTimeUnixNano":"` + ns(-20*time.Millisecond) + `",
    "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}}]}]}]}]}`
}

// TestE2EMergedDetection: two collectors share ClickHouse, each receiving
// half the calls of a retry storm. Neither half alone reaches the minimum
// of 10 retries; the merged graph does. The collector judging the merged
// graph (--detect merged) raises one finding; the other (--detect off)
// serves the same finding from storage: one problem, one finding, not two.
func TestE2EMergedDetection(t *testing.T) {
	db := clickhouseDB(t)
	dsn := "--clickhouse-dsn=clickhouse://" + chTCP + "/" + db
	common := []string{"--storage=clickhouse", dsn, "--bucket=500ms", "--flush-interval=200ms", "--window=10s", "--eval-interval=1s"}
	judge := startCollector(t, append(common, "--collector-id=judge", "--detect=merged")...)
	other := startCollector(t, append(common, "--collector-id=other", "--detect=off")...)

	for i := range 32 {
		col := judge
		if i%2 == 1 {
			col = other
		}
		code, _, body := postOTLPJSON(t, col, abCall(fmt.Sprintf("%032x", time.Now().UnixNano()+int64(i)), i%4 < 2))
		require.Equal(t, http.StatusOK, code, string(body))
	}
	var storm *wireFinding
	defer func() {
		if storm == nil {
			_, _, b := httpGet(t, apiURL(judge, "/api/v1/graph?window=1m&at="+time.Now().UTC().Format(time.RFC3339Nano)))
			t.Logf("merged graph: %s", b)
			_, _, b = httpGet(t, apiURL(judge, "/api/v1/findings?state=all"))
			t.Logf("findings: %s", b)
		}
	}()
	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, judge, "firing") {
			if f.Kind == "retry_storm" {
				storm = &f
				return true
			}
		}
		return false
	}, 15*time.Second, 200*time.Millisecond, "the merged graph's storm never fired")
	require.EqualValues(t, 16, storm.Evidence["retries"], "8 retries from each collector's share, merged")

	require.Eventually(t, func() bool {
		fs := getFindings(t, other, "firing")
		return len(fs) == 1 && fs[0].ID == storm.ID
	}, 10*time.Second, 200*time.Millisecond, "the other collector serves the same finding from storage")
	all := getFindings(t, judge, "all")
	n := 0
	for _, f := range all {
		if f.Kind == "retry_storm" {
			n++
		}
	}
	require.Equal(t, 1, n, "one storm, one finding")
}
