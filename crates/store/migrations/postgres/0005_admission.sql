-- Admission: runs that share a group (a pipeline with `concurrency`, or a backfill) start only
-- while fewer than `admission_limit` of the group are admitted and unfinished. Runs without a
-- group (all runs before this migration) are always admitted.
ALTER TABLE runs ADD COLUMN admission_group TEXT;
ALTER TABLE runs ADD COLUMN admission_limit BIGINT;
ALTER TABLE runs ADD COLUMN admitted_at BIGINT;
ALTER TABLE runs ADD COLUMN backfill_id TEXT;
CREATE INDEX runs_by_admission_group ON runs (admission_group, state);
CREATE INDEX runs_by_backfill ON runs (backfill_id);

-- A backfill: one run per schedule tick over a range of logical dates.
CREATE TABLE backfills (
    id               TEXT PRIMARY KEY,
    namespace        TEXT NOT NULL,
    pipeline         TEXT NOT NULL,
    version          TEXT NOT NULL,
    schedule         BIGINT NOT NULL,
    range_start      TEXT NOT NULL,
    range_end        TEXT NOT NULL,
    parallelism      BIGINT NOT NULL,
    params           TEXT NOT NULL,
    runs             BIGINT NOT NULL,
    idempotency_key  TEXT UNIQUE,
    created_at       BIGINT NOT NULL
);
CREATE INDEX backfills_by_pipeline ON backfills (namespace, pipeline, id);
