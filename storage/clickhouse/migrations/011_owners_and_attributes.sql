-- Who owns what, and where it runs, kept in history: a finding's owner
-- (finding.Finding.Owner: the team that must act), and a node row's kept
-- resource attributes (--node-attributes: k8s.deployment.name,
-- deployment.environment.name, ...) and owner (graph.NodeSeen), so that a
-- graph read back (?at=, the merged judge's) has the environment and the
-- owners the live graph had. Empty in rows written before.
ALTER TABLE {{.DB}}.findings
    ADD COLUMN IF NOT EXISTS owner LowCardinality(String) DEFAULT '' AFTER timeline;

ALTER TABLE {{.DB}}.nodes
    ADD COLUMN IF NOT EXISTS attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)) AFTER name,
    ADD COLUMN IF NOT EXISTS owner LowCardinality(String) DEFAULT '' AFTER attributes;
