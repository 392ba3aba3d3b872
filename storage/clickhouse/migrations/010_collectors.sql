-- The collectors writing to this database, each running instance with a
-- heartbeat (storage/clickhouse/members.go): each collector reads them to
-- learn when one stopped, started or came back, the moments a load
-- balancer routing by trace id moves traces between collectors (their
-- unpaired half-edges are then counted as rerouted). One row per instance
-- after merges; instances silent for a day are dropped.
CREATE TABLE IF NOT EXISTS {{.DB}}.collectors
(
    collector String,
    instance  String,
    beat      UInt64,
    written   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(beat)
ORDER BY (collector, instance)
TTL toDateTime(written) + INTERVAL 1 DAY;
