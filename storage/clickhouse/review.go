package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/seed-a49a8342/cartograph/graph/review"
)

// AppendReview writes rep to review_history, this collector's: the first
// review of a run of equal observations (graph/review.History's Store).
func (s *Store) AppendReview(ctx context.Context, rep review.Report) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("clickhouse: encode review: %w", err)
	}
	ids := make([]string, len(rep.Observations))
	for i, o := range rep.Observations {
		ids[i] = o.ID
	}
	slices.Sort(ids)
	return s.insert(ctx, "review_history", []string{"collector", "generated_at", "ids", "report"}, 1, func(b driver.Batch, _ int) error {
		return b.Append(s.o.Collector, rep.GeneratedAt.UTC(), ids, string(body))
	})
}

// ReviewAt returns this collector's newest review written at or before t.
func (s *Store) ReviewAt(ctx context.Context, t time.Time) (rep review.Report, ok bool, err error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { s.m.observeQuery("review_history", start, err) }()
	rows, err := s.conn.Query(ctx, `SELECT report FROM `+s.q+`.review_history
		WHERE collector = ? AND generated_at <= fromUnixTimestamp64Milli(toInt64(?), 'UTC')
		ORDER BY generated_at DESC LIMIT 1`, s.o.Collector, t.UnixMilli())
	if err != nil {
		return rep, false, classify(fmt.Errorf("clickhouse: read the review at %v: %w", t, err))
	}
	defer rows.Close()
	if !rows.Next() {
		return rep, false, classify(rows.Err())
	}
	var body string
	if err := rows.Scan(&body); err != nil {
		return rep, false, fmt.Errorf("clickhouse: read the review at %v: %w", t, err)
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		return rep, false, fmt.Errorf("clickhouse: decode the review at %v: %w", t, err)
	}
	return rep, true, nil
}
