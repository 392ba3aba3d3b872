package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
)

// tableSpans holds raw spans (migrations/006_spans.sql).
const tableSpans = "spans"

var spanColumns = []string{
	"trace_id", "span_id", "parent_span_id", "collector", "service", "namespace", "name", "kind",
	"status_code", "status_message", "start", "duration_ns", "attributes", "link_trace_ids", "link_span_ids",
}

var (
	_ storage.SpanAppender = (*appender)(nil)
	_ storage.TraceReader  = (*Store)(nil)
)

// DateTime64(9) holds 1900-01-01 to 2262-04-11.
var (
	minSpanTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxSpanTime = time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC)
)

// AppendSpans adds raw spans to the batch (storage.SpanAppender). Spans
// whose start DateTime64(9) cannot hold are skipped and counted as
// invalid. The appender keeps the spans until Commit or Rollback.
func (a *appender) AppendSpans(spans []storage.Span) error {
	if a.done {
		return errAppenderDone
	}
	bad := 0
	for i := range spans {
		if st := spans[i].Start; st.Before(minSpanTime) || !st.Before(maxSpanTime) {
			if bad == 0 {
				a.s.o.Logger.Warn("clickhouse: skipping a span that cannot be stored", "err", fmt.Errorf("span start %v out of range", st))
			}
			bad++
			continue
		}
		a.spans = append(a.spans, spans[i])
	}
	a.s.m.rows.WithLabelValues(tableSpans, "invalid").Add(float64(bad))
	return nil
}

// insertSpans sends the batch's spans.
func (a *appender) insertSpans(ctx context.Context) error {
	s := a.s
	return s.insert(ctx, tableSpans, spanColumns, len(a.spans), func(b driver.Batch, i int) error {
		sp := &a.spans[i]
		attrs := sp.Attributes
		if attrs == nil {
			attrs = map[string]string{}
		}
		lt, ls := make([]string, len(sp.Links)), make([]string, len(sp.Links))
		for k, l := range sp.Links {
			lt[k], ls[k] = string(l.Trace[:]), string(l.Span[:])
		}
		return b.Append(string(sp.Trace[:]), string(sp.ID[:]), string(sp.Parent[:]), s.o.Collector,
			sp.Service, sp.Namespace, sp.Name, storage.SpanKindName(sp.Kind),
			sp.Status.String(), sp.StatusMessage, sp.Start.UTC(), uint64(max(sp.Duration, 0)), attrs, lt, ls)
	})
}

// Trace returns the stored spans of trace id, by start time (at most
// MaxTraceSpans); none when the trace is unknown (not sampled, expired,
// or never seen). The error wraps storage.ErrUnavailable when the server
// cannot be reached.
func (s *Store) Trace(ctx context.Context, id graph.TraceID) ([]storage.Span, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	start := time.Now()
	out, err := s.readTrace(ctx, id)
	s.m.observeQuery("trace", start, err)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read trace %x: %w", id[:], err))
	}
	return out, nil
}

func (s *Store) readTrace(ctx context.Context, id graph.TraceID) ([]storage.Span, error) {
	rows, err := s.conn.Query(ctx, `SELECT span_id, parent_span_id, service, namespace, name, kind, status_code, status_message,
			start, duration_ns, attributes, link_trace_ids, link_span_ids
		FROM `+s.q+`.`+tableSpans+` FINAL
		WHERE trace_id = ?
		ORDER BY start, span_id
		LIMIT ?`, string(id[:]), MaxTraceSpans)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Span
	for rows.Next() {
		var (
			sid, parent, kind, status string
			dur                       uint64
			lt, ls                    []string
			sp                        = storage.Span{Trace: id}
		)
		if err := rows.Scan(&sid, &parent, &sp.Service, &sp.Namespace, &sp.Name, &kind, &status, &sp.StatusMessage,
			&sp.Start, &dur, &sp.Attributes, &lt, &ls); err != nil {
			return nil, err
		}
		if len(sid) != len(sp.ID) || len(parent) != len(sp.Parent) || len(lt) != len(ls) {
			return nil, fmt.Errorf("span row of unexpected shape (span id %d bytes, %d link traces, %d link spans)", len(sid), len(lt), len(ls))
		}
		copy(sp.ID[:], sid)
		copy(sp.Parent[:], parent)
		if sp.Kind, err = storage.ParseSpanKind(kind); err != nil {
			return nil, err
		}
		if sp.Status, err = storage.ParseSpanStatus(status); err != nil {
			return nil, err
		}
		sp.Start = sp.Start.UTC()
		sp.Duration = time.Duration(min(dur, 1<<63-1))
		for k := range lt {
			var l graph.SpanRef
			copy(l.Trace[:], lt[k])
			copy(l.Span[:], ls[k])
			sp.Links = append(sp.Links, l)
		}
		if len(sp.Attributes) == 0 {
			sp.Attributes = nil
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}
