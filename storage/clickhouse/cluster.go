package clickhouse

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The cluster layout (MigrateCluster): on every node of the cluster, the
// tables the migrations make live in the database <db>_local (one shard's
// rows each), and <db> holds a Distributed table of the same name and
// columns in front of each, over every shard. The collectors read and
// write <db> as on one server; the one-minute rollup's materialized view
// runs on each shard's own edge_buckets, so each shard rolls up the rows
// it holds. Nothing of ClickHouse Keeper is needed: no ON CLUSTER DDL
// (MigrateCluster runs the DDL on each node itself), no replicated table.

// localSuffix names the database of the shards' own tables: <db>_local.
const localSuffix = "_local"

// distributedTables are the tables put behind a Distributed table, with
// their sharding keys: every row of an edge (and of its minute rollup) on
// one shard, so the merging GROUP BY adds up rows of one shard; a
// finding's versions, a lag series' samples, a trace's spans together, so
// FINAL, which each shard applies alone, sees all of them. The judge's
// lease and the collectors' heartbeats all on the first shard: the lease's
// one claim per term is ClickHouse's insert deduplication, which holds
// within one table of one server.
var distributedTables = []struct{ table, key string }{
	{"edge_buckets", "cityHash64(source_name, target_name)"},
	{"edge_buckets_1m", "cityHash64(source_name, target_name)"},
	{"findings", "cityHash64(id)"},
	{"lag_samples", "cityHash64(system, destination, consumer_group)"},
	{"nodes", "cityHash64(name)"},
	{"spans", "cityHash64(trace_id)"},
	{"changes", "cityHash64(id)"},
	{"judge_lease", "0"},
	{"collectors", "0"},
	{"review_history", "cityHash64(collector)"},
}

// MigrateCluster makes or upgrades the cluster layout of o.Cluster, a
// cluster of the remote_servers of the server o.DSN names: on each of its
// nodes (system.clusters, reached at their native port with the DSN's
// user and settings) it applies the migrations to <db>_local, with the
// retention of o, and puts a Distributed table in front of each in <db>,
// made anew when the migrations changed its columns. Running it again
// changes nothing.
func MigrateCluster(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Cluster == "" {
		return fmt.Errorf("clickhouse: MigrateCluster needs a cluster")
	}
	conn, db, err := connect(ctx, o)
	if err != nil {
		return err
	}
	nodes, err := clusterNodes(ctx, conn, o.Cluster)
	conn.Close()
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := migrateNode(ctx, o, db, n); err != nil {
			return fmt.Errorf("clickhouse: cluster %s, node %s: %w", o.Cluster, n, err)
		}
		o.Logger.Info("clickhouse: cluster node migrated", "cluster", o.Cluster, "node", n, "database", db)
	}
	return nil
}

// clusterNodes returns host:port of every node of cluster, shard by shard.
func clusterNodes(ctx context.Context, conn driver.Conn, cluster string) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT host_name, port, replica_num FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read system.clusters: %w", err))
	}
	defer rows.Close()
	var nodes []string
	for rows.Next() {
		var host string
		var port uint16
		var replica uint32
		if err := rows.Scan(&host, &port, &replica); err != nil {
			return nil, fmt.Errorf("clickhouse: read system.clusters: %w", err)
		}
		if replica > 1 {
			// Each replica would hold a judge_lease of its own, and two
			// could keep different claims of one term: the lease's one
			// holder per term needs one copy of the table.
			return nil, fmt.Errorf("clickhouse: cluster %q has shards of several replicas; the cluster layout is made for shards of one replica each (the judge's lease needs one copy of its table)", cluster)
		}
		nodes = append(nodes, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read system.clusters: %w", err))
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("clickhouse: cluster %q is not in system.clusters of the server the DSN names (remote_servers)", cluster)
	}
	return nodes, nil
}

// migrateNode makes the layout on one node.
func migrateNode(ctx context.Context, o Options, db, node string) error {
	opt, _, err := o.chOptions()
	if err != nil {
		return err
	}
	opt.Addr = []string{node}
	conn, err := ch.Open(opt)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := db + localSuffix
	if _, err := migrate(ctx, conn, local, o); err != nil {
		return err
	}
	q, lq := quoteIdent(db), quoteIdent(local)
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+q); err != nil {
		return classify(err)
	}
	for _, t := range distributedTables {
		same, exists, err := sameColumns(ctx, conn, db, local, t.table)
		if err != nil {
			return err
		}
		if exists && same {
			continue
		}
		if exists {
			// The migrations changed the table: a Distributed table holds
			// no rows (inserts go through at once), so it is made anew.
			if err := conn.Exec(ctx, "DROP TABLE "+q+"."+quoteIdent(t.table)+" SYNC"); err != nil {
				return classify(fmt.Errorf("drop %s.%s: %w", db, t.table, err))
			}
		}
		stmt := fmt.Sprintf("CREATE TABLE %s.%s AS %s.%s ENGINE = Distributed(%s, %s, %s, %s)",
			q, quoteIdent(t.table), lq, quoteIdent(t.table), quoteString(o.Cluster), quoteString(local), quoteString(t.table), t.key)
		if err := conn.Exec(ctx, stmt); err != nil {
			return classify(fmt.Errorf("create %s.%s: %w", db, t.table, err))
		}
	}
	return nil
}

// sameColumns reports whether db.table exists and has local.table's
// columns.
func sameColumns(ctx context.Context, conn driver.Conn, db, local, table string) (same, exists bool, err error) {
	cols := func(d string) ([]string, error) {
		rows, err := conn.Query(ctx, "SELECT name || ' ' || type FROM system.columns WHERE database = ? AND table = ? ORDER BY position", d, table)
		if err != nil {
			return nil, classify(fmt.Errorf("read columns of %s.%s: %w", d, table, err))
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, rows.Err()
	}
	a, err := cols(db)
	if err != nil || len(a) == 0 {
		return false, false, err
	}
	b, err := cols(local)
	if err != nil {
		return false, true, err
	}
	return slices.Equal(a, b), true, nil
}

// clusterLayout returns the database of the shards' own tables when db is
// a cluster layout (its edge_buckets is a Distributed table), "" when not.
func clusterLayout(ctx context.Context, conn driver.Conn, db string) (string, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'edge_buckets' AND engine = 'Distributed'", db).Scan(&n)
	if err != nil {
		return "", classify(fmt.Errorf("clickhouse: read system.tables: %w", err))
	}
	if n == 0 {
		return "", nil
	}
	return db + localSuffix, nil
}

func quoteString(s string) string { return "'" + s + "'" } // s is an identifier (checked)
