package ui

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

var (
	markRe = regexp.MustCompile(`<a id="m-[0-9a-f]+" class="mark sev-(\w+)( on-edge)?" href="([^"]*)" aria-label="[^"]*"><title>[^<]*</title><circle[^>]*></circle> <text[^>]*>(\d+)</text></a>`)
	rowRe  = regexp.MustCompile(`<li id="o-[0-9a-f]+" class="robs-row sev-(\w+)" data-kind="(\w+)"`)
)

// TestReviewPage checks the Review page's structure: observations grouped
// by namespace, filtered by the URL, one marker per subject drawn on the
// map with its count, rows and markers linking to the subject's page.
func TestReviewPage(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	edgeID := src.snap.Edges[1].ID // frontend -> hostile, grpc

	code, _, body := get(t, u, "/review")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `<a href="/review" class="active">Review</a>`, "in the navigation, active")
	require.Contains(t, body, `data-ws="/ws?page=review"`, "live")
	require.NotContains(t, body, "<script>alert", "a hostile name must be escaped")
	require.Contains(t, body, "5 of 5 observations")
	groups := regexp.MustCompile(`<section id="ns-[0-9a-f]+" class="rgroup" data-namespace="(\w*)">`).FindAllStringSubmatch(body, -1)
	require.Len(t, groups, 2)
	require.Equal(t, "billing", groups[0][1])
	require.Equal(t, "shop", groups[1][1])
	rows := rowRe.FindAllStringSubmatch(body, -1)
	require.Len(t, rows, 5)
	shop := section(body, `data-namespace="shop"`, "</section>")
	require.Equal(t, 4, strings.Count(shop, `class="robs-row`))
	// Each row: subject linked to its page, evidence, why, remedy.
	row := section(body, `data-kind="no_circuit_breaker" data-id=`, "</li>")
	require.Contains(t, row, `<a class="rsubject" href="/edge?id=`+url.QueryEscape(edgeID)+`">frontend → &lt;script&gt;alert(1)&lt;/script&gt;</a>`, "links to the graph's edge, protocol and all")
	require.Contains(t, row, "<dt>error ratio</dt><dd>0.2</dd>")
	require.Contains(t, row, "<dt>wasted calls</dt><dd>1800</dd>")
	require.Contains(t, row, "Why it matters:</strong> a caller that keeps calling")
	require.Contains(t, row, "Remedy:</strong> a circuit breaker")
	retry := section(body, `data-kind="retry_without_backoff" data-id=`, "</li>")
	require.Contains(t, retry, "<dt>wait before retry ms</dt><dd>p50 0.4, p95 1.2</dd>", "a distribution as its quantiles")
	hub := section(body, `data-kind="hub" data-id="hub:service:shop/frontend"`, "</li>")
	require.Contains(t, hub, `href="/node?id=service%3Ashop%2Ffrontend"`)

	// Markers: one per subject, two observations on frontend -> hostile.
	marks := markRe.FindAllStringSubmatch(body, -1)
	require.Len(t, marks, 4, "four subjects drawn: two edges, two nodes")
	counts := map[string]string{}
	for _, m := range marks {
		counts[m[3]] = m[4] + " " + m[1] + m[2]
	}
	require.Equal(t, "2 warning on-edge", counts["/edge?id="+url.QueryEscape(edgeID)])
	require.Equal(t, "1 warning on-edge", counts["/edge?id="+url.QueryEscape(src.snap.Edges[2].ID)])
	require.Equal(t, "1 info", counts["/node?id=service%3Ashop%2Ffrontend"])
	require.Equal(t, "1 info", counts["/node?id=service%3Abilling%2Finvoicer"])

	// The filter is in the URL: a kind, a namespace.
	_, _, body = get(t, u, "/review?kind=hub")
	require.Len(t, rowRe.FindAllStringSubmatch(body, -1), 2)
	require.Len(t, markRe.FindAllStringSubmatch(body, -1), 2, "markers of the kind shown only")
	require.Contains(t, body, `class="chip active" data-kind="hub" aria-current="true"`)
	require.Contains(t, body, `<option value="hub" selected>hub (2)</option>`)
	_, _, body = get(t, u, "/review?kind=hub&namespace=billing&window=5m")
	rows = rowRe.FindAllStringSubmatch(body, -1)
	require.Len(t, rows, 1)
	require.Contains(t, body, `<input type="hidden" name="window" value="5m">`, "the filter form keeps the window")
	_, _, body = get(t, u, "/review?severity=warning")
	for _, r := range rowRe.FindAllStringSubmatch(body, -1) {
		require.Equal(t, "warning", r[1])
	}
	_, _, body = get(t, u, "/review?kind=chatty_edge")
	require.Contains(t, body, "No observation matches this filter.")
	require.Contains(t, body, `data-kind="chatty_edge"`, "the kind asked for is offered, with none")
	for _, bad := range []string{"/review?severity=critical", "/review?kind=%3Cscript%3E"} {
		code, _, body := get(t, u, bad)
		require.Equal(t, http.StatusBadRequest, code, bad)
		require.NotContains(t, body, "<script>")
	}

	code, _, _ = get(t, u, "/ws?page=review&severity=critical")
	require.Equal(t, http.StatusBadRequest, code, "a live page's filter is checked too")

	// Live: the page's content is one fragment, its filter part of it.
	r := u.renderPage(context.Background(), "review", "kind=hub", View{Refresh: defaultRefresh, Hops: 2}, u.state())
	var frag string
	for _, f := range r.whole {
		if f.ID == "review" {
			frag = f.HTML
		}
	}
	require.Len(t, rowRe.FindAllStringSubmatch(frag, -1), 2)

	// Nothing to say.
	src.review.Observations = nil
	u = newTestUI(t, src)
	_, _, body = get(t, u, "/review")
	require.Contains(t, body, "No observations:")
	require.Empty(t, markRe.FindAllStringSubmatch(body, -1))
}

