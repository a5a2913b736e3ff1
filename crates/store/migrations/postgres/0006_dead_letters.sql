-- Dead letters are listed newest failure first; few tasks fail, so a partial index keeps the
-- listing from reading every task.
CREATE INDEX tasks_failed_by_finish ON tasks (finished_at) WHERE state = 'failed';
-- Upstream triggers follow each upstream pipeline's completions in finish order.
CREATE INDEX runs_by_pipeline_finish ON runs (namespace, pipeline, finished_at);
