-- The lease epoch of the owner whose commit wrote an event, none for writes no owner makes
-- (creating a run, a cancel or a retry from the API). A run's events in order never go back to
-- an older epoch: one that did would be a stale owner's write the fence let through, which is
-- what the failover tests look for.
ALTER TABLE events ADD COLUMN epoch BIGINT;
