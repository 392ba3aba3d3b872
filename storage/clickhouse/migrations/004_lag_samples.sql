-- Broker lag readings. -1 marks a number the source did not report. A
-- sample written twice (a retried batch) collapses to one: read with FINAL.
CREATE TABLE IF NOT EXISTS {{.DB}}.lag_samples
(
    time           DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    system         LowCardinality(String),
    destination    LowCardinality(String),
    consumer_group LowCardinality(String),
    partition      Int32 CODEC(T64, ZSTD(1)),
    lag            Float64 CODEC(ZSTD(1)),
    committed      Float64 CODEC(ZSTD(1)),
    `end`          Float64 CODEC(ZSTD(1)),
    consumers      Float64 CODEC(ZSTD(1)),
    produced       Float64 CODEC(ZSTD(1)),
    consumed       Float64 CODEC(ZSTD(1)),
    source         LowCardinality(String),
    subjects       Array(String) CODEC(ZSTD(1)),
    collector      LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (time, system, destination, consumer_group, partition, source, collector)
TTL {{.LagTTL}}
SETTINGS ttl_only_drop_parts = 1;
