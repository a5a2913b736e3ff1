-- Attempts' logs kept in the database (`[logs] store = "database"`), so any replica reads
-- them: one row per flush of an attempt's output, keyed by the byte offset it starts at.
CREATE TABLE log_chunks (
    run_id      TEXT NOT NULL,
    task_key    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (run_id, task_key, attempt, byte_offset)
);
