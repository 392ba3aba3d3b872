package clickhouse

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// migrationFS holds the schema migrations, NNN_name.sql, applied in
// version order. A file is a text/template over migrationVars; its
// statements are separated by ';' at the end of a line and must be
// idempotent (IF NOT EXISTS), so that a migration interrupted half-way can
// run again. Never edit a released file: add a new one.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one file of migrationFS.
type migration struct {
	version int
	name    string
	file    string
}

// migrationVars are what migration templates may use.
type migrationVars struct {
	DB          string // quoted database name
	EdgeTTL     string // TTL expression of edge_buckets
	RollupTTL   string // of edge_buckets_1m
	FindingsTTL string
	LagTTL      string
	NodeTTL     string // of nodes
	SpansTTL    string // of spans
	ChangesTTL  string // of changes
}

// ttlExpr is a TTL expression keeping rows `keep` after the time in column
// col, written the way ClickHouse prints it back in system.tables, so that
// the current TTL can be compared with the wanted one.
func ttlExpr(col string, keep time.Duration) string {
	return fmt.Sprintf("toDateTime(%s) + toIntervalSecond(%d)", col, int64(keep/time.Second))
}

// ttlTables are the tables whose TTL follows Options: table -> expression.
func ttlTables(o Options) [][2]string {
	return [][2]string{
		{"edge_buckets", ttlExpr("bucket_start", o.Retention)},
		{"edge_buckets_1m", ttlExpr("minute", o.Retention)},
		{"lag_samples", ttlExpr("time", o.Retention)},
		{"findings", ttlExpr("last_seen", FindingsRetention)},
		{"nodes", ttlExpr("time", o.Retention)},
		{"spans", ttlExpr("start", o.RawSpansTTL)},
		{"changes", ttlExpr("at", o.Retention)},
	}
}

// migrations lists migrationFS in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".sql")
		num, name, ok2 := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil || v <= 0 || name == "" {
			return nil, fmt.Errorf("migration file %q: want NNN_name.sql", e.Name())
		}
		ms = append(ms, migration{version: v, name: name, file: path.Join("migrations", e.Name())})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].file, ms[i].file, ms[i].version)
		}
	}
	return ms, nil
}

// statements renders a migration file and splits it into statements.
func (m migration) statements(vars migrationVars) ([]string, error) {
	raw, err := migrationFS.ReadFile(m.file)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(m.file).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("migration %s: %w", m.file, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, vars); err != nil {
		return nil, fmt.Errorf("migration %s: %w", m.file, err)
	}
	var (
		out []string
		cur strings.Builder
	)
	for line := range strings.Lines(buf.String()) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out, nil
}

// Migrate creates the database when missing and brings its schema up to
// date: it applies, in order, the migrations not yet recorded in
// schema_migrations, then sets the tables' TTL to o.Retention when it
// differs. Running it again applies nothing. It is what Open runs, and what
// a `migrate` subcommand calls.
func Migrate(ctx context.Context, o Options) error {
	if o.Cluster != "" {
		return MigrateCluster(ctx, o)
	}
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	conn, db, err := connect(ctx, o)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = migrate(ctx, conn, db, o)
	return err
}

