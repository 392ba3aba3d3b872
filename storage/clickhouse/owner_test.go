package clickhouse

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/storage"
)

// teamOwners names a service's owner from its "team" attribute, else from
// a catalog (as graph/owner.Resolver does).
type teamOwners map[string]string

func (c teamOwners) Owner(service string, attrs map[string]string) string {
	if v := attrs["team"]; v != "" {
		return v
	}
	return c[service]
}

// TestStoredGraphKeepsEnvironmentAndOwner: a live graph written through
// the Persister and read back from ClickHouse (storage.History, what
// /api/v1/graph?at= serves after a restart, and the merged judge's
// graph) describes every node as the live graph did: the same kept
// attributes (k8s.deployment.name, deployment.environment.name, ...), the
// same environment and the same owner, two collectors writing; so ?env=
// splits history as it splits the live graph.
func TestStoredGraphKeepsEnvironmentAndOwner(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	now := recent()
	clock := func() time.Time { return now }
	owners := teamOwners{"cart": "team-cart"} // from the catalog: its resources name no team
	newGraph := func() *graph.Graph {
		g, err := graph.New(graph.Options{Window: 5 * time.Minute, Bucket: 5 * time.Second, Now: clock, Owners: owners})
		require.NoError(t, err)
		return g
	}
	res := func(env, workload, kind, team string) []graph.Attr {
		a := []graph.Attr{{Key: graph.EnvironmentAttr, Value: env}, {Key: "k8s.namespace.name", Value: "shop-" + env}, {Key: kind, Value: workload}}
		if team != "" {
			a = append(a, graph.Attr{Key: "team", Value: team})
		}
		return a
	}
	var seq byte
	call := func(from, to string, fromAttrs, toAttrs []graph.Attr, startMs int64) []graph.Span {
		seq++
		tr := graph.TraceID{seq, 7, byte(startMs)}
		start := now.UnixNano() + startMs*int64(time.Millisecond)
		c := graph.Span{Trace: tr, ID: graph.SpanID{seq, 1}, Kind: graph.SpanClient, Service: from, Start: start, End: start + 20e6, Protocol: graph.ProtocolHTTP, Operation: "GET /cart", Attributes: fromAttrs}
		s := graph.Span{Trace: tr, ID: graph.SpanID{seq, 2}, Parent: c.ID, Kind: graph.SpanServer, Service: to, Start: start + 2e6, End: start + 15e6, Protocol: graph.ProtocolHTTP, Attributes: toAttrs}
		return []graph.Span{s, c} // the root's batch last
	}
	// Two collectors, each with its share of the traces.
	g1, g2 := newGraph(), newGraph()
	p1, err := storage.NewPersister(storage.PersisterOptions{Storage: openStore(t, db, "c1"), Edges: g1, Findings: findingSource(nil)})
	require.NoError(t, err)
	p2, err := storage.NewPersister(storage.PersisterOptions{Storage: openStore(t, db, "c2"), Edges: g2, Findings: findingSource(nil)})
	require.NoError(t, err)
	for tick := range 6 {
		ms := int64(tick) * 5000
		for _, g := range []*graph.Graph{g1, g2} {
			var spans []graph.Span
			spans = append(spans, call("web", "cart", res("production", "web", "k8s.deployment.name", "team-web"), res("production", "cart", "k8s.deployment.name", ""), ms+100)...)
			spans = append(spans, call("web-stg", "cart-stg", res("staging", "web", "k8s.deployment.name", "team-web"), res("staging", "cart", "k8s.statefulset.name", ""), ms+300)...)
			if tick >= 3 { // the owner changes half-way: the newer wins
				spans = append(spans, call("web", "pay", res("production", "web", "k8s.deployment.name", "team-storefront"), res("production", "pay", "k8s.deployment.name", "team-pay"), ms+500)...)
			}
			rej, why := g.ConsumeSpans(spans)
			require.Zero(t, rej, why)
		}
		now = now.Add(5 * time.Second)
		require.NoError(t, p1.Flush(ctx))
		require.NoError(t, p2.Flush(ctx))
	}
	live, err := g1.Snapshot(0)
	require.NoError(t, err)
	require.Equal(t, []string{"production", "staging"}, live.Environments())

	// A restart: a new Store on the database reads history.
	at := now.Truncate(5 * time.Second)
	past, err := storage.History{Storage: openStore(t, db, "c3")}.GraphAt(ctx, at, 2*time.Minute)
	require.NoError(t, err)
	var ids []string
	for _, n := range live.Nodes {
		ids = append(ids, n.ID)
		t.Run(n.ID, func(t *testing.T) {
			s, ok := past.Node(n.ID)
			require.True(t, ok)
			require.Equal(t, n.Attributes, s.Attributes)
			require.Equal(t, n.Environment, s.Environment)
			require.Equal(t, n.Owner, s.Owner)
		})
	}
	require.Contains(t, ids, "service:pay")
	web, _ := past.Node("service:web")
	require.Equal(t, "team-storefront", web.Owner)
	require.Equal(t, "web", web.Attributes["k8s.deployment.name"])
	cart, _ := past.Node("service:cart")
	require.Equal(t, "team-cart", cart.Owner, "an owner from the catalog is kept too")
	stg, _ := past.Node("service:cart-stg")
	require.Equal(t, "cart", stg.Attributes["k8s.statefulset.name"])
	require.Equal(t, live.Environments(), past.Environments())
	for _, env := range []string{"production", "staging"} {
		var want, got []string
		for _, n := range live.InEnvironment(env).Nodes {
			want = append(want, n.ID)
		}
		for _, n := range past.InEnvironment(env).Nodes {
			got = append(got, n.ID)
		}
		require.Equal(t, want, got, "env=%s", env)
	}
}

