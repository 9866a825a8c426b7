"""The named queries of tenancy in the PostgreSQL store: namespaces and their settings,
limits, fair claims, retention and deletion (functions in ``migrations/0004_tenancy.sql``;
deletion in batches and sweeps of fair flows in ``migrations/0012_batched_deletion.sql``).

A namespace being deleted (``deleting_since`` set) is neither read, listed nor updated.
"""

from __future__ import annotations

__all__ = [
    "BEGIN_DELETION",
    "CLAIM_FAIR",
    "CREATE_NAMESPACE",
    "DELETE_BATCH",
    "DELETE_RUN",
    "DELETING",
    "DELETING_NAMESPACES",
    "GET_NAMESPACE",
    "LIMIT_WAITS",
    "LIST_NAMESPACE_RECORDS",
    "LOCK_NAMESPACE",
    "PURGE_CLOSED_RUNS",
    "QUEUE_BACKLOG",
    "RESERVE_START",
    "RUNS_BY_STATUS",
    "SWEEP_FAIR_FLOWS",
    "UPDATE_NAMESPACE",
]

CREATE_NAMESPACE = """
INSERT INTO tether.namespaces (name, created_at, settings) VALUES ($1, tether.epoch(), $2::jsonb)
ON CONFLICT DO NOTHING
RETURNING name, created_at, settings::text
"""

GET_NAMESPACE = """
SELECT name, created_at, settings::text FROM tether.namespaces
WHERE name = $1 AND deleting_since IS NULL
"""

LOCK_NAMESPACE = GET_NAMESPACE + " FOR UPDATE"

UPDATE_NAMESPACE = """
UPDATE tether.namespaces SET settings = $2::jsonb WHERE name = $1 AND deleting_since IS NULL
RETURNING name, created_at, settings::text
"""

LIST_NAMESPACE_RECORDS = """
SELECT name, created_at, settings::text FROM tether.namespaces WHERE deleting_since IS NULL
ORDER BY name
"""

DELETING = "SELECT deleting_since IS NOT NULL FROM tether.namespaces WHERE name = $1"

DELETING_NAMESPACES = """
SELECT name FROM tether.namespaces WHERE deleting_since IS NOT NULL ORDER BY name
"""

BEGIN_DELETION = "SELECT tether.begin_namespace_deletion($1)"

DELETE_BATCH = "SELECT tether.delete_namespace_batch($1, $2)"

SWEEP_FAIR_FLOWS = "SELECT tether.sweep_fair_flows($1, $2)"

DELETE_RUN = "SELECT tether.delete_runs($1, ARRAY[$2::text])"

PURGE_CLOSED_RUNS = "SELECT tether.purge_closed_runs($1, $2, $3)"

RUNS_BY_STATUS = """
SELECT status, count(*) FROM tether.runs WHERE namespace = $1 GROUP BY status ORDER BY status
"""

QUEUE_BACKLOG = """
SELECT t.task_queue,
       count(*) FILTER (WHERE t.kind = 'workflow' AND t.visible_at <= n.now),
       count(*) FILTER (WHERE t.kind = 'activity' AND t.visible_at <= n.now),
       count(*) FILTER (WHERE t.owner IS NOT NULL AND t.visible_at > n.now),
       count(*) FILTER (WHERE t.owner IS NULL AND t.visible_at > n.now)
FROM tether.tasks t, (SELECT tether.epoch() AS now) AS n
WHERE t.namespace = $1
GROUP BY t.task_queue ORDER BY t.task_queue
"""

LIMIT_WAITS = """
SELECT kind, sum(waits)::bigint FROM tether.namespace_limits WHERE namespace = $1 GROUP BY kind
"""

RESERVE_START = "SELECT tether.reserve_start($1, $2, $3, $4)"

CLAIM_FAIR = """
SELECT * FROM tether.claim_fair($1, $2, $3::text[], $4, $5, $6::text[],
                                tether.usable_shares($6::text[], $7::integer[]),
                                $8::integer[], $9::float8[], $10::text[], $11::text[],
                                $12::float8[])
"""
