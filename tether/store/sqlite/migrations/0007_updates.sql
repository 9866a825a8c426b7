-- Updates: request-response calls into a running workflow. Mirrors
-- store/postgres/migrations/0007_updates.sql.
--
-- A request is not history: it waits here ('pending', in arrival order) until a
-- worker holding the run validates it. Rejected, it gets its failure and history is
-- untouched. Accepted, an UpdateAccepted event is appended and the row is 'accepted',
-- and the workflow task that records UpdateCompleted sets the outcome ('completed' or
-- 'failed') in the same transaction. The update id is unique per run, so asking
-- again with the same id finds the same row. Rows name their namespace and run, so
-- namespace and run deletion remove them with the rest. (No semicolons in these
-- comments: the migration is split on them.)
CREATE TABLE updates (
    namespace   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    update_id   TEXT NOT NULL,
    arrival     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    args        BLOB NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('pending', 'accepted', 'completed', 'failed', 'rejected')),
    result      BLOB,
    failure     BLOB,
    created_at  REAL NOT NULL,
    PRIMARY KEY (namespace, run_id, update_id)
) WITHOUT ROWID;
CREATE INDEX updates_pending ON updates (namespace, run_id, arrival) WHERE status = 'pending';
