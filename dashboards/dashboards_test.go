package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
)

const datasourceType = "grafana-clickhouse-datasource"

// chAddr is the native address of the test ClickHouse (cmd/testenv's, or
// CARTOGRAPH_TEST_CLICKHOUSE), set by TestMain.
var chAddr string

func TestMain(m *testing.M) {
	var err error
	if chAddr, _, err = need.LookupClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// The parts of Grafana's dashboard model the checks need.
type (
	dashboard struct {
		UID         string  `json:"uid"`
		Title       string  `json:"title"`
		Panels      []panel `json:"panels"`
		Annotations struct {
			List []struct {
				Name       string      `json:"name"`
				BuiltIn    int         `json:"builtIn"`
				Datasource *datasource `json:"datasource"`
				Target     *query      `json:"target"`
			} `json:"list"`
		} `json:"annotations"`
		Templating struct {
			List []variable `json:"list"`
		} `json:"templating"`
	}
	panel struct {
		ID         int         `json:"id"`
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Datasource *datasource `json:"datasource"`
		Targets    []query     `json:"targets"`
		Panels     []panel     `json:"panels"` // a collapsed row's
	}
	datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	query struct {
		Datasource *datasource `json:"datasource"`
		EditorType string      `json:"editorType"`
		Format     *int        `json:"format"`
		RawSQL     string      `json:"rawSql"`
		RefID      string      `json:"refId"`
	}
	variable struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Query      json.RawMessage `json:"query"`
		Datasource *datasource     `json:"datasource"`
		Multi      bool            `json:"multi"`
		IncludeAll bool            `json:"includeAll"`
	}
)

// formats of the ClickHouse plugin's queries.
const (
	formatTimeSeries = 0
	formatTable      = 1
)

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]dashboard{}
	uids := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(raw, &d), f)
		require.NotEmpty(t, d.UID, f)
		require.NotEmpty(t, d.Title, f)
		if other, dup := uids[d.UID]; dup {
			t.Fatalf("%s and %s share uid %s", f, other, d.UID)
		}
		uids[d.UID] = f
		out[f] = d
	}
	return out
}

