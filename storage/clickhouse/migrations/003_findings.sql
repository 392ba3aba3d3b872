-- Findings with their lifecycle: one row per written state; for each id the
-- row with the highest version (a write time, increasing) is the current
-- state. Read with FINAL. Partitioned by month of started_at, which never
-- changes for an id, so background merges collapse the versions of an id.
CREATE TABLE IF NOT EXISTS {{.DB}}.findings
(
    id              String,
    version         UInt64,
    collector       LowCardinality(String),
    kind            LowCardinality(String),
    state           LowCardinality(String),
    severity        LowCardinality(String),
    subject_node    String,
    subject_source  String,
    subject_target  String,
    subject_node_id String,
    subject_edge_id String,
    summary         String CODEC(ZSTD(1)),
    evidence        String CODEC(ZSTD(3)),
    started_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    fired_at        Nullable(DateTime64(3, 'UTC')) CODEC(ZSTD(1)),
    resolved_at     Nullable(DateTime64(3, 'UTC')) CODEC(ZSTD(1)),
    last_seen       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    blast_radius    String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY id
TTL {{.FindingsTTL}};
