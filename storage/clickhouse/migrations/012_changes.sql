-- Changes recorded on the graph (graph/changes): a service's new version,
-- instances replaced, a node or an edge added or removed. A change's id is
-- a hash of what it says, so a change written twice (a retry after a
-- timeout, or several collectors seeing the same node appear at the same
-- millisecond) is one row after merges; reads use FINAL.
CREATE TABLE IF NOT EXISTS {{.DB}}.changes
(
    id        String,
    at        DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    collector LowCardinality(String),
    kind      LowCardinality(String),
    node      String,
    source    String,
    target    String,
    node_id   String,
    edge_id   String,
    source_id String,
    target_id String,
    attribute LowCardinality(String),
    from_value String,
    to_value   String,
    summary   String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(at)
ORDER BY (at, id)
TTL {{.ChangesTTL}};
