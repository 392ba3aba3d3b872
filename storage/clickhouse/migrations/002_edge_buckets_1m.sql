-- A one-minute rollup of edge_buckets, all collectors together, filled by a
-- materialized view on every insert: a long range reads whole minutes from
-- here (12x fewer rows than 5s buckets) and only its partial minutes from
-- edge_buckets. A row belongs to the minute its bucket starts in, so a read
-- of [from, to) keeps the semantics "buckets starting in [from, to)".
-- SummingMergeTree adds up the counts and, by key, the *Map nested bins
-- when it merges parts; reads still GROUP BY with sum() and sumMap(), as
-- parts may not be merged yet. `rows` (never 0) keeps a merged row from
-- being dropped as all-zero.
CREATE TABLE IF NOT EXISTS {{.DB}}.edge_buckets_1m
(
    minute         DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    source_kind    LowCardinality(String),
    source_group   LowCardinality(String),
    source_name    LowCardinality(String),
    target_kind    LowCardinality(String),
    target_group   LowCardinality(String),
    target_name    LowCardinality(String),
    protocol       LowCardinality(String),
    consumer_group LowCardinality(String),
    edge_kind      SimpleAggregateFunction(any, LowCardinality(String)),
    rows           UInt64 CODEC(T64, ZSTD(1)),
    requests       UInt64 CODEC(T64, ZSTD(1)),
    errors         UInt64 CODEC(T64, ZSTD(1)),
    retries        UInt64 CODEC(T64, ZSTD(1)),
    unanswered     UInt64 CODEC(T64, ZSTD(1)),
    `serverMap.key`       Array(Int32) CODEC(Delta, ZSTD(1)),
    `serverMap.count`     Array(UInt64) CODEC(T64, ZSTD(1)),
    `clientMap.key`       Array(Int32) CODEC(Delta, ZSTD(1)),
    `clientMap.count`     Array(UInt64) CODEC(T64, ZSTD(1)),
    `delayMap.key`        Array(Int32) CODEC(Delta, ZSTD(1)),
    `delayMap.count`      Array(UInt64) CODEC(T64, ZSTD(1)),
    `unansweredMap.key`   Array(Int32) CODEC(Delta, ZSTD(1)),
    `unansweredMap.count` Array(UInt64) CODEC(T64, ZSTD(1))
)
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, source_kind, source_group, source_name, target_kind, target_group, target_name, protocol, consumer_group)
TTL {{.RollupTTL}}
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.edge_buckets_1m_mv TO {{.DB}}.edge_buckets_1m AS
SELECT
    toStartOfMinute(bucket_start) AS minute,
    source_kind, source_group, source_name, target_kind, target_group, target_name, protocol, consumer_group,
    edge_kind,
    toUInt64(1) AS rows,
    requests, errors, retries, unanswered,
    server_keys AS `serverMap.key`, server_counts AS `serverMap.count`,
    client_keys AS `clientMap.key`, client_counts AS `clientMap.count`,
    delay_keys AS `delayMap.key`, delay_counts AS `delayMap.count`,
    unanswered_keys AS `unansweredMap.key`, unanswered_counts AS `unansweredMap.count`
FROM {{.DB}}.edge_buckets;
