-- Files a successful attempt left for tasks downstream (`artifacts.upload`), one row per file.
-- The bytes are in the artifact store, content-addressed by `digest` (`sha256:HEX`); `store`
-- names that store (`dir:PATH`, `s3://BUCKET/PREFIX`), so a reader knows where to look even
-- after the configuration changed. `executable` (0 or 1) keeps a program a program.
CREATE TABLE artifacts (
    run_id      TEXT NOT NULL,
    task_key    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    path        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    executable  BIGINT NOT NULL DEFAULT 0,
    store       TEXT NOT NULL,
    stored_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, task_key, attempt, path)
);
