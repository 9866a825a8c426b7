-- Runs, their histories, and the tasks and timers that move them forward.
-- A task is claimable exactly when visible_at <= now: claiming sets visible_at to the
-- end of the lease, so an expired lease makes the task claimable again.
CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;

CREATE TABLE runs (
    namespace     TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    workflow_id   TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue    TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    closed_at     REAL,
    result        BLOB,
    failure       BLOB,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, run_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX runs_open_workflow_id ON runs (namespace, workflow_id) WHERE status = 'running';
CREATE INDEX runs_by_workflow_id ON runs (namespace, workflow_id, created_at);
CREATE INDEX runs_by_created ON runs (namespace, created_at, run_id);

CREATE TABLE events (
    namespace  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    ts         REAL NOT NULL,
    attrs      BLOB NOT NULL,
    PRIMARY KEY (namespace, run_id, seq)
) WITHOUT ROWID;

-- AUTOINCREMENT: a task id is never reused, so a stale (id, token) pair can never
-- name a newer task.
CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('workflow', 'activity', 'timer')),
    task_queue    TEXT NOT NULL,
    step          INTEGER NOT NULL DEFAULT 0,
    visible_at    REAL NOT NULL,
    owner         TEXT,
    token         INTEGER NOT NULL DEFAULT 0,
    dirty         INTEGER NOT NULL DEFAULT 0,
    attempt       INTEGER NOT NULL DEFAULT 1,
    scheduled_at  REAL NOT NULL,
    name          TEXT,
    args          BLOB,
    options       BLOB,
    heartbeat     BLOB,
    last_failure  BLOB,
    error         TEXT
);
CREATE UNIQUE INDEX tasks_one_workflow_task ON tasks (namespace, run_id) WHERE kind = 'workflow';
CREATE INDEX tasks_ready ON tasks (kind, namespace, task_queue, visible_at);
CREATE INDEX tasks_by_run ON tasks (namespace, run_id, kind, step);
