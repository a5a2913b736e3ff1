-- A run's tasks are listed a page at a time in pipeline order (position, then key): the index
-- lets each page start at its cursor instead of sorting all of a large run's tasks.
CREATE INDEX tasks_by_position ON tasks (run_id, position, task_key);
