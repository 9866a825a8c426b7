-- A worker's look at its next due task reads one index entry per namespace and queue.
-- Mirrors store/postgres/migrations/0033_due_index.sql, which explains it: without an
-- index on visible_at after the namespace and queue, the look read every task of the
-- worker's queues (leased ones included) at each idle turn.
CREATE INDEX tasks_due ON tasks (namespace, task_queue, visible_at);
