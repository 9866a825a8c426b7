-- A run's key, for reads of many runs in one statement: the looks of many waiters
-- (wait_closed) gathered in one turn of a process's event loop go as one array.
CREATE TYPE tether.run_key AS (namespace text, run_id text);
