-- Attempts made before a run was retried: a retried task gets its full retry budget again.
ALTER TABLE tasks ADD COLUMN retry_base BIGINT NOT NULL DEFAULT 0;
