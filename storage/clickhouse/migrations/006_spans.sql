-- Raw spans of sampled traces, for trace look-ups (GET /api/v1/traces/{id}).
-- Empty unless a collector samples raw spans (--raw-spans-sample-one-in);
-- every span of a sampled trace is kept, by the trace id's hash.
--
-- trace_id, span_id and the parent's are the raw id bytes (FixedString 16
-- and 8: half the size of hex, and what OTLP carries); the API prints hex.
--
-- ORDER BY (trace_id, span_id): the only read is "every span of one
-- trace", which the primary index answers by a binary search to one or two
-- granules per part, without the full-table granule checks a bloom_filter
-- skip index still needs when the table is sorted by service and time. The
-- price is weaker compression of the other columns (rows of one service
-- are not adjacent), acceptable for a short-lived table. ReplacingMergeTree
-- collapses a span written twice (a retried batch, a client re-sending);
-- reads use FINAL, cheap on the few rows one trace has.
--
-- The table has a TTL of its own (Options.RawSpansTTL, --raw-spans-ttl,
-- default 24h). Rows are removed by TTL merges, so a span may outlive it by
-- a few hours.
CREATE TABLE IF NOT EXISTS {{.DB}}.spans
(
    trace_id          FixedString(16),
    span_id           FixedString(8),
    parent_span_id    FixedString(8) CODEC(ZSTD(1)),
    collector         LowCardinality(String),
    service           LowCardinality(String),
    namespace         LowCardinality(String),
    name              LowCardinality(String),
    kind              LowCardinality(String),
    status_code       LowCardinality(String),
    status_message    String CODEC(ZSTD(1)),
    start             DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ns       UInt64 CODEC(T64, ZSTD(1)),
    attributes        Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    link_trace_ids    Array(FixedString(16)) CODEC(ZSTD(1)),
    link_span_ids     Array(FixedString(8)) CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(start)
ORDER BY (trace_id, span_id)
TTL {{.SpansTTL}};
