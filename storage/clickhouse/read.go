package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// edgeIdentity is what makes an edge (graph.SnapshotOf's merge key).
const edgeIdentity = "source_kind, source_group, source_name, target_kind, target_group, target_name, protocol, consumer_group"

// edgeSums are the merged aggregates of an edge, over its rows in a
// subquery with columns edge_kind, requests, ..., and the bins as sk/sc
// (server), ck/cc (client), dk/dc (delay), uk/uc (unanswered). The rows'
// seen must be graph.EdgeBucket.SeenCalls (never 0 where requests are
// not), or the sum would lose the calls rows that did not record them saw.
const edgeSums = `any(edge_kind) AS edge_kind,
			sum(requests) AS requests, sum(errors) AS errors, sum(retries) AS retries, sum(unanswered) AS unanswered,
			sum(seen) AS seen, sum(sampled) AS sampled`

// edgeOut leaves the bins empty: mergedBinsQuery fills them (sumMap is ten
// times slower than ARRAY JOIN + GROUP BY on this engine).
const edgeOut = `edge_kind, requests, errors, retries, unanswered, seen, sampled,
		CAST([] AS Array(Int32)), CAST([] AS Array(UInt64)), CAST([] AS Array(Int32)), CAST([] AS Array(UInt64)),
		CAST([] AS Array(Int32)), CAST([] AS Array(UInt64)), CAST([] AS Array(Int32)), CAST([] AS Array(UInt64))`

// rawEdgeColumns are edge_buckets' columns as the merging queries read
// them: seen is graph.EdgeBucket.SeenCalls. (The rollup's seen is already:
// its view and its column default make it so.)
const rawEdgeColumns = `edge_kind, requests, errors, retries, unanswered, if(seen = 0, requests, seen) AS seen, sampled,
				server_keys AS sk, server_counts AS sc, client_keys AS ck, client_counts AS cc,
				delay_keys AS dk, delay_counts AS dc, unanswered_keys AS uk, unanswered_counts AS uc`

// mergedEdgesQuery merges the buckets starting in [?1, ?4) per edge: the
// whole minutes [?2, ?3) from the rollup, the rest from edge_buckets.
func (s *Store) mergedEdgesQuery() string {
	return `SELECT ` + edgeIdentity + `, ` + edgeOut + `, h
	FROM (
		SELECT ` + edgeIdentity + `, ` + edgeSums + `, any(` + edgeHash + `) AS h
		FROM (
			SELECT ` + edgeIdentity + `, ` + rawEdgeColumns + `
			FROM ` + s.q + `.edge_buckets
			WHERE (bucket_start >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND bucket_start < fromUnixTimestamp64Milli(toInt64(?), 'UTC'))
			   OR (bucket_start >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND bucket_start < fromUnixTimestamp64Milli(toInt64(?), 'UTC'))
			UNION ALL
			SELECT ` + edgeIdentity + `, CAST(edge_kind AS LowCardinality(String)) AS edge_kind, requests, errors, retries, unanswered, seen, sampled,
				` + "`serverMap.key`, `serverMap.count`, `clientMap.key`, `clientMap.count`, `delayMap.key`, `delayMap.count`, `unansweredMap.key`, `unansweredMap.count`" + `
			FROM ` + s.q + `.edge_buckets_1m
			WHERE minute >= toDateTime(intDiv(toInt64(?), 1000), 'UTC') AND minute < toDateTime(intDiv(toInt64(?), 1000), 'UTC')
		)
		GROUP BY ` + edgeIdentity + `
	)`
}

// mergedSource is the rows of the buckets starting in [?1, ?4): the whole
// minutes [?2, ?3) from the rollup, the rest from edge_buckets.
func (s *Store) mergedSource() string {
	return `(SELECT ` + edgeIdentity + `, ` + rawEdgeColumns + `
			FROM ` + s.q + `.edge_buckets
			WHERE (bucket_start >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND bucket_start < fromUnixTimestamp64Milli(toInt64(?), 'UTC'))
			   OR (bucket_start >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND bucket_start < fromUnixTimestamp64Milli(toInt64(?), 'UTC'))
			UNION ALL
			SELECT ` + edgeIdentity + `, CAST(edge_kind AS LowCardinality(String)) AS edge_kind, requests, errors, retries, unanswered, seen, sampled,
				` + "`serverMap.key` AS sk, `serverMap.count` AS sc, `clientMap.key` AS ck, `clientMap.count` AS cc, `delayMap.key` AS dk, `delayMap.count` AS dc, `unansweredMap.key` AS uk, `unansweredMap.count` AS uc" + `
			FROM ` + s.q + `.edge_buckets_1m
			WHERE minute >= toDateTime(intDiv(toInt64(?), 1000), 'UTC') AND minute < toDateTime(intDiv(toInt64(?), 1000), 'UTC'))`
}

