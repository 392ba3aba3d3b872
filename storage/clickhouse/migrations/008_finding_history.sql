-- A finding's history: its peak (the last evaluation at its highest
-- severity, JSON of detect.Peak) and the steps of its life (JSON of
-- []detect.Change), so that a resolved finding still tells how bad it
-- got. Empty in rows written before.
ALTER TABLE {{.DB}}.findings
    ADD COLUMN IF NOT EXISTS peak String DEFAULT '' CODEC(ZSTD(3)) AFTER blast_radius,
    ADD COLUMN IF NOT EXISTS timeline String DEFAULT '' CODEC(ZSTD(3)) AFTER peak;
