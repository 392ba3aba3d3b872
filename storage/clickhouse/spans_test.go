package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
)

func traceID(i byte) graph.TraceID { return graph.TraceID{0xab, 1: i, 15: 1} }
func spanID(i byte) graph.SpanID   { return graph.SpanID{0xcd, 7: i} }

// rawSpans are n spans of trace tr, children of the first, starting 1ms
// apart from t0 (nanosecond times).
func rawSpans(tr graph.TraceID, n int, t0 time.Time) []storage.Span {
	out := make([]storage.Span, n)
	for i := range out {
		out[i] = storage.Span{
			Trace: tr, ID: spanID(byte(i + 1)), Service: fmt.Sprintf("svc-%d", i%2), Namespace: "shop",
			Name: "GET /x", Kind: graph.SpanServer, Status: storage.StatusOK,
			Start: t0.Add(time.Duration(i)*time.Millisecond + 7), Duration: 1500 * time.Microsecond,
			Attributes: map[string]string{"http.request.method": "GET", "n": fmt.Sprint(i)},
		}
		if i > 0 {
			out[i].Parent = spanID(1)
			out[i].Kind, out[i].Status, out[i].StatusMessage = graph.SpanClient, storage.StatusError, "boom"
			out[i].Links = []graph.SpanRef{{Trace: traceID(99), Span: spanID(9)}}
			out[i].Attributes = nil
		}
	}
	return out
}

func commitSpans(t *testing.T, s *Store, spans []storage.Span) {
	t.Helper()
	a := s.Appender()
	require.NoError(t, a.(storage.SpanAppender).AppendSpans(spans))
	require.NoError(t, a.Commit(context.Background()))
}

func TestSpansRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c1")
	now := time.Now().UTC()
	tr := traceID(1)
	want := rawSpans(tr, 3, now)
	commitSpans(t, s, want)
	commitSpans(t, s, rawSpans(traceID(2), 2, now))
	// A retried batch: the same spans again collapse.
	commitSpans(t, s, want[1:])

	got, err := s.Trace(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, want, got)

	none, err := s.Trace(ctx, traceID(3))
	require.NoError(t, err)
	require.Empty(t, none)

	// Spans DateTime64(9) cannot hold are skipped and counted, not fatal.
	bad := rawSpans(traceID(4), 1, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC))
	commitSpans(t, s, bad)
	got, err = s.Trace(ctx, traceID(4))
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestSpansTable(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	s := openStore(t, db, "c1")
	create := func() string {
		return scalar[string](t, s, "SHOW CREATE TABLE "+quoteIdent(db)+".spans")
	}
	ddl := create()
	require.Contains(t, ddl, "TTL toDateTime(start) + toIntervalSecond(86400)", "default TTL 24h")
	require.Contains(t, ddl, "PARTITION BY toDate(start)")
	require.Contains(t, ddl, "ORDER BY (trace_id, span_id)")
	require.Contains(t, ddl, "Map(LowCardinality(String), String)")

	// Another TTL is applied on open, and opening again changes nothing.
	o := Options{DSN: dsnFor(chAddr, db), RawSpansTTL: 2 * time.Hour}
	require.NoError(t, Migrate(ctx, o))
	require.Contains(t, create(), "TTL toDateTime(start) + toIntervalSecond(7200)")
	applied, err := migrate(ctx, s.conn, db, o.withDefaults())
	require.NoError(t, err)
	require.Empty(t, applied)
	require.Contains(t, create(), "TTL toDateTime(start) + toIntervalSecond(7200)")
}

// TestSpansThroughPersister: sampled spans reach ClickHouse through the
// persister, and nothing but sampled traces does.
func TestSpansThroughPersister(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c1")
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: s})
	require.NoError(t, err)
	spans := rawSpans(traceID(5), 4, time.Now().UTC())
	p.AddSpans(spans)
	require.NoError(t, p.Flush(ctx))
	got, err := s.Trace(ctx, traceID(5))
	require.NoError(t, err)
	require.Equal(t, spans, got)
}
