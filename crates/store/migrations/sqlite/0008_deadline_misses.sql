-- Deadlines reported as missed, so that a resumed run, or another replica watching it, does
-- not report the same miss again. `task_key` is '' for the run's own deadline.
CREATE TABLE deadline_misses (
    run_id     TEXT NOT NULL,
    task_key   TEXT NOT NULL,
    missed_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, task_key)
);
