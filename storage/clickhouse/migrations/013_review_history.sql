-- The communication review's history (graph/review.History): for each
-- collector, one row per run of evaluations whose reviews had the same
-- observations (the first review of the run, the JSON of review.Report),
-- so that the graph diff's observations that appeared and went away
-- reach back past a restart. Kept as long as findings (90 days).
CREATE TABLE IF NOT EXISTS {{.DB}}.review_history
(
    collector    LowCardinality(String),
    generated_at DateTime64(3, 'UTC'),
    ids          Array(String),
    report       String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
ORDER BY (collector, generated_at)
TTL toDateTime(generated_at) + toIntervalSecond(7776000);
