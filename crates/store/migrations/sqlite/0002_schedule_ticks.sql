-- The last tick each schedule fired (or skipped), so restarts neither lose nor repeat ticks.
CREATE TABLE schedule_ticks (
    namespace  TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    schedule   TEXT NOT NULL,
    last_tick  BIGINT NOT NULL,
    PRIMARY KEY (namespace, pipeline, schedule)
);
