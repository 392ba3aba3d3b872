package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
	"github.com/seed-a49a8342/cartograph/web/api"
	"github.com/seed-a49a8342/cartograph/web/api/client"
)

// findingsAtFixture is an API over a real embedded store holding, from
// history's beginning at t0: a circuit that went pending at +5 s, fired
// warning at +10 s, turned critical at +15 s (its peak) and resolved at
// +30 s; and a bottleneck pending since +35 s. The live engine lists the
// circuit resolved.
type findingsAtFixture struct {
	t0, now time.Time
	api     *api.API
}

func newFindingsAtFixture(t *testing.T) *findingsAtFixture {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ptr := func(t time.Time) *time.Time { return &t }
	now := at(45)
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retention: 50 * 365 * 24 * time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	circuit := finding.Finding{
		ID: "circuit", Kind: finding.KindOpenCircuit, State: finding.StateResolved, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Source: "a", Target: "b", EdgeID: "service:a->service:b"},
		Summary: "on its way out", Evidence: map[string]any{"unanswered": 3.0},
		StartedAt: at(5), FiredAt: ptr(at(10)), ResolvedAt: ptr(at(30)), LastSeen: at(25),
		Peak: &finding.Peak{At: at(15), Severity: finding.SeverityCritical, Summary: "fully open", Evidence: map[string]any{"unanswered": 386.0}},
		Timeline: []finding.Change{
			{At: at(5), State: finding.StatePending, Severity: finding.SeverityWarning},
			{At: at(10), State: finding.StateFiring, Severity: finding.SeverityWarning},
			{At: at(15), State: finding.StateFiring, Severity: finding.SeverityCritical},
			{At: at(30), State: finding.StateResolved, Severity: finding.SeverityCritical},
		},
	}
	bottleneck := finding.Finding{
		ID: "bottleneck", Kind: finding.KindBottleneck, State: finding.StatePending, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Node: "c", NodeID: "service:c"}, Summary: "slow", StartedAt: at(35), LastSeen: at(45),
		Timeline: []finding.Change{{At: at(35), State: finding.StatePending, Severity: finding.SeverityWarning}},
	}
	app := st.Appender()
	require.NoError(t, app.AppendFindings([]finding.Finding{circuit, bottleneck}))
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{{Start: t0, Width: 5 * time.Second, Key: graph.NodeKey{Kind: graph.NodeService, Name: "a"}}}))
	require.NoError(t, app.Commit(context.Background()))

	g, err := graph.New(graph.Options{Window: time.Minute, Bucket: 5 * time.Second, Now: func() time.Time { return now }})
	require.NoError(t, err)
	a, err := api.New(api.Options{Graph: g, History: storage.History{Storage: st}, FindingHistory: st,
		Findings: liveFindings{circuit, bottleneck}, Now: func() time.Time { return now }})
	require.NoError(t, err)
	return &findingsAtFixture{t0: t0, now: now, api: a}
}

// liveFindings is the live engine's list.
type liveFindings []finding.Finding

func (l liveFindings) Findings(s finding.State) []finding.Finding {
	var out []finding.Finding
	for _, f := range l {
		if s == 0 || f.State == s {
			out = append(out, f)
		}
	}
	return out
}

func (f *findingsAtFixture) get(t *testing.T, q url.Values) (int, map[string]any, []finding.Finding) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/findings?"+q.Encode(), nil))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	var list struct{ Findings []finding.Finding }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	return rec.Code, body, list.Findings
}

