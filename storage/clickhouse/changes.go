package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/seed-a49a8342/cartograph/graph/changes"
)

var _ changes.Store = (*Store)(nil)

// changeColumns are the columns AppendChanges writes, in order.
var changeColumns = []string{"id", "at", "collector", "kind", "node", "source", "target", "node_id", "edge_id", "source_id", "target_id", "attribute", "from_value", "to_value", "summary"}

// AppendChanges writes cs to the changes table (graph/changes.Store).
// Writing a change again is harmless: rows of one id are one after
// merges, and reads use FINAL.
func (s *Store) AppendChanges(ctx context.Context, cs []changes.Change) error {
	return s.insert(ctx, "changes", changeColumns, len(cs), func(b driver.Batch, i int) error {
		c := cs[i]
		return b.Append(c.ID, c.At.UTC(), s.o.Collector, c.Kind.String(), c.Node, c.Source, c.Target, c.NodeID, c.EdgeID, c.SourceID, c.TargetID, c.Attribute, c.From, c.To, c.Summary)
	})
}

// Changes returns the stored changes with at in [from, to], oldest first,
// of every collector (graph/changes.Store).
func (s *Store) Changes(ctx context.Context, from, to time.Time) (out []changes.Change, err error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("changes", start, err) }()
	rows, err := s.conn.Query(ctx, `SELECT id, at, kind, node, source, target, node_id, edge_id, source_id, target_id, attribute, from_value, to_value, summary
		FROM `+s.q+`.changes FINAL
		WHERE at >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND at <= fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		ORDER BY at, id`, ceilMilli(from), min(max(to.UnixMilli(), minMilli), maxMilli))
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read changes [%v, %v]: %w", from, to, err))
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var (
			c    changes.Change
			kind string
		)
		if err := rows.Scan(&c.ID, &c.At, &kind, &c.Node, &c.Source, &c.Target, &c.NodeID, &c.EdgeID, &c.SourceID, &c.TargetID, &c.Attribute, &c.From, &c.To, &c.Summary); err != nil {
			return nil, fmt.Errorf("clickhouse: read changes: %w", err)
		}
		if err := c.Kind.UnmarshalText([]byte(kind)); err != nil {
			s.o.Logger.Warn("clickhouse: skipping a stored change this build cannot read", "id", c.ID, "err", err)
			continue
		}
		if seen[c.ID] {
			continue // one change stored by two collectors
		}
		seen[c.ID] = true
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read changes: %w", err))
	}
	return out, nil
}
