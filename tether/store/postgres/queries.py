"""The named queries of the PostgreSQL store: the statements it sends (the batched
writes are in ``commits.py``).

Each write is one statement, so one round trip and one transaction; the larger writes
call the functions that the migrations define (``migrations/*.sql``). Errors
raised by those functions carry SQLSTATE ``TT001`` (lease lost), ``TT002`` (run not
found), ``TT003`` (run already closed) or ``TT004`` (namespace being deleted: input to
its runs is refused, and claims, timers and ``NEXT_DUE`` skip it; see
``migrations/0012_batched_deletion.sql``). The served namespaces are filtered in a
scalar sub-select, so the filter runs once per statement, not once per task row.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..protocol import NewRun

__all__ = [
    "CLAIM_ACTIVITY_TASKS",
    "CLAIM_AND_READ",
    "CLAIM_READ_EVENTS",
    "CLAIM_WORKFLOW_TASKS",
    "ENSURE_NAMESPACE",
    "EXTEND_LEASES",
    "FIRE_TIMERS",
    "FORGET_IDLE",
    "GET_RUNS",
    "GET_RUN_BY_WORKFLOW_ID",
    "HEARTBEAT_ACTIVITY",
    "LIST_NAMESPACES",
    "NEXT_DUE",
    "NEXT_DUE_IDLE",
    "NOTIFY_WORK",
    "READ_HISTORY",
    "RELEASE_ACTIVITY",
    "RELEASE_WORKFLOW_TASK",
    "REQUEST_CANCEL",
    "RETRY_ACTIVITY",
    "RUN_COLUMNS",
    "SEARCH_ATTRIBUTES",
    "SIGNAL_RUN",
    "SIGNAL_WITH_START",
    "START_LINKED_RUNS",
    "TERMINATE_RUN",
    "WAKE_IDLE",
    "run_args",
]

LEASE_LOST = "TT001"
RUN_NOT_FOUND = "TT002"
RUN_CLOSED = "TT003"
NAMESPACE_DELETING = "TT004"

WORK_CHANNEL = "tether_work"
CLOSED_CHANNEL = "tether_closed"

RUN_COLUMNS = (
    "r.namespace, r.workflow_id, r.run_id, r.workflow_type, r.task_queue, r.status,"
    " r.created_at, r.closed_at, r.result, r.failure, r.last_seq,"
    " (SELECT t.error FROM tether.tasks t WHERE t.namespace = r.namespace"
    " AND t.run_id = r.run_id AND t.kind = 'workflow') AS stuck"
)

# -- namespaces ---------------------------------------------------------------------

ENSURE_NAMESPACE = """
INSERT INTO tether.namespaces (name, created_at) VALUES ($1, tether.epoch())
ON CONFLICT DO NOTHING
"""

LIST_NAMESPACES = """
SELECT name FROM tether.namespaces WHERE deleting_since IS NULL ORDER BY name
"""

# -- runs and histories ---------------------------------------------------------------

# One run with its search attributes in the same statement (one round trip), as rows
# of SEARCH_ATTRIBUTES in a JSON array.
_RUN_ATTRIBUTES = """(
    SELECT json_agg(json_build_array(s.run_id, s.name, s.idx, s.type, s.str_value,
                                     s.int_value, s.float_value) ORDER BY s.name, s.idx)
    FROM tether.search_attributes s WHERE s.namespace = r.namespace AND s.run_id = r.run_id
)::text AS attributes"""

# Many runs by key, one row per key in the keys' order (NULL columns for a missing run);
# the three leading NULLs are the refusal columns of a batch (commits.py).
GET_RUNS = f"""
SELECT NULL::text, NULL::text, NULL::text, {RUN_COLUMNS}, {_RUN_ATTRIBUTES}
FROM unnest($1::tether.run_key[]) WITH ORDINALITY AS k (namespace, run_id, i)
LEFT JOIN tether.runs r ON r.namespace = k.namespace AND r.run_id = k.run_id
ORDER BY k.i
"""

# A wait from anywhere but the run's start watch says so before its first look, so that
# a close no other process waits for can go unnotified (0027_quiet_local_closes.sql).
AWAIT_CLOSE = """
UPDATE tether.runs SET awaited = true
WHERE namespace = $1 AND run_id = $2 AND status = 'running' AND NOT awaited
"""

GET_RUN_BY_WORKFLOW_ID = f"""
SELECT {RUN_COLUMNS}, {_RUN_ATTRIBUTES}
FROM tether.runs r WHERE r.namespace = $1 AND r.workflow_id = $2
ORDER BY r.created_at DESC LIMIT 1
"""


# A page of runs is built by store/visibility.py (list_runs_sql); their attributes:
SEARCH_ATTRIBUTES = """
SELECT run_id, name, idx, type, str_value, int_value, float_value
FROM tether.search_attributes WHERE namespace = $1 AND run_id = ANY ($2::text[])
ORDER BY run_id, name, idx
"""

READ_HISTORY = """
SELECT seq, type, ts, attrs FROM tether.events
WHERE namespace = $1 AND run_id = $2 AND seq > $3 ORDER BY seq
"""

TERMINATE_RUN = f"""
SELECT {RUN_COLUMNS} FROM tether.terminate_run($1, $2, $3, $4) r
WHERE tether.usable_namespace($1)
"""

# -- signals and cancellation (migrations/0002_signals_cancel.sql) ---------------------

SIGNAL_RUN = "SELECT tether.signal_run($1, $2, $3, $4) WHERE tether.usable_namespace($1)"

SIGNAL_WITH_START = """
SELECT tether.signal_with_start($1, $2, $3, $4, $5, $6, $7, $8) WHERE tether.usable_namespace($1)
"""


def run_args(run: NewRun) -> tuple[Any, ...]:
    """``run`` as the functions that start one take it first: $1-$6 of
    SIGNAL_WITH_START and ``updates.UPDATE_WITH_START``, the first fields of a
    ``tether.start_op`` (``store._start_op``)."""
    started = orjson.dumps(run.started).decode()
    return run.namespace, run.run_id, run.workflow_id, run.workflow_type, run.task_queue, started


REQUEST_CANCEL = f"""
SELECT {RUN_COLUMNS} FROM tether.request_cancel($1, $2, $3, $4) r
WHERE tether.usable_namespace($1)
"""

# -- workflow tasks -------------------------------------------------------------------

# Claims take the namespaces' ready tasks by priority, pass and age, walking the
# tasks_ready index in its order whatever the planner's statistics say (migration 0018).
CLAIM_WORKFLOW_TASKS = """
SELECT id, namespace, run_id, workflow_id, workflow_type, task_queue, token
FROM tether.claim_ready('workflow', $1, tether.usable_namespaces($2::text[]), $3::text[], $4,
                        $5, tether.epoch())
