-- Cancellation: a run's activities scheduled before a cancel request are marked, and
-- their heartbeats answer that they should stop. Signals need no new table: they are
-- events, and they ask for a workflow task like any other input.
ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
