-- A worker's look at its next due task reads one index entry per namespace, queue and
-- kind. Mirrors store/postgres/migrations/0033_due_index.sql, which explains it:
-- without an index on visible_at after the namespace, queue and kind, the look read
-- every task of the worker's queues (leased ones included) at each idle turn.
-- (tasks_timers stays here: the SQLite store's own walk of due timers uses it.)
CREATE INDEX tasks_due ON tasks (namespace, task_queue, kind, visible_at);
