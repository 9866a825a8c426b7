-- Tenancy (tether/tenancy, store/sqlite/namespaces.py). Mirrors
-- store/postgres/migrations/0004_tenancy.sql.
--
-- namespace_limits holds the state of a namespace's limits: a token bucket for
-- dispatch rates (tokens, updated_at), a reservation clock for start rates (next_at)
-- and how often work was held back (waits). kind is 'start', 'workflow' or
-- 'activity'. task_queue is '' for the whole namespace.
CREATE TABLE namespace_limits (
    namespace   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    task_queue  TEXT NOT NULL DEFAULT '',
    tokens      REAL NOT NULL DEFAULT 0,
    updated_at  REAL NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL DEFAULT 0,
    waits       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, kind, task_queue)
) WITHOUT ROWID;

-- Counting a namespace's leased tasks (concurrency caps) without reading its backlog.
CREATE INDEX tasks_leased ON tasks (namespace, kind) WHERE owner IS NOT NULL;

-- The retention sweeper finds a namespace's oldest closed runs.
CREATE INDEX runs_closed ON runs (namespace, closed_at) WHERE closed_at IS NOT NULL;
