-- Which waiter a freed slot goes to: the one of highest `priority`, then the one waiting
-- longest (`since`). A waiter counts only while it keeps asking (`asked_at` recent), so a run
-- that stops asking (draining, or busy up to its parallelism) does not hold the pool up.
ALTER TABLE pool_claims ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pool_claims ADD COLUMN asked_at BIGINT NOT NULL DEFAULT 0;
