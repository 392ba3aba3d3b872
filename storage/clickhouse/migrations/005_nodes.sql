-- The nodes each collector saw per time bucket (one row per node and bucket
-- it recorded the node in), so that history keeps nodes no edge of a window
-- touches (a service with only internal spans) with their kind and group.
-- A row written twice (a retried batch) collapses to one; reads take the
-- DISTINCT nodes of a range, so duplicates never matter anyway.
CREATE TABLE IF NOT EXISTS {{.DB}}.nodes
(
    time      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    width_ms  UInt32 CODEC(T64, ZSTD(1)),
    collector LowCardinality(String),
    kind      LowCardinality(String),
    `group`   LowCardinality(String),
    name      LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (time, kind, `group`, name, collector)
TTL {{.NodeTTL}}
SETTINGS ttl_only_drop_parts = 1;
