-- Child runs and continue-as-new. Mirrors store/postgres/migrations/0005_children.sql.
--
-- A child run names its parent (same namespace), the parent's step that started it,
-- and what happens to it when the parent closes first (parent_close_policy:
-- 'terminate', 'cancel' or 'abandon'). When a child closes for good, its outcome is
-- appended to the parent in the same transaction (store/sqlite/children.py). A run
-- continued as new closes with status 'continued_as_new' and passes its parent link
-- to the new run.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_step INTEGER;
ALTER TABLE runs ADD COLUMN parent_close_policy TEXT;
CREATE INDEX runs_by_parent ON runs (namespace, parent_run_id) WHERE parent_run_id IS NOT NULL;
