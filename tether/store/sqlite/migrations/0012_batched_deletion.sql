-- Deleting a namespace in bounded batches, and sweeping idle fair flows (the logic is
-- in store/sqlite/namespaces.py). Mirrors store/postgres/migrations/0012_batched_deletion.sql,
-- which explains both.
--
-- deleting_since marks a namespace whose deletion has begun: it is invisible from then
-- on, accepts no input, and its tasks are not claimed, while its rows are removed a
-- batch at a time.
ALTER TABLE namespaces ADD COLUMN deleting_since REAL;
CREATE INDEX namespaces_deleting ON namespaces (name) WHERE deleting_since IS NOT NULL;