// TestFindingsAt: ?at= answers the findings as they were then, read from
// storage: the circuit firing (and critical) while it was, with no
// resolution yet and its timeline cut at that time; the bottleneck only
// once it had started; neither what resolved before.
func TestFindingsAt(t *testing.T) {
	f := newFindingsAtFixture(t)
	type want struct {
		id       string
		state    finding.State
		severity finding.Severity
		steps    int
	}
	for _, tc := range []struct {
		name      string
		at, state string
		want      []want
	}{
		{"pending", "7s", "all", []want{{"circuit", finding.StatePending, finding.SeverityWarning, 1}}},
		{"pending, firing asked", "7s", "", nil},
		{"firing, warning", "12s", "", []want{{"circuit", finding.StateFiring, finding.SeverityWarning, 2}}},
		{"firing, critical", "20s", "firing", []want{{"circuit", finding.StateFiring, finding.SeverityCritical, 3}}},
		{"resolved exactly then", "30s", "resolved", []want{{"circuit", finding.StateResolved, finding.SeverityCritical, 4}}},
		{"resolved before, the next pending", "40s", "all", []want{{"bottleneck", finding.StatePending, finding.SeverityWarning, 1}}},
		{"nothing open", "33s", "all", nil},
		{"before anything started", "2s", "all", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := time.ParseDuration(tc.at)
			require.NoError(t, err)
			q := url.Values{"at": {f.t0.Add(d).Format(time.RFC3339)}}
			if tc.state != "" {
				q.Set("state", tc.state)
			}
			code, body, got := f.get(t, q)
			require.Equal(t, http.StatusOK, code, body)
			require.NotNil(t, body["findings"], "an empty list, not null")
			require.Len(t, got, len(tc.want), body)
			for i, w := range tc.want {
				g := got[i]
				require.Equal(t, w.id, g.ID)
				require.Equal(t, w.state, g.State)
				require.Equal(t, w.severity, g.Severity)
				require.Len(t, g.Timeline, w.steps)
				if g.ResolvedAt != nil {
					require.False(t, g.ResolvedAt.After(f.t0.Add(d)))
				}
				if g.FiredAt != nil {
					require.False(t, g.FiredAt.After(f.t0.Add(d)))
				}
			}
		})
	}
	// The circuit at +20 s reads with its peak's numbers: it was then
	// as bad as it got.
	_, _, got := f.get(t, url.Values{"at": {f.t0.Add(20 * time.Second).Format(time.RFC3339)}})
	require.Len(t, got, 1)
	require.Equal(t, "fully open", got[0].Summary)
	require.Nil(t, got[0].ResolvedAt)
	// Without at: the live list, as before.
	code, body, got := f.get(t, url.Values{"state": {"all"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Len(t, got, 2)
}

// TestFindingsAtMistakes: ?at= on findings is refused like ?at= on the
// graph.
func TestFindingsAtMistakes(t *testing.T) {
	f := newFindingsAtFixture(t)
	for _, tc := range []struct {
		name  string
		q     url.Values
		code  int
		says  string
		begin bool
	}{
		{"not a time", url.Values{"at": {"yesterday"}}, 400, "RFC 3339", false},
		{"empty", url.Values{"at": {""}}, 400, "at is required", false},
		{"in the future", url.Values{"at": {f.now.Add(time.Hour).Format(time.RFC3339)}}, 400, "in the future", false},
		{"before history", url.Values{"at": {f.t0.Add(-time.Hour).Format(time.RFC3339)}}, 404, "before stored history begins (2026-03-01T12:00:00Z)", true},
		{"bad state", url.Values{"at": {f.t0.Add(time.Second).Format(time.RFC3339)}, "state": {"open"}}, 400, "state", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := f.get(t, tc.q)
			require.Equal(t, tc.code, code, body)
			require.Contains(t, body["error"], tc.says)
			if tc.begin {
				require.Equal(t, "2026-03-01T12:00:00Z", body["history_begins"])
			} else {
				require.NotContains(t, body, "history_begins")
			}
		})
	}

	// No storage: 501, live findings or not.
	g, err := graph.New(graph.Options{})
	require.NoError(t, err)
	for name, o := range map[string]api.Options{
		"no findings at all": {Graph: g},
		"live findings only": {Graph: g, Findings: liveFindings{}},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := api.New(o)
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/findings?at="+time.Now().Add(-time.Minute).Format(time.RFC3339), nil))
			require.Equal(t, http.StatusNotImplemented, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), `"error"`)
		})
	}
}

// TestFindingsAtReaders: the UI's two readers, in process (api.Local) and
// over HTTP (client.Client), read the same findings as of a past time as
// the handler answers, and an error as a status error.
func TestFindingsAtReaders(t *testing.T) {
	f := newFindingsAtFixture(t)
	srv := httptest.NewServer(f.api)
	defer srv.Close()
	c, err := client.New(client.Options{BaseURL: srv.URL})
	require.NoError(t, err)
	type reader interface {
		FindingsAt(ctx context.Context, state finding.State, at time.Time) ([]finding.Finding, error)
	}
	for name, r := range map[string]reader{"local": f.api.Local(), "client": c} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			got, err := r.FindingsAt(ctx, 0, f.t0.Add(20*time.Second))
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, finding.StateFiring, got[0].State)
			require.Equal(t, finding.SeverityCritical, got[0].Severity)
			require.Nil(t, got[0].ResolvedAt)

			got, err = r.FindingsAt(ctx, finding.StatePending, f.t0.Add(40*time.Second))
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, "bottleneck", got[0].ID)

			live, err := r.FindingsAt(ctx, finding.StateResolved, time.Time{})
			require.NoError(t, err)
			require.Len(t, live, 1, "a zero time reads the live list")
			require.Equal(t, finding.StateResolved, live[0].State)

			_, err = r.FindingsAt(ctx, 0, f.t0.Add(-time.Hour))
			var le *api.StatusError
			var ce *client.StatusError
			switch {
			case errors.As(err, &le):
				require.Equal(t, http.StatusNotFound, le.Code)
			case errors.As(err, &ce):
				require.Equal(t, http.StatusNotFound, ce.Code)
			default:
				t.Fatalf("want a status error, got %v", err)
			}
		})
	}
}