// leaves returns the panels that show data (rows flattened away).
func leaves(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, leaves(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func TestDashboardsWellFormed(t *testing.T) {
	for f, d := range loadDashboards(t) {
		t.Run(f, func(t *testing.T) {
			ids := map[int]bool{}
			ps := leaves(d.Panels)
			require.NotEmpty(t, ps)
			for _, p := range ps {
				require.False(t, ids[p.ID], "panel id %d twice", p.ID)
				ids[p.ID] = true
				require.NotNil(t, p.Datasource, "panel %q: no data source", p.Title)
				require.Equal(t, datasourceType, p.Datasource.Type, "panel %q", p.Title)
				require.NotEmpty(t, p.Targets, "panel %q: no query", p.Title)
				for _, q := range p.Targets {
					checkQuery(t, p.Title, q)
				}
			}
			for _, a := range d.Annotations.List {
				if a.BuiltIn == 1 {
					continue
				}
				require.NotNil(t, a.Datasource, "annotation %q", a.Name)
				require.Equal(t, datasourceType, a.Datasource.Type, "annotation %q", a.Name)
				require.NotNil(t, a.Target, "annotation %q: no query", a.Name)
				checkQuery(t, "annotation "+a.Name, *a.Target)
			}
			var names []string
			for _, v := range d.Templating.List {
				names = append(names, v.Name)
				switch v.Type {
				case "datasource":
					require.Equal(t, `"`+datasourceType+`"`, string(v.Query), "variable %s", v.Name)
				case "query":
					require.NotNil(t, v.Datasource, "variable %s", v.Name)
					require.Equal(t, datasourceType, v.Datasource.Type, "variable %s", v.Name)
				}
			}
			require.Contains(t, names, "datasource", "a data source variable, so the dashboard works with any ClickHouse data source")
			require.Contains(t, names, "database", "a database variable: the tables live in the DSN's database")
		})
	}
}

func checkQuery(t *testing.T, where string, q query) {
	t.Helper()
	require.NotNil(t, q.Datasource, "%s: query without data source", where)
	require.Equal(t, datasourceType, q.Datasource.Type, where)
	require.Equal(t, "sql", q.EditorType, where)
	require.NotNil(t, q.Format, "%s: format", where)
	require.Contains(t, []int{formatTimeSeries, formatTable}, *q.Format, where)
	require.NotEmpty(t, strings.TrimSpace(q.RawSQL), where)
	require.Contains(t, q.RawSQL, "${database}.", "%s: tables are named in the database variable", where)
}

// grafanaRange is what the plugin would expand its macros with.
type grafanaRange struct {
	from, to time.Time
	interval time.Duration
}

var (
	macroRE    = regexp.MustCompile(`\$__(timeFilter|timeFilter_ms|dateFilter)\(([^()]*)\)`)
	variableRE = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}`)
)

// expand substitutes the ClickHouse plugin's macros (as its backend expands
// them: $__timeFilter(c) is c >= toDateTime(from) AND c <= toDateTime(to),
// $__fromTime/$__toTime are toDateTime(unix seconds), $__interval_s at least
// 1) and the dashboard variables (${v:singlequote} as a quoted list, ${v}
// as the value); it fails on anything left over.
func expand(t *testing.T, sql string, r grafanaRange, vars map[string][]string) string {
	t.Helper()
	sql = macroRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := macroRE.FindStringSubmatch(m)
		col := strings.TrimSpace(sub[2])
		switch sub[1] {
		case "timeFilter":
			return fmt.Sprintf("%s >= toDateTime(%d) AND %s <= toDateTime(%d)", col, r.from.Unix(), col, r.to.Unix())
		case "timeFilter_ms":
			return fmt.Sprintf("%s >= fromUnixTimestamp64Milli(%d) AND %s <= fromUnixTimestamp64Milli(%d)", col, r.from.UnixMilli(), col, r.to.UnixMilli())
		default:
			return fmt.Sprintf("%s >= toDate('%s') AND %s <= toDate('%s')", col, r.from.Format(time.DateOnly), col, r.to.Format(time.DateOnly))
		}
	})
	repl := strings.NewReplacer(
		"$__fromTime_ms", fmt.Sprintf("fromUnixTimestamp64Milli(%d)", r.from.UnixMilli()),
		"$__toTime_ms", fmt.Sprintf("fromUnixTimestamp64Milli(%d)", r.to.UnixMilli()),
		"$__fromTime", fmt.Sprintf("toDateTime(%d)", r.from.Unix()),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", r.to.Unix()),
		"$__interval_s", fmt.Sprint(max(int(r.interval.Seconds()), 1)),
	)
	sql = repl.Replace(sql)
	sql = variableRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := variableRE.FindStringSubmatch(m)
		vals, ok := vars[sub[1]]
		require.True(t, ok, "unknown variable %s", m)
		switch sub[2] {
		case "singlequote":
			if len(vals) == 0 {
				return "''" // Grafana's All over no options
			}
			q := make([]string, len(vals))
			for i, v := range vals {
				q[i] = "'" + strings.ReplaceAll(v, "'", "\\'") + "'"
			}
			return strings.Join(q, ",")
		case "":
			require.Len(t, vals, 1, "%s takes one value", m)
			return vals[0]
		default:
			t.Fatalf("variable format %s is not expanded by this test", m)
			return ""
		}
	})
	require.NotContains(t, sql, "$", "macro or variable left over in:\n%s", sql)
	return sql
}

// result is a query's rows, by column name.
type result struct {
	cols []string
	rows []map[string]any
}

func run(t *testing.T, conn driver.Conn, sql string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, sql)
	require.NoError(t, err, "query:\n%s", sql)
	defer rows.Close()
	var res result
	types := rows.ColumnTypes()
	for _, ct := range types {
		res.cols = append(res.cols, ct.Name())
	}
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		require.NoError(t, rows.Scan(dest...))
		row := map[string]any{}
		for i, c := range res.cols {
			row[c] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		res.rows = append(res.rows, row)
	}
	require.NoError(t, rows.Err())
	return res
}

// number returns v as a float64, and false for NULL or a non-number.
func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return 0, false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	}
	return 0, false
}

func str(v any) string {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return ""
		}
		rv = rv.Elem()
	}
	return fmt.Sprint(rv.Interface())
}

// fixture is what the test stores, and what the dashboards must show.
type fixture struct {
	now time.Time
	// checkout's server latencies (ms) over the range: the services
	// table's quantiles must be this sketch's.
	checkout *ddsketch.DDSketch
	// requests, errors, retries into checkout / on checkout -> payment.
	checkoutRequests, paymentRequests, paymentRetries uint64
	lastLag                                           float64
}

// storeFixture writes a small shop into a fresh database through the ClickHouse
// backend's own appender: 18 minutes of 5s edge buckets (HTTP, gRPC with
// errors and retries, Kafka produce and consume with delays), lag readings
// of a consumer group catching up on two partitions, and three findings
// (firing, resolved, pending).
func storeFixture(t *testing.T, db string) fixture {
	t.Helper()
	ctx := context.Background()
	// Inside the range, minute-aligned, the minute in progress excluded
	// from the time series: start 20 minutes ago, stop 2 minutes ago.
	now := time.Now().UTC().Truncate(time.Minute)
	fx := fixture{now: now}
	m, err := mapping.NewLogarithmicMapping(graph.LatencyRelativeAccuracy)
	require.NoError(t, err)
	newSketch := func() *ddsketch.DDSketch {
		return ddsketch.NewDDSketch(m, store.NewDenseStore(), store.NewDenseStore())
	}
	fx.checkout = newSketch()

	svc := func(name string) graph.NodeKey {
		return graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: name}
	}
	orders := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}
	client := graph.NodeKey{Kind: graph.NodeClient, Name: "client"}
	type edgeSpec struct {
		src, dst graph.NodeKey
		kind     graph.EdgeKind
		proto    graph.Protocol
		group    string
		n        int     // calls per bucket
		base     float64 // ms
		errEvery int
		retries  int
	}
	specs := []edgeSpec{
		{src: client, dst: svc("frontend"), kind: graph.EdgeSync, proto: graph.ProtocolHTTP, n: 20, base: 30},
		{src: svc("frontend"), dst: svc("checkout"), kind: graph.EdgeSync, proto: graph.ProtocolHTTP, n: 10, base: 20, errEvery: 10},
		{src: svc("checkout"), dst: svc("payment"), kind: graph.EdgeSync, proto: graph.ProtocolGRPC, n: 8, base: 5, errEvery: 4, retries: 2},
		{src: svc("checkout"), dst: orders, kind: graph.EdgeAsync, proto: graph.ProtocolKafka, n: 5, base: 1},
		{src: orders, dst: svc("billing"), kind: graph.EdgeAsync, proto: graph.ProtocolKafka, group: "billing", n: 5, base: 3},
	}
	var buckets []graph.EdgeBucket
	seq := 0
	for start := now.Add(-20 * time.Minute); start.Before(now.Add(-2 * time.Minute)); start = start.Add(5 * time.Second) {
		for _, s := range specs {
			b := graph.EdgeBucket{Start: start, Width: 5 * time.Second, Source: s.src, Target: s.dst, Kind: s.kind, Protocol: s.proto,
				ConsumerGroup: s.group, Requests: uint64(s.n), Retries: uint64(s.retries)}
			server, caller, delay := newSketch(), newSketch(), newSketch()
			for i := range s.n {
				seq++
				v := s.base * (1 + float64(seq%97)/10) // spread over ~10x
				if seq%53 == 0 {
					v = 0 // a zero latency lands in the zero bin
				}
				require.NoError(t, server.Add(v))
				require.NoError(t, caller.Add(v+0.5))
				if s.errEvery > 0 && i%s.errEvery == 0 {
					b.Errors++
				}
				if s.group != "" {
					require.NoError(t, delay.Add(float64(10+seq%40)))
				}
				if s.dst == svc("checkout") {
					require.NoError(t, fx.checkout.Add(v))
				}
			}
			if s.dst.Kind == graph.NodeService {
				b.Server = graph.BinsOf(server)
			}
			b.Client = graph.BinsOf(caller)
			b.Delay = graph.BinsOf(delay)
			buckets = append(buckets, b)
			switch s.dst {
			case svc("checkout"):
				fx.checkoutRequests += b.Requests
			case svc("payment"):
				fx.paymentRequests += b.Requests
				fx.paymentRetries += b.Retries
			}
		}
	}

	var samples []lag.Sample
	for i, ts := 0, now.Add(-20*time.Minute); ts.Before(now.Add(-2 * time.Minute)); i, ts = i+1, ts.Add(15*time.Second) {
		for p := range int32(2) {
			end := 100_000 + float64(i)*150      // 10 msg/s produced
			committed := 95_000 + float64(i)*180 // 12 msg/s consumed: catching up
			samples = append(samples, lag.Sample{Time: ts, Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: p},
				Lag: end - committed, Committed: committed, End: end, Consumers: 2, Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller"})
			fx.lastLag = end - committed
		}
	}
	fx.lastLag *= 2 // two partitions

	ptr := func(t time.Time) *time.Time { return &t }
	findings := []finding.Finding{
		{ID: "storm-1", Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityCritical,
			Subject: finding.Subject{Source: "checkout", Target: "payment"}, Summary: "checkout retries payment",
			Evidence: map[string]any{"retry_ratio": 0.25}, StartedAt: now.Add(-11 * time.Minute), FiredAt: ptr(now.Add(-10 * time.Minute)), LastSeen: now.Add(-time.Minute)},
		{ID: "lag-1", Kind: finding.KindConsumerLag, State: finding.StateResolved, Severity: finding.SeverityWarning,
			Subject: finding.Subject{Source: "orders", Target: "billing"}, Summary: "billing falls behind orders",
			StartedAt: now.Add(-20 * time.Minute), FiredAt: ptr(now.Add(-19 * time.Minute)), ResolvedAt: ptr(now.Add(-12 * time.Minute)), LastSeen: now.Add(-13 * time.Minute)},
		{ID: "slow-1", Kind: finding.KindBottleneck, State: finding.StatePending, Severity: finding.SeverityWarning,
			Subject: finding.Subject{Node: "payment"}, Summary: "payment is slow", StartedAt: now.Add(-3 * time.Minute), LastSeen: now.Add(-time.Minute)},
	}

	s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: "clickhouse://" + chAddr + "/" + db, Collector: "test"})
	require.NoError(t, err)
	defer s.Close()
	app := s.Appender()
	require.NoError(t, app.AppendEdges(buckets))
	require.NoError(t, app.AppendLag(samples))
	require.NoError(t, app.AppendFindings(findings))
	require.NoError(t, app.Commit(ctx))
	return fx
}

func freshDB(t *testing.T, conn driver.Conn) string {
	t.Helper()
	db := fmt.Sprintf("cartograph_dash_%d_%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC"); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	return db
}

// TestDashboardQueries runs every query of every dashboard (variables,
// panels, annotations) against cartograph's schema in a real ClickHouse,
// filled by the storage backend, with the macros and variables expanded
// as Grafana would: every query must run and return rows, the time series
// must have a time column and a number in each row, and the key numbers
// must be those of the stored data.
func TestDashboardQueries(t *testing.T) {
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	db := freshDB(t, conn)
	fx := storeFixture(t, db)

	r := grafanaRange{from: fx.now.Add(-30 * time.Minute), to: fx.now, interval: time.Minute}
	results := map[string]result{} // "file/panel title" -> rows
	for f, d := range loadDashboards(t) {
		t.Run(f, func(t *testing.T) {
			vars := map[string][]string{"database": {db}}
			// Variables first, in order (later ones may use earlier ones);
			// a query variable set to All expands to every value it lists.
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				var q struct {
					RawSQL string `json:"rawSql"`
				}
				require.NoError(t, json.Unmarshal(v.Query, &q), "variable %s", v.Name)
				res := run(t, conn, expand(t, q.RawSQL, r, vars))
				require.NotEmpty(t, res.rows, "variable %s lists no values", v.Name)
				require.Len(t, res.cols, 1, "variable %s", v.Name)
				var vals []string
				for _, row := range res.rows {
					vals = append(vals, str(row[res.cols[0]]))
				}
				require.True(t, v.Multi && v.IncludeAll, "variable %s: multi-value with All, as the panels filter with IN", v.Name)
				vars[v.Name] = vals
			}
			for _, a := range d.Annotations.List {
				if a.Target == nil {
					continue
				}
				res := run(t, conn, expand(t, a.Target.RawSQL, r, vars))
				require.NotEmpty(t, res.rows, "annotation %s", a.Name)
				for _, c := range []string{"time", "timeEnd", "text", "tags"} {
					require.Contains(t, res.cols, c, "annotation %s", a.Name)
				}
			}
			for _, p := range leaves(d.Panels) {
				for _, q := range p.Targets {
					res := run(t, conn, expand(t, q.RawSQL, r, vars))
					require.NotEmpty(t, res.rows, "panel %q returns no rows", p.Title)
					if *q.Format == formatTimeSeries {
						require.Equal(t, "time", res.cols[0], "panel %q: time series start with a time column", p.Title)
						var last time.Time
						for _, row := range res.rows {
							ts, isTime := row["time"].(time.Time)
							require.True(t, isTime, "panel %q: time is %T", p.Title, row["time"])
							require.False(t, ts.Before(last), "panel %q: rows not in time order (Grafana's long-to-wide needs them sorted)", p.Title)
							last = ts
							var numbers int
							for _, c := range res.cols[1:] {
								if _, ok := number(row[c]); ok {
									numbers++
								}
							}
							require.Positive(t, numbers, "panel %q: a row without a value: %v", p.Title, row)
						}
					}
					results[f+"/"+p.Title] = res
				}
			}
		})
	}

	t.Run("service quantiles are DDSketch's", func(t *testing.T) {
		res := results["services.json/Services over the time range"]
		row := find(t, res, "service", "checkout")
		n, _ := number(row["calls"])
		require.Equal(t, float64(fx.checkoutRequests), n)
		for col, q := range map[string]float64{"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99} {
			want, err := fx.checkout.GetValueAtQuantile(q)
			require.NoError(t, err)
			got, ok := number(row[col])
			require.True(t, ok, col)
			require.InDelta(t, want, got, 1e-9*want, "%s of checkout: SQL %v, Go DDSketch %v", col, got, want)
		}
		e, _ := number(row["error_ratio"])
		require.InDelta(t, 0.1, e, 1e-9, "frontend -> checkout fails 1 call in 10")
	})
	t.Run("edge retry ratio", func(t *testing.T) {
		res := results["edges.json/Edges over the time range"]
		row := find(t, res, "target", "payment")
		got, _ := number(row["retry_ratio"])
		require.InDelta(t, float64(fx.paymentRetries)/float64(fx.paymentRequests), got, 1e-9)
		_, ok := number(row["delay_p95_ms"])
		require.False(t, ok, "a sync edge has no delay")
		billing := find(t, res, "target", "billing")
		d, ok := number(billing["delay_p95_ms"])
		require.True(t, ok)
		require.True(t, d >= 10 && d <= 50*1.01, "delay p95 %v within the stored 10..49 ms", d)
	})
	t.Run("rates cover whole minutes", func(t *testing.T) {
		// 20 calls per 5s bucket into frontend: 4/s in every complete minute.
		res := results["services.json/Requests per second, by service"]
		var seen int
		for _, row := range res.rows {
			if row["service"] == "frontend" {
				v, _ := number(row["requests_per_s"])
				require.InDelta(t, 4, v, 1e-9, "at %v", row["time"])
				seen++
			}
		}
		require.Equal(t, 18, seen, "one point per stored minute")
		// All edges: (20+10+8+5+5) calls per 5s bucket = 9.6/s, all by
		// the one collector that wrote them.
		res = results["services.json/Requests per second, by collector"]
		require.Len(t, res.rows, 18)
		for _, row := range res.rows {
			require.Equal(t, "test", str(row["collector"]))
			v, _ := number(row["requests_per_s"])
			require.InDelta(t, 9.6, v, 1e-9, "at %v", row["time"])
		}
	})
	t.Run("lag and drain time", func(t *testing.T) {
		res := results["lag.json/Consumer groups now"]
		row := find(t, res, "consumer_group", "billing")
		l, _ := number(row["lag"])
		require.Equal(t, fx.lastLag, l)
		c, _ := number(row["consumers"])
		require.Equal(t, 4.0, c, "2 members reported on each of 2 partitions")
		pr, _ := number(row["produce_per_s"])
		cr, _ := number(row["consume_per_s"])
		require.InDelta(t, 20, pr, 1e-6, "10 msg/s on each of 2 partitions")
		require.InDelta(t, 24, cr, 1e-6, "12 msg/s on each of 2 partitions")
		d, ok := number(row["drain_s"])
		require.True(t, ok)
		require.InDelta(t, fx.lastLag/4, d, 1e-6, "lag / (consume - produce)")
	})
	t.Run("findings", func(t *testing.T) {
		res := results["findings.json/Findings in the time range"]
		require.Len(t, res.rows, 3)
		require.Equal(t, "firing", str(res.rows[0]["state"]), "firing first")
		require.Equal(t, "checkout -> payment", str(res.rows[0]["subject"]))
		firing := results["findings.json/Firing findings, by kind"]
		kinds := map[string]int{}
		for _, row := range firing.rows {
			kinds[str(row["kind"])]++
		}
		require.Contains(t, kinds, "retry_storm")
		require.Contains(t, kinds, "consumer_lag")
		require.NotContains(t, kinds, "bottleneck", "a pending finding is not firing")
		// The resolved lag finding fired 19 minutes ago and resolved 12
		// minutes ago: 7 minutes in 1-minute slots, 8 slots touched.
		require.Equal(t, 8, kinds["consumer_lag"])
		timeline := results["findings.json/Findings timeline"]
		states := map[string][]float64{}
		for _, row := range timeline.rows {
			v, _ := number(row["state_code"])
			states[str(row["finding"])] = append(states[str(row["finding"])], v)
		}
		require.Len(t, states, 3)
		require.Equal(t, []float64{1, 1, 1, 1}, uniq(states["bottleneck: payment"]), "pending until now")
		storm := states["retry_storm: checkout -> payment"]
		require.Equal(t, 1.0, storm[0], "pending before it fired")
		require.Equal(t, 2.0, storm[len(storm)-1], "firing since")
	})
}

// uniq returns the values of v sorted (a check of which values occur and
// how many, without depending on the exact row order within a time).
func uniq(v []float64) []float64 {
	out := append([]float64(nil), v...)
	sort.Float64s(out)
	return out
}

func find(t *testing.T, res result, col, val string) map[string]any {
	t.Helper()
	for _, row := range res.rows {
		if str(row[col]) == val {
			return row
		}
	}
	t.Fatalf("no row with %s = %q in %v", col, val, res.rows)
	return nil
}
