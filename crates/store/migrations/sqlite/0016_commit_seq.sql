-- How many commits the run's owners have made. Each owner's commit names the number it will
-- be, and the store writes it only when it is the next: a commit retried because its answer
-- was lost (the database committed, then the connection dropped) finds its number already
-- there and writes nothing again.
ALTER TABLE runs ADD COLUMN commit_seq BIGINT NOT NULL DEFAULT 0;