// TestDiffObservations checks the graph diff's review part on the
// Architecture page: what appeared, what went away, and the note when the
// review history does not reach back.
func TestDiffObservations(t *testing.T) {
	src := fixture()
	u := newTestUI(t, src)
	target := "/architecture?from=2026-11-22T09:00&to=2026-11-22T10:00&dwindow=5m"
	_, _, body := get(t, u, target)
	od := section(body, `<section id="obs-diff"`, `</section></div></section>`)
	require.NotEmpty(t, od)
	require.Contains(t, od, "1 observation appeared, 1 went away")
	appeared := section(od, `class="robs appeared"`, "</ol>")
	require.Contains(t, appeared, `data-kind="no_timeout"`)
	gone := section(od, `class="robs went-away"`, "</ol>")
	require.Contains(t, gone, `data-kind="chatty_edge"`)
	require.Contains(t, gone, `<span class="rsubject">frontend → legacy</span>`, "gone from the graph: no link")

	src.obsDiff.Note = "the review history begins at 2026-11-22T09:30:00Z"
	_, _, body = get(t, u, target)
	require.Contains(t, section(body, `<section id="obs-diff"`, "</section>"), "the review history begins at")
	src.obsDiff = nil
	_, _, body = get(t, u, target)
	require.NotContains(t, body, `id="obs-diff"`, "no review history: no section")
}

// TestEvidenceValues: numbers plainly, distributions as their quantiles,
// lists joined, and a long value (a chain's hops) folded.
func TestEvidenceValues(t *testing.T) {
	hop := func(src, dst string) map[string]any {
		return map[string]any{"source": src, "target": dst, "p50_ms": 3.6720001, "availability": 0.999, "protocol": "http", "adds_p50_ms": 1.181}
	}
	row := reviewRowOf(review.Observation{ID: "sync_chain:x", Kind: review.KindSyncChain, Severity: review.SeverityWarning,
		Subject: finding.Subject{Node: "front", NodeID: "service:bad/front"},
		Evidence: map[string]any{"hops": 6, "compounded_availability": 0.99400000001, "entry_ms": map[string]any{"p95": 788.5, "p50": 38.477},
			"depend_on_it": []any{"client:client", "service:a"},
			"chain":        []any{hop("service:bad/front", "service:bad/c1"), hop("service:bad/c1", "service:bad/c2"), hop("service:bad/c2", "service:bad/c3")}}},
		nil, View{})
	got := map[string]evidenceItem{}
	for _, e := range row.Evidence {
		got[e.Name] = e
	}
	require.Equal(t, "6", got["hops"].Value)
	require.Equal(t, "0.994", got["compounded availability"].Value)
	require.Equal(t, "p50 38.477, p95 788.5", got["entry ms"].Value)
	require.Equal(t, "client:client, service:a", got["depend on it"].Value)
	require.Empty(t, got["hops"].Short)
	chain := got["chain"]
	require.Contains(t, chain.Value, "target service:bad/c1; adds_p50_ms 1.181", "hops apart")
	require.True(t, strings.HasPrefix(chain.Short, "3 items: "), chain.Short)
	require.Equal(t, "/node?id=service%3Abad%2Ffront", row.Href)
}