"""

#: The longest history a claim sends along with its task (see CLAIM_AND_READ).
CLAIM_READ_EVENTS = 64

# The claim, and for each run of at most CLAIM_READ_EVENTS events what the worker would
# read next (updates.READ_FOR_TASKS from seq 0), in one round trip (migration 0025). A
# longer run's read columns are null.
CLAIM_AND_READ = f"""
SELECT * FROM tether.claim_workflow_tasks_read($1, $2::text[], $3::text[], $4, $5,
                                               {CLAIM_READ_EVENTS})
"""

RELEASE_WORKFLOW_TASK = """
UPDATE tether.tasks SET owner = NULL, visible_at = tether.epoch() + $4, error = $5
WHERE id = $1 AND namespace = $2 AND kind = 'workflow' AND token = $3 AND owner IS NOT NULL
RETURNING tether.notify_work(namespace, task_queue)
"""

# -- activity tasks -------------------------------------------------------------------

CLAIM_ACTIVITY_TASKS = """
SELECT id, namespace, run_id, workflow_id, step, name, task_queue, args, options, attempt,
       scheduled_at, token, heartbeat, last_failure, lost
FROM tether.claim_ready('activity', $1, tether.usable_namespaces($2::text[]), $3::text[], $4,
                        $5, tether.epoch())
"""

HEARTBEAT_ACTIVITY = """
UPDATE tether.tasks SET heartbeat = $4::json, visible_at = tether.epoch() + $5
WHERE id = $1 AND namespace = $2 AND kind = 'activity' AND token = $3 AND owner IS NOT NULL
  AND visible_at > tether.epoch()
RETURNING cancel_requested
"""

EXTEND_LEASES = "SELECT o_id, o_token FROM tether.extend_leases($1, $2, $3, $4)"

RETRY_ACTIVITY = """
UPDATE tether.tasks
SET owner = NULL, visible_at = $4, attempt = attempt + 1, last_failure = $5::json
WHERE id = $1 AND namespace = $2 AND kind = 'activity' AND token = $3 AND owner IS NOT NULL
  AND visible_at > tether.epoch()
RETURNING tether.notify_work(namespace, task_queue)
"""

RELEASE_ACTIVITY = """
UPDATE tether.tasks SET owner = NULL, visible_at = tether.epoch()
WHERE id = $1 AND namespace = $2 AND kind = 'activity' AND token = $3 AND owner IS NOT NULL
  AND visible_at > tether.epoch()
RETURNING tether.notify_work(namespace, task_queue)
"""

# -- timers and waking up -------------------------------------------------------------

FIRE_TIMERS = "SELECT tether.fire_timers(tether.usable_namespaces($1::text[]), $2::text[], $3)"

# When the next task of these namespaces and queues is due: the first entry of each
# (namespace, queue, kind) in tasks_due (migration 0033).
NEXT_DUE = "SELECT tether.next_due($1::text[], $2::text[])"

# The same look, by a worker about to wait with free slots: it is registered as idle,
# under its store's LISTEN connection, for notify_work to wake (0026).
NEXT_DUE_IDLE = "SELECT tether.next_due_idle($1::text[], $2::text[], $3, $4)"
NOTIFY_WORK = "SELECT tether.notify_work($1, $2)"
WAKE_IDLE = "SELECT tether.wake_idle(x.ns, x.q) FROM unnest($1::text[], $2::text[]) AS x (ns, q)"
FORGET_IDLE = "DELETE FROM tether.idle_listeners WHERE listener = $1"

# -- child runs and continue-as-new (migrations/0005_children.sql) -------------------

START_LINKED_RUNS = "SELECT tether.start_linked_runs($1, $2, $3::json, $4::json)"