// migrate is Migrate on an open connection; it returns the versions it
// applied. A cluster layout (MigrateCluster) it leaves alone, after
// checking that every migration reached this node's shard: only
// MigrateCluster changes one.
func migrate(ctx context.Context, conn driver.Conn, db string, o Options) ([]int, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	local, err := clusterLayout(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	if local != "" {
		return nil, checkClusterNode(ctx, conn, db, local, ms)
	}
	return migrateTo(ctx, conn, db, o, ms)
}

// checkClusterNode fails when a migration of ms is missing from the
// shard's own tables (local) of the cluster layout db.
func checkClusterNode(ctx context.Context, conn driver.Conn, db, local string, ms []migration) error {
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+quoteIdent(local)+".schema_migrations FINAL")
	if err != nil {
		return classify(fmt.Errorf("clickhouse: read %s.schema_migrations: %w", local, err))
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("clickhouse: read %s.schema_migrations: %w", local, err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return classify(fmt.Errorf("clickhouse: read %s.schema_migrations: %w", local, err))
	}
	for _, m := range ms {
		if !applied[m.version] {
			return fmt.Errorf("clickhouse: %s is a cluster layout (Distributed tables over %s) without migration %03d_%s: run `collector migrate --cluster <name>` to upgrade it", db, local, m.version, m.name)
		}
	}
	return nil
}

// migrateTo is migrate with the migrations ms (tests make the schema of
// an earlier release with the first few).
func migrateTo(ctx context.Context, conn driver.Conn, db string, o Options, ms []migration) ([]int, error) {
	q := quoteIdent(db)
	exec := func(stmt string) error {
		if err := conn.Exec(ctx, stmt); err != nil {
			return classify(fmt.Errorf("clickhouse: migrate %s: %q: %w", db, firstLine(stmt), err))
		}
		return nil
	}
	if err := exec("CREATE DATABASE IF NOT EXISTS " + q); err != nil {
		return nil, err
	}
	if err := exec("CREATE TABLE IF NOT EXISTS " + q + `.schema_migrations
		(version UInt32, name String, applied_at DateTime64(3, 'UTC'))
		ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+q+".schema_migrations FINAL")
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read %s.schema_migrations: %w", db, err))
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse: read %s.schema_migrations: %w", db, err)
		}
		applied[int(v)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read %s.schema_migrations: %w", db, err))
	}

	ttl := ttlTables(o)
	vars := migrationVars{DB: q, EdgeTTL: ttl[0][1], RollupTTL: ttl[1][1], LagTTL: ttl[2][1], FindingsTTL: ttl[3][1], NodeTTL: ttl[4][1], SpansTTL: ttl[5][1], ChangesTTL: ttl[6][1]}
	var done []int
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		stmts, err := m.statements(vars)
		if err != nil {
			return done, err
		}
		for _, s := range stmts {
			if err := exec(s); err != nil {
				return done, fmt.Errorf("migration %03d_%s: %w", m.version, m.name, err)
			}
		}
		wctx := ch.Context(ctx, ch.WithSettings(ch.Settings{"async_insert": 0}))
		if err := conn.Exec(wctx, "INSERT INTO "+q+".schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			uint32(m.version), m.name, o.Now().UTC()); err != nil {
			return done, classify(fmt.Errorf("clickhouse: record migration %03d_%s: %w", m.version, m.name, err))
		}
		o.Logger.Info("clickhouse: applied migration", "database", db, "version", m.version, "name", m.name)
		done = append(done, m.version)
	}
	for v := range applied {
		if !slices.ContainsFunc(ms, func(m migration) bool { return m.version == v }) {
			o.Logger.Warn("clickhouse: the database has a migration this build does not know (written by a newer version?)", "database", db, "version", v)
		}
	}

	// Retention: the migrations bake the TTL in when they create a table;
	// when Options ask for another, change it. ClickHouse recomputes the
	// TTL of existing parts in a background mutation.
	for _, t := range ttl {
		var engine string
		if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?", db, t[0]).Scan(&engine); errors.Is(err, sql.ErrNoRows) {
			continue // not made by the migrations applied (tests migrate to an earlier release)
		} else if err != nil {
			return done, classify(fmt.Errorf("clickhouse: read TTL of %s.%s: %w", db, t[0], err))
		}
		if strings.Contains(engine, "TTL "+t[1]) {
			continue
		}
		if err := exec(fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL %s", q, t[0], t[1])); err != nil {
			return done, err
		}
		o.Logger.Info("clickhouse: changed retention", "database", db, "table", t[0], "ttl", t[1])
	}
	return done, nil
}

func quoteIdent(s string) string { return "`" + s + "`" }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
