package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

// errorLog counts the records logged at ERROR.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.msgs
	l.msgs = nil
	return m
}

// historyFixture is a live graph (1m window, 5s buckets) on an injected
// clock whose closed buckets are written to a real embedded store, the
// way the collector's persister does: service a calls b during the first
// 20 s of history, then calls c instead.
type historyFixture struct {
	begins, now time.Time
	api         *API
	errs        *errorLog
}

func newHistoryFixture(t *testing.T, empty bool) *historyFixture {
	t.Helper()
	begins := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := begins
	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, Now: func() time.Time { return now }})
	require.NoError(t, err)
	// Fixed dates in the past: retention must not delete them as the real
	// clock moves on.
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retention: 50 * 365 * 24 * time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })

	var seq byte
	call := func(callee string) {
		seq++
		tr := graph.TraceID{seq}
		end := now.UnixNano()
		rej, why := g.ConsumeSpans([]graph.Span{
			{Trace: tr, ID: graph.SpanID{1}, Parent: graph.SpanID{9}, Kind: graph.SpanClient, Service: "a", Start: end - 2e6, End: end},
			{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanServer, Service: callee, Start: end - 1e6, End: end},
		})
		require.Zero(t, rej, why)
	}
	if !empty {
		for i := range 40 {
			now = begins.Add(time.Duration(i)*time.Second + 500*time.Millisecond)
			if i < 20 {
				call("b")
			} else {
				call("c")
			}
		}
		now = begins.Add(45 * time.Second)
		buckets, _ := g.ClosedBuckets(time.Time{})
		require.NotEmpty(t, buckets)
		app := st.Appender()
		require.NoError(t, app.AppendEdges(buckets))
		require.NoError(t, app.AppendNodes(g.ClosedNodes(time.Time{})))
		require.NoError(t, app.Commit(context.Background()))
	}
	now = begins.Add(45 * time.Second)
	f := &historyFixture{begins: begins, now: now, errs: &errorLog{}}
	f.api, err = New(Options{Graph: g, History: storage.History{Storage: st}, Bucket: 5 * time.Second,
		Logger: slog.New(f.errs), Now: func() time.Time { return now }})
	require.NoError(t, err)
	return f
}

func (f *historyFixture) ts(d time.Duration) string { return f.begins.Add(d).Format(time.RFC3339) }

// do sends a request and decodes its JSON body, failing unless the answer
// is JSON.
func do(t *testing.T, h http.Handler, method, target string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), rec.Body.String())
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec, body
}

