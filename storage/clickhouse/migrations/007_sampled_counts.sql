-- Calls seen and sampled (graph.EdgeBucket.Seen, Sampled): counts of
-- sampled traffic are estimates (each sampled call counts as the calls it
-- stands for), and an edge says so with the share of calls seen. `seen`
-- defaults to `requests`: rows written before it existed, parts of the
-- rollup summed before it existed (ClickHouse computes the default of a
-- part without the column when it reads or merges it), and rows a
-- collector not yet upgraded inserts all saw every call they count.
ALTER TABLE {{.DB}}.edge_buckets
    ADD COLUMN IF NOT EXISTS seen UInt64 DEFAULT requests CODEC(T64, ZSTD(1)) AFTER unanswered,
    ADD COLUMN IF NOT EXISTS sampled UInt64 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER seen;

ALTER TABLE {{.DB}}.edge_buckets_1m
    ADD COLUMN IF NOT EXISTS seen UInt64 DEFAULT requests CODEC(T64, ZSTD(1)) AFTER unanswered,
    ADD COLUMN IF NOT EXISTS sampled UInt64 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER seen;

-- The view fills the new columns (SummingMergeTree sums them, as every
-- numeric column outside the key). A row's seen of 0 is graph's "not
-- recorded": every request seen. MODIFY QUERY replaces the query
-- atomically (no insert is missed or rolled up twice) and is idempotent.
ALTER TABLE {{.DB}}.edge_buckets_1m_mv MODIFY QUERY
SELECT
    toStartOfMinute(bucket_start) AS minute,
    source_kind, source_group, source_name, target_kind, target_group, target_name, protocol, consumer_group,
    edge_kind,
    toUInt64(1) AS rows,
    requests, errors, retries, unanswered,
    if(seen = 0, requests, seen) AS seen, sampled,
    server_keys AS `serverMap.key`, server_counts AS `serverMap.count`,
    client_keys AS `clientMap.key`, client_counts AS `clientMap.count`,
    delay_keys AS `delayMap.key`, delay_counts AS `delayMap.count`,
    unanswered_keys AS `unansweredMap.key`, unanswered_counts AS `unansweredMap.count`
FROM {{.DB}}.edge_buckets;
