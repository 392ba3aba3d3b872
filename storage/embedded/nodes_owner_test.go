package embedded

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
)

// appendNodeSeenV1 is appendNodeSeen of the builds before attributes and
// owners were kept (node value format 1): testdata/node-v1.hex is such a
// value.
func appendNodeSeenV1(dst []byte, n *graph.NodeSeen) []byte {
	b := append(dst, formatV1)
	b = binary.AppendVarint(b, int64(n.Width))
	b = appendNode(b, n.Key)
	return appendStr(b, n.Collector)
}

// TestNodeCodecReadsFormatV1: a node value written before attributes and
// owners were kept decodes with neither; one of format 2 round-trips
// them; a cut value is corrupt, never a wrong node.
func TestNodeCodecReadsFormatV1(t *testing.T) {
	raw, err := os.ReadFile("testdata/node-v1.hex")
	require.NoError(t, err)
	v, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	want := graph.NodeSeen{Start: t0, Width: 5 * time.Second, Key: graph.NodeKey{Kind: graph.NodeService, Group: "jobs", Name: "batch"}, Collector: "c1"}
	require.Equal(t, v, appendNodeSeenV1(nil, &want), "appendNodeSeenV1 writes what the old build wrote")
	var r reader
	got, err := decodeNodeSeen(&r, t0.UnixNano(), v)
	require.NoError(t, err)
	require.Equal(t, want, got)

	want.Attributes = map[string]string{graph.EnvironmentAttr: "production", "k8s.deployment.name": "batch", "team": ""}
	want.Owner = "team-jobs"
	v2 := appendNodeSeen(nil, &want)
	require.Equal(t, v2, appendNodeSeen(nil, &want), "deterministic: attributes in key order")
	got, err = decodeNodeSeen(&r, t0.UnixNano(), v2)
	require.NoError(t, err)
	require.Equal(t, want, got)
	for n := range len(v2) {
		_, err := decodeNodeSeen(&r, 0, v2[:n])
		require.ErrorIs(t, err, errCorrupt, "prefix of %d bytes", n)
	}
}

// teamOwners names a service's owner from its "team" attribute.
type teamOwners struct{}

func (teamOwners) Owner(_ string, attrs map[string]string) string { return attrs["team"] }

// TestStoredGraphKeepsEnvironmentAndOwner: a live graph written through
// the Persister into the embedded store and read back (storage.History,
// what ?at= serves after a restart), from raw rows and from the one-minute
// rollup, describes every node as the live graph did: the same kept
// attributes, environment and owner, the newest when they changed.
func TestStoredGraphKeepsEnvironmentAndOwner(t *testing.T) {
	ctx := context.Background()
	now := t0
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, Now: clock, RollupAfter: 2 * time.Minute, Retention: 1 << 62})
	g, err := graph.New(graph.Options{Window: 5 * time.Minute, Bucket: 5 * time.Second, Now: clock, Owners: teamOwners{}})
	require.NoError(t, err)
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: s, Edges: g})
	require.NoError(t, err)
	res := func(env, kind, team string) []graph.Attr {
		return []graph.Attr{{Key: graph.EnvironmentAttr, Value: env}, {Key: kind, Value: "w"}, {Key: "team", Value: team}}
	}
	var seq uint16
	call := func(from, to string, fromAttrs, toAttrs []graph.Attr) []graph.Span {
		seq++
		tr := graph.TraceID{byte(seq), byte(seq >> 8), 9}
		start := now.UnixNano() + int64(seq%4000)*int64(time.Millisecond)
		c := graph.Span{Trace: tr, ID: graph.SpanID{byte(seq), byte(seq >> 8), 1}, Kind: graph.SpanClient, Service: from, Start: start, End: start + 20e6, Protocol: graph.ProtocolHTTP, Operation: "GET /x", Attributes: fromAttrs}
		sv := graph.Span{Trace: tr, ID: graph.SpanID{byte(seq), byte(seq >> 8), 2}, Parent: c.ID, Kind: graph.SpanServer, Service: to, Start: start + 2e6, End: start + 15e6, Protocol: graph.ProtocolHTTP, Attributes: toAttrs}
		return []graph.Span{sv, c}
	}
	for tick := range 36 { // three minutes of 5 s buckets
		team := "team-web"
		if tick >= 30 {
			team = "team-storefront" // handed over: the newer owner wins
		}
		spans := append(call("web", "cart", res("production", "k8s.deployment.name", team), res("production", "k8s.deployment.name", "team-cart")),
			call("web-stg", "db-stg", res("staging", "k8s.statefulset.name", team), nil)...)
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
		now = now.Add(5 * time.Second)
		require.NoError(t, p.Flush(ctx))
	}
	live, err := g.Snapshot(0)
	require.NoError(t, err)
	web, _ := live.Node("service:web")
	require.Equal(t, "team-storefront", web.Owner)
	at := now.Truncate(5 * time.Second)
	for _, c := range []struct {
		name   string
		window time.Duration
	}{{"raw rows", time.Minute}, {"from the rollup", 3 * time.Minute}} {
		t.Run(c.name, func(t *testing.T) {
			past, err := storage.History{Storage: s}.GraphAt(ctx, at, c.window)
			require.NoError(t, err)
			for _, n := range live.Nodes {
				got, ok := past.Node(n.ID)
				require.True(t, ok, n.ID)
				require.Equal(t, n.Attributes, got.Attributes, n.ID)
				require.Equal(t, n.Environment, got.Environment, n.ID)
				require.Equal(t, n.Owner, got.Owner, n.ID)
			}
			require.Equal(t, []string{"production", "staging"}, past.Environments())
		})
	}
}