// mergedBinsQuery merges the latency bins of every edge over the rows of
// mergedSource, one row per edge and sketch (0 server, 1 client, 2 delay,
// 3 unanswered): each sketch's bins are unrolled with ARRAY JOIN and summed
// per index.
func (s *Store) mergedBinsQuery() string {
	part := func(which, k, c string) string {
		return `SELECT ` + edgeHash + ` AS h, ` + which + ` AS w, bk, bc FROM ` + s.mergedSource() + ` ARRAY JOIN ` + k + ` AS bk, ` + c + ` AS bc`
	}
	return `SELECT h, w, groupArray(bk), groupArray(s)
	FROM (
		SELECT h, w, bk, sum(bc) AS s
		FROM (` + part("0", "sk", "sc") + ` UNION ALL ` + part("1", "ck", "cc") + ` UNION ALL ` + part("2", "dk", "dc") + ` UNION ALL ` + part("3", "uk", "uc") + `)
		GROUP BY h, w, bk
	)
	GROUP BY h, w`
}

// edgeHash is a 64-bit hash of an edge's identity: grouping millions of
// unrolled bins by it is far cheaper than by eight strings.
const edgeHash = "cityHash64(" + edgeIdentity + ")"

// bucketsQuery reads the rows of the buckets starting in [?1, ?2) as
// stored.
func (s *Store) bucketsQuery() string {
	return `SELECT ` + edgeIdentity + `, bucket_start, width_ms, collector, edge_kind, requests, errors, retries, unanswered, seen, sampled,
			server_keys, server_counts, client_keys, client_counts, delay_keys, delay_counts, unanswered_keys, unanswered_counts
		FROM ` + s.q + `.edge_buckets
		WHERE bucket_start >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND bucket_start < fromUnixTimestamp64Milli(toInt64(?), 'UTC')`
}

// maxRollupMilli is the last minute the rollup's DateTime holds.
var maxRollupMilli = floorDiv(time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC).UnixMilli(), 60_000) * 60_000

// wholeMinutes splits [f, t) (Unix ms) into [f, a) + [a, b) + [b, t) with
// [a, b) the whole minutes in it that the rollup can hold (1970 to 2106);
// a = b = t when there are none.
func wholeMinutes(f, t int64) (a, b int64) {
	const minute = 60_000
	a = max(-floorDiv(-f, minute)*minute, 0) // ceil
	b = min(floorDiv(t, minute)*minute, maxRollupMilli)
	if a >= b {
		return t, t
	}
	return a, b
}

func floorDiv(x, y int64) int64 {
	q := x / y
	if x%y != 0 && (x < 0) != (y < 0) {
		q--
	}
	return q
}

// Edges returns the edges of every collector with buckets starting in
// [from, to), merged in ClickHouse: one graph.EdgeBucket per edge (source,
// target, protocol, consumer group) with Start = from and Width = to-from,
// its counts summed (Seen: the sum of graph.EdgeBucket.SeenCalls) and its
// sketches merged exactly (sumMap). The whole minutes of the range are
// read from the one-minute rollup, the rest from edge_buckets.
// graph.SnapshotOf of the result equals graph.SnapshotOf of the stored
// buckets; graph.Restore, which wants buckets of its own width, needs
// Buckets instead.
func (s *Store) Edges(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error) {
	return s.readEdges(ctx, "edges", false, from, to)
}

// Buckets returns the stored buckets starting in [from, to) as they are,
// one per collector, edge and bucket start, each of its own width: what
// graph.Restore wants (it adds up the collectors' buckets of the same
// edge and start, as graph.SnapshotOf does). It returns up to (collectors
// x edges x buckets) rows: use it for short ranges (restoring the live
// window), Edges for history.
func (s *Store) Buckets(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error) {
	return s.readEdges(ctx, "buckets", true, from, to)
}

