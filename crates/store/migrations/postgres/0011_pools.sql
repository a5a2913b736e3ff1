-- Pools: named numbers of slots shared by every run and every process on this database.
-- `slots` 0 pauses a pool: its tasks wait.
CREATE TABLE pools (
    name         TEXT PRIMARY KEY,
    slots        BIGINT NOT NULL,
    description  TEXT,
    updated_at   BIGINT NOT NULL
);

-- A task instance's claim on a pool: one of its slots (`held` 1) or a place among its waiters
-- (`held` 0). A claim counts only while its run's lease is held by the claim's owner and has
-- not expired, so a process that dies stops counting when its lease does, and a run resumed
-- by another owner does not count its predecessor's claims.
CREATE TABLE pool_claims (
    run_id    TEXT NOT NULL,
    task_key  TEXT NOT NULL,
    pool      TEXT NOT NULL,
    owner     TEXT NOT NULL,
    held      BIGINT NOT NULL,
    since     BIGINT NOT NULL,
    PRIMARY KEY (run_id, task_key)
);
CREATE INDEX pool_claims_by_pool ON pool_claims (pool, held);
CREATE INDEX pool_claims_by_owner ON pool_claims (owner);
