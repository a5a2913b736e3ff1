-- Pipelines an operator paused: their schedules and webhooks start no runs.
CREATE TABLE paused_pipelines (
    namespace  TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    paused_at  BIGINT NOT NULL,
    paused_by  TEXT NOT NULL,
    PRIMARY KEY (namespace, pipeline)
);
