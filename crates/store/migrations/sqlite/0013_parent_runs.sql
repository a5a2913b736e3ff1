-- Runs started by a sub-pipeline task: the parent run, the task instance and its attempt.
-- Each attempt starts its own child run (a retry starts a new one), and a resumed parent
-- finds the child of its running attempt here instead of starting another.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_task_key TEXT;
ALTER TABLE runs ADD COLUMN parent_attempt BIGINT;
CREATE INDEX runs_parent ON runs (parent_run_id);
