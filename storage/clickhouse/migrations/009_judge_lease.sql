-- The judge's lease: which collector run with --detect merged judges the
-- merged graph (exactly one at a time). A term is claimed by inserting its
-- row (beat 0) with insert_deduplication_token 'judge/term/<term>': the
-- first insert of a term is kept, every later one is deduplicated by
-- ClickHouse itself (the token, remembered for the last 10,000 inserts of
-- this table: many more than there are takeovers), so the row read back
-- names the one holder of the term. The holder then writes heartbeats (beat
-- 1, 2, ...) under the same term; the others take over when the newest
-- row stops changing for the lease's duration, on their own clocks. See
-- storage/clickhouse/lease.go. One row per term remains after merges.
CREATE TABLE IF NOT EXISTS {{.DB}}.judge_lease
(
    term    UInt64,
    beat    UInt64,
    holder  String,
    written DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(beat)
ORDER BY term
SETTINGS non_replicated_deduplication_window = 10000;