// TestClientMistakes: every mistake a client can make is a 4xx with a JSON
// body that says what was wrong, and never logs at ERROR (any client could
// fill the server's error log).
func TestClientMistakes(t *testing.T) {
	f := newHistoryFixture(t, false)
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	in, future, before := f.ts(30*time.Second), f.now.Add(time.Hour).Format(time.RFC3339), f.ts(-time.Hour)
	for _, tc := range []struct {
		name, method, url string
		code              int
		says              string
	}{
		{"window longer than history keeps", "GET", "/api/v1/graph?window=99999h", 400, "window"},
		{"window NaN", "GET", "/api/v1/graph?window=NaN", 400, "positive number of seconds"},
		{"window negative", "GET", "/api/v1/graph?window=-5m", 400, "positive duration"},
		{"coupling window too long", "GET", "/api/v1/coupling?window=99999h", 400, "window"},
		{"at not a time", "GET", "/api/v1/graph?at=yesterday", 400, "RFC 3339"},
		{"at in the future", "GET", "/api/v1/graph?" + q("at", future), 400, "in the future"},
		{"at before history", "GET", "/api/v1/graph?" + q("at", before), 404, "before stored history begins (2026-03-01T12:00:00Z)"},
		{"at with a window too long", "GET", "/api/v1/graph?" + q("at", in, "window", "99999h"), 400, "window"},
		{"diff without from", "GET", "/api/v1/graph/diff?" + q("to", in), 400, "from is required"},
		{"diff to in the future", "GET", "/api/v1/graph/diff?" + q("from", in, "to", future), 400, "to " + future + " is in the future"},
		{"diff from after to", "GET", "/api/v1/graph/diff?" + q("from", in, "to", f.ts(10*time.Second)), 400, "from is the earlier time"},
		{"diff window of one bucket", "GET", "/api/v1/graph/diff?" + q("from", f.ts(10*time.Second), "to", in, "window", "5s"), 400, "at least two buckets (10s here)"},
		{"diff window not a duration", "GET", "/api/v1/graph/diff?" + q("from", f.ts(10*time.Second), "to", in, "window", "5 minutes"), 400, "window"},
		{"diff window too long", "GET", "/api/v1/graph/diff?" + q("from", f.ts(10*time.Second), "to", in, "window", "99999h"), 400, "window"},
		{"diff from before history", "GET", "/api/v1/graph/diff?" + q("from", before, "to", in, "window", "10s"), 404, "from " + before + " is before stored history begins"},
		{"diff threshold NaN", "GET", "/api/v1/graph/diff?" + q("from", f.ts(10*time.Second), "to", in, "rate_ratio", "NaN"), 400, "rate_ratio"},
		{"diff threshold infinite", "GET", "/api/v1/graph/diff?" + q("from", f.ts(10*time.Second), "to", in, "p95_ratio", "+Inf"), 400, "p95_ratio"},
		{"unknown path", "GET", "/api/v1/nope", 404, "no API endpoint /api/v1/nope"},
		{"unknown version", "GET", "/api/v2/graph", 404, "no API endpoint"},
		{"unknown path under a route", "GET", "/api/v1/graph/nope", 404, "no API endpoint"},
		{"wrong method", "POST", "/api/v1/graph", 405, "method POST is not allowed on /api/v1/graph (allowed: GET, HEAD)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, body := do(t, f.api, tc.method, tc.url)
			require.Equal(t, tc.code, rec.Code, body)
			require.Contains(t, body["error"], tc.says)
			require.Empty(t, f.errs.take(), "a client's mistake logged at ERROR")
			if tc.code == 404 && body["history_begins"] != nil {
				require.Equal(t, "2026-03-01T12:00:00Z", body["history_begins"])
			}
			if tc.code == 405 {
				require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
			}
		})
	}
}

// TestDiffAtTwoBuckets: a diff works at a window of two buckets (10 s
// here), far below a minute, and sees the call that moved from b to c.
func TestDiffAtTwoBuckets(t *testing.T) {
	f := newHistoryFixture(t, false)
	for _, tc := range []struct {
		window        string
		added, remove string
	}{
		{"10s", "service:a->service:c", "service:a->service:b"},
		{"15s", "service:a->service:c", "service:a->service:b"},
	} {
		t.Run(tc.window, func(t *testing.T) {
			v := url.Values{"from": {f.ts(15 * time.Second)}, "to": {f.ts(40 * time.Second)}, "window": {tc.window}}
			rec, body := do(t, f.api, "GET", "/api/v1/graph/diff?"+v.Encode())
			require.Equal(t, http.StatusOK, rec.Code, body)
			ids := func(key string) []string {
				var out []string
				for _, e := range body[key].([]any) {
					out = append(out, e.(map[string]any)["id"].(string))
				}
				return out
			}
			require.Equal(t, []string{tc.added}, ids("added_edges"))
			require.Equal(t, []string{tc.remove}, ids("removed_edges"))
		})
	}
	require.Empty(t, f.errs.take())
}

// TestPastWithinHistory: a past time stored history covers answers its
// graph; the same time with nothing stored says no history is stored.
func TestPastWithinHistory(t *testing.T) {
	f := newHistoryFixture(t, false)
	rec, body := do(t, f.api, "GET", "/api/v1/graph?at="+f.ts(40*time.Second)+"&window=15s")
	require.Equal(t, http.StatusOK, rec.Code, body)
	require.Len(t, body["edges"], 1)

	empty := newHistoryFixture(t, true)
	rec, body = do(t, empty.api, "GET", "/api/v1/graph?at="+f.ts(40*time.Second))
	require.Equal(t, http.StatusNotFound, rec.Code, body)
	require.Contains(t, body["error"], "no history is stored yet")
	require.NotContains(t, body, "history_begins")
	require.Empty(t, f.errs.take())
}

// TestJSONOutsideAPIUnchanged: paths outside /api/ keep the mux's plain
// answers (this is not a web site), so /metrics and probes are untouched.
func TestJSONOutsideAPIUnchanged(t *testing.T) {
	f := newHistoryFixture(t, true)
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.False(t, bytes.HasPrefix(rec.Body.Bytes(), []byte("{")))
}
