-- Results of tasks with `cache:`, reused by later runs with the same key. One row per
-- (pipeline, task, key): a newer success replaces the older one. `key_hash` is the SHA-256 of
-- the rendered key (keys can be longer than an index entry may be); `cache_key` keeps the key
-- itself for people. `created_at` is when the result was made, which `cache.ttl` counts from.
CREATE TABLE task_cache (
    namespace   TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    key_hash    TEXT NOT NULL,
    cache_key   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    task_key    TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, pipeline, task_id, key_hash)
);
-- Where a task's result came from when the cache supplied it.
ALTER TABLE tasks ADD COLUMN cached_from_run TEXT;
ALTER TABLE tasks ADD COLUMN cached_from_task TEXT;
-- `baton run --no-cache` (or the trigger's `no_cache`): the run looks nothing up, and whoever
-- resumes it does not either.
ALTER TABLE runs ADD COLUMN no_cache BIGINT NOT NULL DEFAULT 0;
