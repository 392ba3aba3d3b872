-- Edge aggregates per time bucket and collector: what one collector saw of
-- one edge between bucket_start and bucket_start + width_ms. Rows of the same
-- edge add up across time and collectors; the latency sketches are DDSketch
-- bins (index keys + counts) that merge exactly with sumMap(keys, counts).
-- Sorted by time first so that any [from, to) read touches only its range.
CREATE TABLE IF NOT EXISTS {{.DB}}.edge_buckets
(
    bucket_start      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    width_ms          UInt32 CODEC(T64, ZSTD(1)),
    collector         LowCardinality(String),
    source_kind       LowCardinality(String),
    source_group      LowCardinality(String),
    source_name       LowCardinality(String),
    target_kind       LowCardinality(String),
    target_group      LowCardinality(String),
    target_name       LowCardinality(String),
    edge_kind         LowCardinality(String),
    protocol          LowCardinality(String),
    consumer_group    LowCardinality(String),
    requests          UInt64 CODEC(T64, ZSTD(1)),
    errors            UInt64 CODEC(T64, ZSTD(1)),
    retries           UInt64 CODEC(T64, ZSTD(1)),
    unanswered        UInt64 CODEC(T64, ZSTD(1)),
    server_keys       Array(Int32) CODEC(Delta, ZSTD(1)),
    server_counts     Array(UInt64) CODEC(T64, ZSTD(1)),
    client_keys       Array(Int32) CODEC(Delta, ZSTD(1)),
    client_counts     Array(UInt64) CODEC(T64, ZSTD(1)),
    delay_keys        Array(Int32) CODEC(Delta, ZSTD(1)),
    delay_counts      Array(UInt64) CODEC(T64, ZSTD(1)),
    unanswered_keys   Array(Int32) CODEC(Delta, ZSTD(1)),
    unanswered_counts Array(UInt64) CODEC(T64, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(bucket_start)
ORDER BY (bucket_start, source_kind, source_group, source_name, target_kind, target_group, target_name, protocol, consumer_group, collector)
TTL {{.EdgeTTL}}
SETTINGS ttl_only_drop_parts = 1;
