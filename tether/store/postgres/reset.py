"""Reset in the PostgreSQL store (see ``store/reset.py``): a few statements in one
transaction. Lock order as everywhere: run rows first (the base run, then the open
run of the workflow id), then tasks."""

from __future__ import annotations

from typing import Any

import orjson

from ..reset import ResetRun

__all__ = ["reset_run"]

_BASE = """
SELECT workflow_id, workflow_type, task_queue, last_seq FROM tether.runs
WHERE namespace = $1 AND run_id = $2 AND tether.usable_namespace($1)
"""

# Resets of one workflow id take turns, so each one's next statement sees the run the
# one before it opened (and terminates it), as with SQLite's one writer. The new run
# is dated after the wait (not at the transaction's start, as tether.epoch() would),
# so it is newer than the run it replaces.
_TAKE_TURN = """
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0)),
       extract(epoch FROM clock_timestamp())::float8
"""

_OPEN = """
SELECT run_id, parent_run_id, parent_step, parent_close_policy FROM tether.runs
WHERE namespace = $1 AND workflow_id = $2 AND status = 'running' FOR UPDATE
"""

_TERMINATE_EVENT = """
SELECT tether.append_events($1, $2, ARRAY['WorkflowTerminated'], ARRAY[$3::text],
                            tether.epoch())
"""

_DROP_TASKS = "DELETE FROM tether.tasks WHERE namespace = $1 AND run_id = $2"

# The parent link goes to the new run in the same UPDATE, so the close trigger
# (migrations/0005_children.sql) does not tell the parent that its child ended.
_TERMINATE = """
UPDATE tether.runs SET status = 'terminated', closed_at = tether.epoch(), failure = $3::json,
       parent_run_id = NULL, parent_step = NULL, parent_close_policy = NULL
WHERE namespace = $1 AND run_id = $2
RETURNING tether.notify_closed($1, $2)
"""

_INSERT_RUN = """
INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue, status,
                         created_at, last_seq, parent_run_id, parent_step, parent_close_policy)
VALUES ($1, $2, $3, $4, $5, 'running', $9, 0, $6, $7, $8)
"""

# The copy, and what its events set (search attributes, a fairness key), as every writer
# of events applies it (migrations/0030_explicit_event_effects.sql).
_COPY = """
WITH copied AS (
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
    SELECT namespace, $2, seq, type, ts, attrs FROM tether.events
    WHERE namespace = $1 AND run_id = $3 AND seq <= $4
    RETURNING seq, type, attrs
)
SELECT tether.apply_event_effects(
    $1, $2, array_agg(c.type ORDER BY c.seq), array_agg(c.attrs::text ORDER BY c.seq))
FROM copied c
WHERE c.type IN ('WorkflowStarted', 'SearchAttributesUpserted')
"""

# The marker, then the base run's signals after the point (when reapplied), numbered
# on from the copy.
_APPEND = """
WITH added AS (
    SELECT 0::bigint AS n, 'WorkflowReset' AS type, $5::json AS attrs
    UNION ALL
    SELECT row_number() OVER (ORDER BY e.seq), e.type, e.attrs FROM tether.events e
    WHERE $6::boolean AND e.namespace = $1 AND e.run_id = $3 AND e.seq > $4
      AND e.type = 'SignalReceived'
), events AS (
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
    SELECT $1, $2, $4 + 1 + n, type, $7, attrs FROM added
    RETURNING seq
)
UPDATE tether.runs SET last_seq = (SELECT max(seq) FROM events)
WHERE namespace = $1 AND run_id = $2
RETURNING last_seq - $4 - 1
"""

_TASKS = """
WITH workflow AS (
    INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
    VALUES ($1, $2, 'workflow', $3, tether.epoch(), tether.epoch())
), activities AS (
    INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                              scheduled_at, name, args, options, cancel_requested)
    SELECT $1, $2, 'activity', a.queue, a.step, tether.epoch(), tether.epoch(), a.name,
           a.args::json, a.options::json, $9::boolean
    FROM unnest($4::integer[], $5::text[], $6::text[], $7::text[], $8::text[])
         AS a (step, name, queue, args, options)
), timers AS (
    INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                              scheduled_at)
    SELECT $1, $2, 'timer', $3, t.step, t.fire_at, tether.epoch()
    FROM unnest($10::integer[], $11::float8[]) AS t (step, fire_at)
)
SELECT tether.notify_work($1, q) FROM unnest($12::text[]) AS q
"""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def reset_run(conn: Any, reset: ResetRun) -> None:
    """Write ``reset`` on ``conn`` (an asyncpg connection), in one transaction.

    A unique violation (another run of the workflow id opened meanwhile) is left to
    the caller to translate.
    """
    ns, base, new = reset.namespace, reset.base_run_id, reset.new_run_id
    async with conn.transaction():
        row = await conn.fetchrow(_BASE, ns, base)
        workflow_id, workflow_type, queue = reset.check_base(row)
        now = (await conn.fetchrow(_TAKE_TURN, ns, workflow_id))[1]
        parent: tuple[Any, ...] = (None, None, None)
        open_run = await conn.fetchrow(_OPEN, ns, workflow_id)
        terminated = None
        if open_run is not None:
            terminated = open_run[0]
            parent = tuple(open_run[1:])
            await conn.execute(_TERMINATE_EVENT, ns, terminated, _dumps(reset.terminated()))
            await conn.execute(_DROP_TASKS, ns, terminated)
            await conn.execute(_TERMINATE, ns, terminated, _dumps(reset.failure()))
        await conn.execute(_INSERT_RUN, ns, new, workflow_id, workflow_type, queue, *parent, now)
        await conn.execute(_COPY, ns, new, base, reset.seq)
        # The marker counts the signals reapplied: write it with a placeholder count and
        # fix it once the statement knows.
        signals = await conn.fetchval(
            _APPEND, ns, new, base, reset.seq, _dumps(reset.marker(terminated, 0)),
            reset.reapply_signals, now,
        )  # fmt: skip
        if signals:
            await conn.execute(
                "UPDATE tether.events SET attrs = $4::json"
                " WHERE namespace = $1 AND run_id = $2 AND seq = $3",
                ns, new, reset.seq + 1, _dumps(reset.marker(terminated, int(signals))),
            )  # fmt: skip
        acts = reset.activities
        queues = sorted({queue, *(a.task_queue for a in acts)})
        await conn.execute(
            _TASKS, ns, new, queue,
            [a.step for a in acts], [a.name for a in acts], [a.task_queue for a in acts],
            [_dumps(a.args) for a in acts], [_dumps(a.options) for a in acts],
            reset.cancel_requested,
            [step for step, _ in reset.timers], [float(t) for _, t in reset.timers],
            queues,
        )  # fmt: skip