func (s *Store) readEdges(ctx context.Context, name string, perBucket bool, from, to time.Time) (out []graph.EdgeBucket, err error) {
	if !from.Before(to) {
		return nil, nil
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery(name, start, err) }()
	f, t := ceilMilli(from), ceilMilli(to)
	query, args := s.bucketsQuery(), []any{f, t}
	if !perBucket {
		a, b := wholeMinutes(f, t)
		query, args = s.mergedEdgesQuery(), []any{f, a, b, t, a, b}
	}
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read edges [%v, %v): %w", from, to, err))
	}
	defer rows.Close()
	var (
		sk, tk, ek, proto string
		widthMs           uint32
		bucketStart       time.Time
		bad               int
		hashes            []uint64
	)
	for rows.Next() {
		var b graph.EdgeBucket
		dest := []any{&sk, &b.Source.Group, &b.Source.Name, &tk, &b.Target.Group, &b.Target.Name, &proto, &b.ConsumerGroup}
		if perBucket {
			dest = append(dest, &bucketStart, &widthMs, &b.Collector)
		}
		dest = append(dest, &ek, &b.Requests, &b.Errors, &b.Retries, &b.Unanswered, &b.Seen, &b.Sampled,
			&b.Server.Index, &b.Server.Count, &b.Client.Index, &b.Client.Count,
			&b.Delay.Index, &b.Delay.Count, &b.UnansweredLatency.Index, &b.UnansweredLatency.Count)
		var h uint64
		if !perBucket {
			dest = append(dest, &h)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("clickhouse: read edges: %w", err)
		}
		if err := decodeEdge(&b, sk, tk, ek, proto); err != nil {
			if bad == 0 {
				s.o.Logger.Warn("clickhouse: skipping a stored edge this build cannot read", "err", err)
			}
			bad++
			continue
		}
		if perBucket {
			b.Start, b.Width = bucketStart.UTC(), time.Duration(widthMs)*time.Millisecond
		} else {
			b.Start, b.Width = from, to.Sub(from)
		}
		for _, bins := range []*graph.Bins{&b.Server, &b.Client, &b.Delay, &b.UnansweredLatency} {
			if len(bins.Index) == 0 {
				*bins = graph.Bins{}
			}
		}
		out = append(out, b)
		hashes = append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read edges [%v, %v): %w", from, to, err))
	}
	if !perBucket && len(out) > 0 {
		a, b := wholeMinutes(f, t)
		if err := s.fillBins(ctx, out, hashes, []any{f, a, b, t, a, b}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillBins puts the merged latency bins on the merged edges; hashes[i] is
// the identity hash of edges[i].
func (s *Store) fillBins(ctx context.Context, edges []graph.EdgeBucket, hashes []uint64, src []any) error {
	byHash := make(map[uint64]*graph.EdgeBucket, len(edges))
	for i := range edges {
		byHash[hashes[i]] = &edges[i]
	}
	args := make([]any, 0, 4*len(src))
	for range 4 {
		args = append(args, src...)
	}
	rows, err := s.conn.Query(ctx, s.mergedBinsQuery(), args...)
	if err != nil {
		return classify(fmt.Errorf("clickhouse: read edge bins: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			h   uint64
			w   uint8
			idx []int32
			cnt []uint64
		)
		if err := rows.Scan(&h, &w, &idx, &cnt); err != nil {
			return fmt.Errorf("clickhouse: read edge bins: %w", err)
		}
		e := byHash[h]
		if e == nil || len(idx) == 0 || len(idx) != len(cnt) {
			continue
		}
		bins := graph.Bins{Index: idx, Count: cnt}
		sort.Sort(binOrder(bins))
		switch w {
		case 0:
			e.Server = bins
		case 1:
			e.Client = bins
		case 2:
			e.Delay = bins
		case 3:
			e.UnansweredLatency = bins
		}
	}
	if err := rows.Err(); err != nil {
		return classify(fmt.Errorf("clickhouse: read edge bins: %w", err))
	}
	return nil
}

// binOrder sorts bins by index, as graph.Bins keeps them.
type binOrder graph.Bins

func (b binOrder) Len() int           { return len(b.Index) }
func (b binOrder) Less(i, j int) bool { return b.Index[i] < b.Index[j] }
func (b binOrder) Swap(i, j int) {
	b.Index[i], b.Index[j] = b.Index[j], b.Index[i]
	b.Count[i], b.Count[j] = b.Count[j], b.Count[i]
}

func decodeEdge(b *graph.EdgeBucket, sk, tk, ek, proto string) error {
	if err := b.Source.Kind.UnmarshalText([]byte(sk)); err != nil {
		return err
	}
	if err := b.Target.Kind.UnmarshalText([]byte(tk)); err != nil {
		return err
	}
	if err := b.Kind.UnmarshalText([]byte(ek)); err != nil {
		return err
	}
	return b.Protocol.UnmarshalText([]byte(proto))
}

// Findings returns the latest state of each finding active in [from, to):
// started before to and not resolved before from, ordered by start.
func (s *Store) Findings(ctx context.Context, from, to time.Time) (out []finding.Finding, err error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("findings", start, err) }()
	// FINAL: the newest version of each id, before the filter.
	rows, err := s.conn.Query(ctx, `SELECT id, kind, state, severity,
			subject_node, subject_source, subject_target, subject_node_id, subject_edge_id,
			summary, evidence, started_at, fired_at, resolved_at, last_seen, blast_radius, peak, timeline, owner
		FROM `+s.q+`.findings FINAL
		WHERE started_at < fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		  AND (resolved_at IS NULL OR resolved_at >= fromUnixTimestamp64Milli(toInt64(?), 'UTC'))
		ORDER BY started_at, id`, ceilMilli(to), ceilMilli(from))
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read findings [%v, %v): %w", from, to, err))
	}
	defer rows.Close()
	bad := 0
	for rows.Next() {
		var (
			f                   finding.Finding
			kind, state, sev    string
			evidence, blast     string
			peak, timeline      string
			firedAt, resolvedAt *time.Time
			startedAt, lastSeen time.Time
		)
		if err := rows.Scan(&f.ID, &kind, &state, &sev,
			&f.Subject.Node, &f.Subject.Source, &f.Subject.Target, &f.Subject.NodeID, &f.Subject.EdgeID,
			&f.Summary, &evidence, &startedAt, &firedAt, &resolvedAt, &lastSeen, &blast, &peak, &timeline, &f.Owner); err != nil {
			return nil, fmt.Errorf("clickhouse: read findings: %w", err)
		}
		f.StartedAt, f.LastSeen, f.FiredAt, f.ResolvedAt = startedAt.UTC(), lastSeen.UTC(), utcPtr(firedAt), utcPtr(resolvedAt)
		err := decodeFinding(&f, kind, state, sev, evidence, blast, peak, timeline)
		if err != nil {
			if bad == 0 {
				s.o.Logger.Warn("clickhouse: skipping a stored finding this build cannot read", "id", f.ID, "err", err)
			}
			bad++
			continue
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read findings [%v, %v): %w", from, to, err))
	}
	return out, nil
}

func decodeFinding(f *finding.Finding, kind, state, sev, evidence, blast, peak, timeline string) error {
	if err := f.Kind.UnmarshalText([]byte(kind)); err != nil {
		return err
	}
	if err := f.State.UnmarshalText([]byte(state)); err != nil {
		return err
	}
	if err := f.Severity.UnmarshalText([]byte(sev)); err != nil {
		return err
	}
	if evidence != "" {
		if err := json.Unmarshal([]byte(evidence), &f.Evidence); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	if blast != "" {
		f.BlastRadius = new(finding.BlastRadius)
		if err := json.Unmarshal([]byte(blast), f.BlastRadius); err != nil {
			return fmt.Errorf("blast radius: %w", err)
		}
	}
	if peak != "" {
		f.Peak = new(finding.Peak)
		if err := json.Unmarshal([]byte(peak), f.Peak); err != nil {
			return fmt.Errorf("peak: %w", err)
		}
	}
	if timeline != "" {
		if err := json.Unmarshal([]byte(timeline), &f.Timeline); err != nil {
			return fmt.Errorf("timeline: %w", err)
		}
	}
	return nil
}

// Nodes returns the distinct nodes of every collector seen in buckets
// starting in [from, to): one graph.NodeSeen per node, with Start = from
// and Width = to-from (what history needs), ordered by kind, group, name,
// with the attributes and the owner of its newest row that has them.
func (s *Store) Nodes(ctx context.Context, from, to time.Time) (out []graph.NodeSeen, err error) {
	if !from.Before(to) {
		return nil, nil
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("nodes", start, err) }()
	rows, err := s.conn.Query(ctx, `SELECT kind, `+"`group`"+`, name,
			argMaxIf(attributes, time, length(attributes) > 0), argMaxIf(owner, time, owner != '')
		FROM `+s.q+`.nodes
		WHERE time >= fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		  AND time < fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		GROUP BY kind, `+"`group`"+`, name
		ORDER BY kind, `+"`group`"+`, name`, ceilMilli(from), ceilMilli(to))
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read nodes [%v, %v): %w", from, to, err))
	}
	defer rows.Close()
	bad := 0
	for rows.Next() {
		n := graph.NodeSeen{Start: from, Width: to.Sub(from)}
		var kind string
		if err := rows.Scan(&kind, &n.Key.Group, &n.Key.Name, &n.Attributes, &n.Owner); err != nil {
			return nil, fmt.Errorf("clickhouse: read nodes: %w", err)
		}
		if len(n.Attributes) == 0 {
			n.Attributes = nil
		}
		if err := n.Key.Kind.UnmarshalText([]byte(kind)); err != nil {
			if bad == 0 {
				s.o.Logger.Warn("clickhouse: skipping a stored node this build cannot read", "err", err)
			}
			bad++
			continue
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read nodes [%v, %v): %w", from, to, err))
	}
	return out, nil
}

// Lag returns the lag samples taken in [from, to), by time.
func (s *Store) Lag(ctx context.Context, from, to time.Time) (out []lag.Sample, err error) {
	if !from.Before(to) {
		return nil, nil
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("lag", start, err) }()
	rows, err := s.conn.Query(ctx, `SELECT time, system, destination, consumer_group, partition,
			lag, committed, `+"`end`"+`, consumers, produced, consumed, source, subjects
		FROM `+s.q+`.lag_samples FINAL
		WHERE time >= fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		  AND time < fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		ORDER BY time, system, destination, consumer_group, partition, source`, ceilMilli(from), ceilMilli(to))
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read lag [%v, %v): %w", from, to, err))
	}
	defer rows.Close()
	for rows.Next() {
		var l lag.Sample
		if err := rows.Scan(&l.Time, &l.System, &l.Destination, &l.Group, &l.Partition,
			&l.Lag, &l.Committed, &l.End, &l.Consumers, &l.Produced, &l.Consumed, &l.Source, &l.Subjects); err != nil {
			return nil, fmt.Errorf("clickhouse: read lag: %w", err)
		}
		l.Time = l.Time.UTC()
		if len(l.Subjects) == 0 {
			l.Subjects = nil
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read lag [%v, %v): %w", from, to, err))
	}
	return out, nil
}

// Begins returns when the oldest edge or node row stored starts, of every
// collector, raw or rolled up (a rollup row starts at its minute, so
// history begins on the minute of the oldest edge): no graph before it can
// be read. ok is false when the store holds none. Each table is read in
// its sort order, LIMIT 1, so the cost does not grow with the history kept.
func (s *Store) Begins(ctx context.Context) (begins time.Time, ok bool, err error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("begins", start, err) }()
	for _, q := range []string{
		`SELECT toUnixTimestamp64Milli(bucket_start) FROM ` + s.q + `.edge_buckets ORDER BY bucket_start LIMIT 1`,
		`SELECT toUnixTimestamp64Milli(toDateTime64(minute, 3, 'UTC')) FROM ` + s.q + `.edge_buckets_1m ORDER BY minute LIMIT 1`,
		`SELECT toUnixTimestamp64Milli(time) FROM ` + s.q + `.nodes ORDER BY time LIMIT 1`,
	} {
		rows, err := s.conn.Query(ctx, q)
		if err != nil {
			return time.Time{}, false, classify(fmt.Errorf("clickhouse: read where history begins: %w", err))
		}
		for rows.Next() {
			var ms int64
			if err := rows.Scan(&ms); err != nil {
				rows.Close()
				return time.Time{}, false, fmt.Errorf("clickhouse: read where history begins: %w", err)
			}
			if t := time.UnixMilli(ms).UTC(); !ok || t.Before(begins) {
				begins, ok = t, true
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return time.Time{}, false, classify(fmt.Errorf("clickhouse: read where history begins: %w", err))
		}
	}
	return begins, ok, nil
}
