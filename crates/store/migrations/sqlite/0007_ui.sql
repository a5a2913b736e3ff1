-- The approvals inbox lists gates waiting for a person; few tasks wait, so a partial index
-- keeps it from reading every task.
CREATE INDEX tasks_waiting_approval ON tasks (run_id) WHERE state = 'waiting_approval';
-- The pipelines page reads the runs finished in the last days for its statistics.
CREATE INDEX runs_by_finish ON runs (finished_at);
