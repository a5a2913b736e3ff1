-- Who runs an attempt, recorded as soon as its process is spawned, so that whoever resumes a
-- run after a crash can find what is left of it and stop it before starting the next attempt.
-- `pid` (since 0001) holds the process group's id: the group leader's pid. `proc_start` is the
-- leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), which tells a
-- reused pid apart; `boot_id` and `host` say where the numbers mean anything.
ALTER TABLE attempts ADD COLUMN proc_start BIGINT;
ALTER TABLE attempts ADD COLUMN boot_id TEXT;
ALTER TABLE attempts ADD COLUMN host TEXT;