// TestOwnerMigrationExistingDeployment: the migration adding owners and
// node attributes runs over the tables of an existing deployment: rows
// written before read with no owner and no attributes, and a node's
// newest row that has attributes gives them, whatever rows without came
// after (a collector not yet upgraded).
func TestOwnerMigrationExistingDeployment(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	o := Options{DSN: dsnFor(chAddr, db)}.withDefaults()
	conn, _, err := connect(ctx, o)
	require.NoError(t, err)
	defer conn.Close()
	ms, err := migrations()
	require.NoError(t, err)
	i := slices.IndexFunc(ms, func(m migration) bool { return m.name == "owners_and_attributes" })
	require.Positive(t, i, "the migration exists")
	_, err = migrateTo(ctx, conn, db, o, ms[:i])
	require.NoError(t, err)

	t0 := recent()
	old := openStoreNoMigrate(t, db, "old")
	oldNode := "INSERT INTO " + old.q + ".nodes (time, width_ms, collector, kind, `group`, name) VALUES (?, 5000, 'old', 'service', '', ?)"
	require.NoError(t, conn.Exec(ctx, oldNode, t0, "web"))
	require.NoError(t, conn.Exec(ctx, "INSERT INTO "+old.q+".findings (id, version, collector, kind, state, severity, summary, evidence, started_at, last_seen) VALUES ('old-f', 1, 'old', 'retry_storm', 'firing', 'warning', 's', '{}', ?, ?)", t0, t0))

	applied, err := migrate(ctx, conn, db, o)
	require.NoError(t, err)
	require.Equal(t, ms[i].version, applied[0], "the owners migration, then the later ones")
	for j, v := range applied {
		require.Equal(t, ms[i+j].version, v)
	}
	stmts, err := ms[i].statements(migrationVars{DB: quoteIdent(db)})
	require.NoError(t, err)
	for _, s := range stmts {
		require.NoError(t, conn.Exec(ctx, s), "idempotent")
	}

	s := openStore(t, db, "new")
	fs, err := s.Findings(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Empty(t, fs[0].Owner, "a finding stored before has no owner")
	nodes, err := s.Nodes(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []graph.NodeSeen{{Start: t0, Width: time.Minute, Key: graph.NodeKey{Kind: graph.NodeService, Name: "web"}}}, nodes)

	// An upgraded collector writes attributes; an old one, later, none.
	attrs := map[string]string{graph.EnvironmentAttr: "production", "k8s.deployment.name": "web"}
	app := s.Appender()
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{{Start: t0.Add(5 * time.Second), Width: 5 * time.Second, Key: graph.NodeKey{Kind: graph.NodeService, Name: "web"}, Attributes: attrs, Owner: "team-web"}}))
	require.NoError(t, app.AppendFindings([]finding.Finding{{ID: "new-f", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityCritical, StartedAt: t0, LastSeen: t0, Owner: "team-web"}}))
	require.NoError(t, app.Commit(ctx))
	require.NoError(t, conn.Exec(ctx, oldNode, t0.Add(10*time.Second), "web"))
	nodes, err = s.Nodes(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, attrs, nodes[0].Attributes)
	require.Equal(t, "team-web", nodes[0].Owner)
	fs, err = s.Findings(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, fs, 2)
	require.Equal(t, "team-web", fs[0].Owner+fs[1].Owner)
}
