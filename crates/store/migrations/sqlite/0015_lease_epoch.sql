-- A fencing token for run ownership: it grows at every acquisition of a run's lease by a new
-- holder (a takeover, or taking it after it expired or was released), and a renewal by the
-- holder keeps it. Every write of a run's owner names the lease it holds, owner and epoch, and
-- the store refuses it in the same transaction when they no longer match, so a stalled owner
-- that wakes up after a takeover commits nothing.
ALTER TABLE runs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
