-- Times are milliseconds since the Unix epoch; JSON is stored as text (sqlx's Any driver
-- supports only integers, floats, text and blobs across backends).

CREATE TABLE definitions (
    hash        TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    path        TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    namespace         TEXT NOT NULL,
    pipeline          TEXT NOT NULL,
    version           TEXT NOT NULL REFERENCES definitions (hash),
    state             TEXT NOT NULL,
    params            TEXT NOT NULL,
    trigger_kind      TEXT NOT NULL,
    logical_date      TEXT,
    base_dir          TEXT NOT NULL,
    idempotency_key   TEXT UNIQUE,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    error             TEXT,
    cancel_requested  BIGINT NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_expires_at  BIGINT
);
CREATE INDEX runs_by_pipeline ON runs (namespace, pipeline, created_at);
CREATE INDEX runs_by_state ON runs (state, created_at);

CREATE TABLE tasks (
    run_id           TEXT NOT NULL REFERENCES runs (id),
    task_key         TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    position         BIGINT NOT NULL,
    item             TEXT,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    interruptions    BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    outputs          TEXT,
    error            TEXT,
    started_at       BIGINT,
    finished_at      BIGINT,
    PRIMARY KEY (run_id, task_key)
);

CREATE TABLE attempts (
    run_id       TEXT NOT NULL,
    task_key     TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    exit_code    BIGINT,
    signal       BIGINT,
    cpu_user_ms  BIGINT,
    cpu_sys_ms   BIGINT,
    max_rss_kb   BIGINT,
    log_path     TEXT NOT NULL,
    error        TEXT,
    pid          BIGINT,
    owner        TEXT,
    PRIMARY KEY (run_id, task_key, attempt)
);

-- Append-only history of every transition, in commit order.
CREATE TABLE events (
    seq       BIGSERIAL PRIMARY KEY,
    run_id    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    task_key  TEXT,
    attempt   BIGINT,
    data      TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE approvals (
    run_id      TEXT NOT NULL,
    task_key    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    decided_by  TEXT NOT NULL,
    decided_at  BIGINT NOT NULL,
    comment     TEXT,
    PRIMARY KEY (run_id, task_key)
);
