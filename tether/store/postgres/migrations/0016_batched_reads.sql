-- What a workflow task reads of its run (the history after a seq, the pending update
-- requests, the run's last seq), for many tasks in one statement: a worker claiming a
-- backlog reads a history per task claimed, and one round trip each filled the
-- connection pool's queue ahead of every other tenant's writes.
CREATE TYPE tether.read_key AS (namespace text, run_id text, after_seq bigint);
