package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// graphJSON is a cartograph graph: a gateway called by the client node, a
// sync call, a database call, a topic with a streaming and a batch consumer,
// and an external API.
const graphJSON = `{"nodes":[
 {"id":"client:client","kind":"client","name":"client"},
 {"id":"service:edge/gateway","kind":"service","name":"gateway","namespace":"edge"},
 {"id":"service:shop/checkout","kind":"service","name":"checkout","namespace":"shop"},
 {"id":"service:shop/loyalty","kind":"service","name":"loyalty","namespace":"shop"},
 {"id":"service:shop/reco","kind":"service","name":"reco","namespace":"shop"},
 {"id":"database:postgresql/checkout","kind":"database","name":"checkout"},
 {"id":"database:redis/redis-checkout%2F0","kind":"database","name":"redis-checkout/0"},
 {"id":"topic:kafka/orders","kind":"topic","name":"orders"},
 {"id":"external:api.stripe.com:443","kind":"external","name":"api.stripe.com:443"}],
"edges":[
 {"source":"client:client","target":"service:edge/gateway","kind":"sync","protocol":"http","requests":100},
 {"source":"service:edge/gateway","target":"service:shop/checkout","kind":"sync","protocol":"http","requests":100},
 {"source":"service:shop/checkout","target":"database:postgresql/checkout","kind":"sync","protocol":"db","requests":%DB%},
 {"source":"service:shop/checkout","target":"database:redis/redis-checkout%2F0","kind":"sync","protocol":"db","requests":30},
 {"source":"service:shop/checkout","target":"topic:kafka/orders","kind":"async","protocol":"kafka","requests":100},
 {"source":"topic:kafka/orders","target":"service:shop/loyalty","kind":"async","protocol":"kafka","consumer_group":"loyalty","requests":100},
 {"source":"topic:kafka/orders","target":"service:shop/reco","kind":"async","protocol":"kafka","consumer_group":"reco-batch","requests":100},
 {"source":"service:shop/checkout","target":"external:api.stripe.com:443","kind":"sync","protocol":"http","requests":7}]}`

// peerMetrics is what the connector reports for the same traffic.
const peerMetrics = `# HELP traces_service_graph_request_total
# TYPE traces_service_graph_request_total counter
traces_service_graph_request_total{client="user",connection_type="virtual_node",failed="false",server="gateway"} 100
traces_service_graph_request_total{client="gateway",connection_type="",failed="false",server="checkout"} 99
traces_service_graph_request_total{client="gateway",connection_type="",failed="true",server="checkout"} 1
traces_service_graph_request_total{client="checkout",connection_type="database",failed="false",server="checkout"} 50
traces_service_graph_request_total{client="checkout",connection_type="database",failed="false",server="0"} 30
traces_service_graph_request_total{client="checkout",connection_type="messaging_system",failed="false",server="loyalty"} 100
traces_service_graph_request_total{client="user",connection_type="virtual_node",failed="false",server="reco"} 13
traces_service_graph_request_total{client="checkout",connection_type="virtual_node",failed="false",server="unknown"} 7
`

func serve(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		db      string
		differ  int
		verdict string
	}{
		{"agree", "50", 0, "checkout -> checkout"},
		{"a count differs", "49", 1, "DIFFER by -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := cartograph(serve(t, strings.Replace(graphJSON, "%DB%", tc.db, 1)), time.Minute)
			require.NoError(t, err)
			p, err := peerEdges(serve(t, peerMetrics))
			require.NoError(t, err)
			require.Equal(t, uint64(100), p[key{"gateway", "checkout", ""}], "failed and not failed series add up")
			var out bytes.Buffer
			require.Equal(t, tc.differ, report(&out, g, p), out.String())
			s := out.String()
			require.Contains(t, s, tc.verdict)
			require.Contains(t, s, "EDGECHECK agree=")
			// What only cartograph models is listed, not counted as a difference.
			require.Contains(t, s, "checkout -> topic:orders")
			require.Contains(t, s, "cartograph only: a consumer tied to its producers by span links")
			require.Contains(t, s, "cartograph only: a named external peer")
			require.Contains(t, s, "agree (cartograph: redis-checkout/0, qualified by its server)", "a Redis index is named by its server")
		})
	}
}

func TestParseLabels(t *testing.T) {
	require.Equal(t, map[string]string{"a": `x"y`, "b": "", "c": `\`},
		parseLabels(`a="x\"y",b="",c="\\"`))
}

func TestQualifiedIndex(t *testing.T) {
	for _, tc := range []struct {
		name, host, index string
		ok                bool
	}{
		{"redis-cart/0", "redis-cart", "0", true},
		{"cache-1/12", "cache-1", "12", true},
		{"orders", "", "", false},
		{"0", "", "", false},
		{"/0", "", "", false},
		{"a/b", "", "", false},
		{"a/", "", "", false},
	} {
		host, index, ok := qualifiedIndex(tc.name)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.host, host, tc.name)
		require.Equal(t, tc.index, index, tc.name)
	}
}

func TestPeerWithoutTheMetric(t *testing.T) {
	_, err := peerEdges(serve(t, "# nothing here\nup 1\n"))
	require.Error(t, err)
}
