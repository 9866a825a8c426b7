"""The write operations of the SQLite store, each run by the writer thread inside
the group transaction (see ``writer.py``). They hold all of the store's write SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...errors import (
    InvalidArgument,
    LeaseLost,
    NamespaceNotFound,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from ...history import EventType
from ..protocol import (
    ActivityOutcome,
    ActivityTask,
    CommitResult,
    NewActivity,
    NewRun,
    RunStatus,
    WorkflowCommit,
    WorkflowTask,
    outcome_events,
)
from ..updates import UpdateOutcome, UpdateStatus
from .children import on_run_closed, start_children, start_continued
from .columns import CLAIMED_COLUMNS, activity_task

dumps = orjson.dumps
loads = orjson.loads

WORK = "work"  # note: tasks became ready; wake workers
UPDATED = "updated"  # note: ("updated", namespace, run_id), an update got its outcome


def _in(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def being_deleted(namespace: str) -> NamespaceNotFound:
    """The refusal of input to a namespace whose deletion has begun."""
    return NamespaceNotFound(f"namespace {namespace!r} is being deleted", namespace=namespace)


def check_namespace(conn: sqlite3.Connection, namespace: str, *, missing_ok: bool = False) -> None:
    """Raise NamespaceNotFound if the namespace is being deleted, or (unless
    ``missing_ok``) does not exist."""
    row = conn.execute(
        "SELECT deleting_since FROM namespaces WHERE name = ?", (namespace,)
    ).fetchone()
    if row is None:
        if missing_ok:
            return
        raise NamespaceNotFound(namespace=namespace)
    if row[0] is not None:
        raise being_deleted(namespace)


def usable(conn: sqlite3.Connection, namespaces: Sequence[str]) -> Sequence[str]:
    """``namespaces`` without those being deleted: their tasks are not claimed."""
    doomed = conn.execute("SELECT name FROM namespaces WHERE deleting_since IS NOT NULL")
    gone = {name for (name,) in doomed.fetchall()}
    return [n for n in namespaces if n not in gone] if gone else namespaces


def append_events(
    conn: sqlite3.Connection,
    namespace: str,
    run_id: str,
    events: Sequence[tuple[str, dict[str, Any]]],
    now: float,
) -> int:
    """Append events after the run's last one; return the new last seq."""
    (last,) = conn.execute(
        "UPDATE runs SET last_seq = last_seq + ? WHERE namespace = ? AND run_id = ? "
        "RETURNING last_seq",
        (len(events), namespace, run_id),
    ).fetchone()
    first = last - len(events) + 1
    conn.executemany(
        "INSERT INTO events (namespace, run_id, seq, type, ts, attrs) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (namespace, run_id, first + i, str(etype), now, dumps(attrs))
            for i, (etype, attrs) in enumerate(events)
        ],
    )
    return int(last)


def start_run(
    conn: sqlite3.Connection, run: NewRun, now: float, lease_to: tuple[str, float] | None = None
) -> int:
    """Create the run; return its first workflow task's id (leased to ``lease_to``'s
    owner for its seconds, when given: an eager start)."""
    check_namespace(conn, run.namespace)
    try:
        conn.execute(
            "INSERT INTO runs (namespace, run_id, workflow_id, workflow_type, task_queue, status,"
            " created_at, last_seq) VALUES (?, ?, ?, ?, ?, 'running', ?, 1)",
            (run.namespace, run.run_id, run.workflow_id, run.workflow_type, run.task_queue, now),
        )
    except sqlite3.IntegrityError:
        raise WorkflowAlreadyStarted(namespace=run.namespace, workflow_id=run.workflow_id) from None
    conn.execute(
        "INSERT INTO events (namespace, run_id, seq, type, ts, attrs) VALUES (?, ?, 1, ?, ?, ?)",
        (run.namespace, run.run_id, str(EventType.WORKFLOW_STARTED), now, dumps(run.started)),
    )
    if lease_to is None:
        cursor = conn.execute(
            "INSERT INTO tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)"
            " VALUES (?, ?, 'workflow', ?, ?, ?)",
            (run.namespace, run.run_id, run.task_queue, now, now),
        )
    else:
        owner, lease = lease_to
        cursor = conn.execute(
            "INSERT INTO tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at,"
            " owner, token) VALUES (?, ?, 'workflow', ?, ?, ?, ?, 1)",
            (run.namespace, run.run_id, run.task_queue, now + lease, now, owner),
        )
    return int(cursor.lastrowid or 0)


def request_workflow_task(conn: sqlite3.Connection, namespace: str, run_id: str, now: float) -> str:
    """Make sure the run has a workflow task; mark a leased one dirty so it runs again."""
    (queue,) = conn.execute(
        "SELECT task_queue FROM runs WHERE namespace = ? AND run_id = ?", (namespace, run_id)
    ).fetchone()
    conn.execute(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)"
        " VALUES (?, ?, 'workflow', ?, ?, ?)"
        " ON CONFLICT (namespace, run_id) WHERE kind = 'workflow' DO UPDATE SET"
        " dirty = CASE WHEN tasks.owner IS NOT NULL AND tasks.visible_at > excluded.visible_at"
        " THEN 1 ELSE tasks.dirty END",
        (namespace, run_id, queue, now, now),
    )
    return str(queue)


def _lease_workflow_task(
    conn: sqlite3.Connection, namespace: str, run_id: str, owner: str, now: float, lease: float
) -> WorkflowTask | None:
    row = conn.execute(
        "UPDATE tasks SET owner = ?, visible_at = ?, token = token + 1, dirty = 0, error = NULL"
        " WHERE namespace = ? AND run_id = ? AND kind = 'workflow' AND visible_at <= ?"
        " RETURNING id, token, task_queue",
        (owner, now + lease, namespace, run_id, now),
    ).fetchone()
    if row is None:
        return None
    wid, wtype = conn.execute(
        "SELECT workflow_id, workflow_type FROM runs WHERE namespace = ? AND run_id = ?",
        (namespace, run_id),
    ).fetchone()
    return WorkflowTask(row[0], namespace, run_id, wid, wtype, row[2], row[1])


def check_lease(conn: sqlite3.Connection, task_id: int, token: int, now: float) -> sqlite3.Row:
    row = conn.execute(
        "SELECT token, visible_at, dirty FROM tasks WHERE id = ? AND owner IS NOT NULL",
        (task_id,),
    ).fetchone()
    if row is None or row[0] != token or row[1] <= now:
        raise LeaseLost(task_id=task_id)
    return row  # type: ignore[no-any-return]


def claim_workflow_tasks(
    conn: sqlite3.Connection,
    owner: str,
    namespaces: Sequence[str],
    queues: Sequence[str],
    limit: int,
    lease: float,
    now: float,
) -> list[WorkflowTask]:
    namespaces = usable(conn, namespaces)
    if not namespaces:
        return []
    rows = conn.execute(
        "SELECT t.id, t.namespace, t.run_id, t.task_queue, r.workflow_id, r.workflow_type"
        " FROM tasks t JOIN runs r ON r.namespace = t.namespace AND r.run_id = t.run_id"
        f" WHERE t.kind = 'workflow' AND t.namespace IN ({_in(namespaces)})"
        f" AND t.task_queue IN ({_in(queues)}) AND t.visible_at <= ?"
        " ORDER BY t.priority, t.pass, t.visible_at LIMIT ?",
        (*namespaces, *queues, now, limit),
    ).fetchall()
    out = []
    for tid, ns, run_id, queue, wid, wtype in rows:
        (token,) = conn.execute(
            "UPDATE tasks SET owner = ?, visible_at = ?, token = token + 1, dirty = 0"
            " WHERE id = ? RETURNING token",
            (owner, now + lease, tid),
        ).fetchone()
        out.append(WorkflowTask(tid, ns, run_id, wid, wtype, queue, token))
    return out


def _insert_activity(
    conn: sqlite3.Connection,
    namespace: str,
    run_id: str,
    act: NewActivity,
    owner: str | None,
    now: float,
    lease: float,
) -> int:
    (tid,) = conn.execute(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, step, visible_at, owner, token,"
        " scheduled_at, name, args, options) VALUES (?, ?, 'activity', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            namespace,
            run_id,
            act.task_queue,
            act.step,
            now + lease if owner else now,
            owner,
            1 if owner else 0,
            now,
            act.name,
            dumps(act.args),
            dumps(act.options),
        ),
    ).fetchone()
    return int(tid)


def _apply_commit(
    conn: sqlite3.Connection,
    namespace: str,
    run_id: str,
    workflow_id: str,
    task_queue: str,
    commit: WorkflowCommit,
    lease: float,
    now: float,
) -> tuple[list[ActivityTask], list[Any]]:
    """Write a workflow task's commands other than its events; return local claims."""
    notes: list[Any] = []
    claimed: list[ActivityTask] = []
    for act in commit.activities:
        local = commit.claim_activities_for if act.task_queue in commit.local_queues else None
        tid = _insert_activity(conn, namespace, run_id, act, local, now, lease)
        if local:
            claimed.append(
                ActivityTask(
                    tid,
                    namespace,
                    run_id,
                    workflow_id,
                    act.step,
                    act.name,
                    act.task_queue,
                    act.args,
                    act.options,
                    attempt=1,
                    scheduled_at=now,
                    token=1,
                )
            )
        else:
            notes.append(WORK)
    for step, fire_at in commit.timers:
        conn.execute(
            "INSERT INTO tasks (namespace, run_id, kind, task_queue, step, visible_at,"
            " scheduled_at) VALUES (?, ?, 'timer', ?, ?, ?, ?)",
            (namespace, run_id, task_queue, step, fire_at, now),
        )
        notes.append(WORK)
    if commit.cancel_timers:
        conn.execute(
            "DELETE FROM tasks WHERE namespace = ? AND run_id = ? AND kind = 'timer'"
            f" AND step IN ({','.join('?' * len(commit.cancel_timers))})",
            (namespace, run_id, *commit.cancel_timers),
        )
    if commit.children:
        start_children(conn, namespace, run_id, commit.children, now)
        notes.append(WORK)
    if commit.updates:
        complete_updates(conn, namespace, run_id, commit.updates)
        notes.append((UPDATED, namespace, run_id))
    if commit.close is not None:
        close = commit.close
        conn.execute(
            "UPDATE runs SET status = ?, result = ?, failure = ?, closed_at = ?"
            " WHERE namespace = ? AND run_id = ?",
            (
                str(close.status),
                dumps(close.result),
                dumps(close.failure) if close.failure is not None else None,
                now,
                namespace,
                run_id,
            ),
        )
        conn.execute("DELETE FROM tasks WHERE namespace = ? AND run_id = ?", (namespace, run_id))
        notes.append(("closed", namespace, run_id))
        notes.extend(on_run_closed(conn, namespace, run_id, now))
        if commit.continue_as_new is not None:
            start_continued(conn, namespace, run_id, commit.continue_as_new, now)
            notes.append(WORK)
    return claimed, notes


def complete_updates(
    conn: sqlite3.Connection, namespace: str, run_id: str, outcomes: Sequence[UpdateOutcome]
) -> None:
    """Store the outcomes of accepted updates (their UpdateCompleted is in the commit)."""
    conn.executemany(
        "UPDATE updates SET status = ?, result = ?, failure = ? WHERE namespace = ?"
        " AND run_id = ? AND update_id = ? AND status = 'accepted'",
        [
            (
                str(UpdateStatus.COMPLETED if o.failure is None else UpdateStatus.FAILED),
                dumps(o.result),
                None if o.failure is None else dumps(o.failure),
                namespace,
                run_id,
                o.update_id,
            )
            for o in outcomes
        ],
    )


def complete_workflow_task(
    conn: sqlite3.Connection, task: WorkflowTask, commit: WorkflowCommit, lease: float, now: float
) -> tuple[CommitResult, list[Any]]:
    ns, run_id = task.namespace, task.run_id
    # The common case in one statement: the task is still ours and no input came in.
    done = conn.execute(
        "DELETE FROM tasks WHERE id = ? AND token = ? AND owner IS NOT NULL AND visible_at > ?"
        " AND dirty = 0",
        (task.task_id, task.token, now),
    ).rowcount
    dirty = not done and check_lease(conn, task.task_id, task.token, now)[2]
    if commit.events:
        last_seq = append_events(conn, ns, run_id, commit.events, now)
    else:
        (last_seq,) = conn.execute(
            "SELECT last_seq FROM runs WHERE namespace = ? AND run_id = ?", (ns, run_id)
        ).fetchone()
    claimed, notes = _apply_commit(
        conn, ns, run_id, task.workflow_id, task.task_queue, commit, lease, now
    )
    next_task = None
    if dirty and commit.close is None:
        (token,) = conn.execute(
            "UPDATE tasks SET token = token + 1, dirty = 0, visible_at = ? WHERE id = ?"
            " RETURNING token",
            (now + lease, task.task_id),
        ).fetchone()
        next_task = WorkflowTask(
            task.task_id, ns, run_id, task.workflow_id, task.workflow_type, task.task_queue, token
        )
    return CommitResult(claimed, next_task, last_seq), notes


def advance_after_activity(
    conn: sqlite3.Connection,
    task: ActivityTask,
    outcome: ActivityOutcome,
    expected_seq: int,
    ts: float,
    commit: WorkflowCommit,
    lease: float,
    now: float,
) -> tuple[CommitResult | None, list[Any]]:
    ns, run_id = task.namespace, task.run_id
    last_seq, queue, pending, held = conn.execute(
        "SELECT last_seq, task_queue,"
        " EXISTS (SELECT 1 FROM tasks t WHERE t.namespace = r.namespace"
        " AND t.run_id = r.run_id AND t.kind = 'workflow'),"
        " EXISTS (SELECT 1 FROM tasks t WHERE t.id = ? AND t.token = ?"
        " AND t.owner IS NOT NULL AND t.visible_at > ?)"
        " FROM runs r WHERE r.namespace = ? AND r.run_id = ?",
        (task.task_id, task.token, now, ns, run_id),
    ).fetchone()
    if not held:
        raise LeaseLost(task_id=task.task_id)
    if last_seq != expected_seq or pending:
        return None, []
    conn.execute("DELETE FROM tasks WHERE id = ?", (task.task_id,))
    last_seq = append_events(conn, ns, run_id, outcome_events(task, outcome) + commit.events, ts)
    claimed, notes = _apply_commit(conn, ns, run_id, task.workflow_id, queue, commit, lease, now)
    return CommitResult(claimed, None, last_seq), notes


def _take_leased(conn: sqlite3.Connection, task_id: int, token: int, now: float) -> None:
    """Delete an activity task this caller still holds, or raise LeaseLost having
    changed nothing."""
    gone = conn.execute(
        "DELETE FROM tasks WHERE id = ? AND token = ? AND owner IS NOT NULL AND visible_at > ?"
        " AND kind = 'activity'",
        (task_id, token, now),
    ).rowcount
    if not gone:
        raise LeaseLost(task_id=task_id)


def release_workflow_task(
    conn: sqlite3.Connection, task: WorkflowTask, delay: float, error: str, now: float
) -> None:
    row = conn.execute(
        "SELECT token FROM tasks WHERE id = ? AND owner IS NOT NULL", (task.task_id,)
    ).fetchone()
    if row is None or row[0] != task.token:
        raise LeaseLost(task_id=task.task_id)
    conn.execute(
        "UPDATE tasks SET owner = NULL, visible_at = ?, error = ? WHERE id = ?",
        (now + delay, error, task.task_id),
    )


def claim_activity_tasks(
    conn: sqlite3.Connection,
    owner: str,
    namespaces: Sequence[str],
    queues: Sequence[str],
    limit: int,
    lease: float,
    now: float,
) -> list[ActivityTask]:
    namespaces = usable(conn, namespaces)
    if not namespaces:
        return []
    picked = conn.execute(
        "SELECT t.id, t.owner IS NOT NULL"
        " FROM tasks t JOIN runs r ON r.namespace = t.namespace AND r.run_id = t.run_id"
        f" WHERE t.kind = 'activity' AND t.namespace IN ({_in(namespaces)})"
        f" AND t.task_queue IN ({_in(queues)}) AND t.visible_at <= ?"
        " ORDER BY t.priority, t.pass, t.visible_at LIMIT ?",
        (*namespaces, *queues, now, limit),
    ).fetchall()
    for task_id, lost in picked:
        conn.execute(
            "UPDATE tasks SET owner = ?, visible_at = ?, token = token + 1,"
            " attempt = attempt + ? WHERE id = ?",
            (owner, now + lease, 1 if lost else 0, task_id),
        )
    return [activity_task(row) for row in claimed_rows(conn, picked)]


def claimed_rows(
    conn: sqlite3.Connection, picked: Sequence[tuple[int, bool]]
) -> list[tuple[Any, ...]]:
    """The rows of ``CLAIMED_COLUMNS`` then ``lost`` of the tasks just claimed, given
    as (task id, lost) pairs, in their order: one read for all of them."""
    if not picked:
        return []
    rows = conn.execute(
        f"SELECT {CLAIMED_COLUMNS} FROM tasks t JOIN runs r"
        f" ON r.namespace = t.namespace AND r.run_id = t.run_id WHERE t.id IN ({_in(picked)})",
        [task_id for task_id, _ in picked],
    ).fetchall()
    by_id = {row[0]: row for row in rows}
    return [(*by_id[task_id], bool(lost)) for task_id, lost in picked]


def heartbeat_activity(
    conn: sqlite3.Connection, task: ActivityTask, details: Any, lease: float, now: float
) -> bool:
    check_lease(conn, task.task_id, task.token, now)
    (cancel,) = conn.execute(
        "UPDATE tasks SET heartbeat = ?, visible_at = ? WHERE id = ? RETURNING cancel_requested",
        (dumps(details), now + lease, task.task_id),
    ).fetchone()
    return bool(cancel)


def extend_leases(
    conn: sqlite3.Connection, tasks: Sequence[ActivityTask], lease: float, now: float
) -> list[int]:
    lost = []
    for task in tasks:
        updated = conn.execute(
            "UPDATE tasks SET visible_at = ? WHERE id = ? AND token = ? AND owner IS NOT NULL"
            " AND visible_at > ?",
            (now + lease, task.task_id, task.token, now),
        ).rowcount
        if not updated:
            lost.append(task.task_id)
    return lost


def retry_activity(
    conn: sqlite3.Connection,
    task: ActivityTask,
    retry_at: float,
    failure: dict[str, Any],
    now: float,
) -> None:
    check_lease(conn, task.task_id, task.token, now)
    conn.execute(
        "UPDATE tasks SET owner = NULL, visible_at = ?, attempt = attempt + 1, last_failure = ?"
        " WHERE id = ?",
        (retry_at, dumps(failure), task.task_id),
    )


def finish_activity(
    conn: sqlite3.Connection,
    task: ActivityTask,
    outcome: ActivityOutcome,
    claim_for: str | None,
    local_queues: Sequence[str],
    lease: float,
    now: float,
) -> tuple[WorkflowTask | None, list[Any]]:
    _take_leased(conn, task.task_id, task.token, now)
    append_events(conn, task.namespace, task.run_id, outcome_events(task, outcome), now)
    queue = request_workflow_task(conn, task.namespace, task.run_id, now)
    if claim_for is not None and queue in local_queues:
        claimed = _lease_workflow_task(conn, task.namespace, task.run_id, claim_for, now, lease)
        if claimed is not None:
            return claimed, []
    return None, [WORK]


def release_activity(conn: sqlite3.Connection, task: ActivityTask, now: float) -> None:
    check_lease(conn, task.task_id, task.token, now)
    conn.execute("UPDATE tasks SET owner = NULL, visible_at = ? WHERE id = ?", (now, task.task_id))


def fire_timers(
    conn: sqlite3.Connection,
    namespaces: Sequence[str],
    queues: Sequence[str],
    limit: int,
    now: float,
) -> tuple[int, list[Any]]:
    namespaces = usable(conn, namespaces)
    if not namespaces:
        return 0, []
    rows = conn.execute(
        "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks"
        f" WHERE kind = 'timer' AND namespace IN ({_in(namespaces)})"
        f" AND task_queue IN ({_in(queues)}) AND visible_at <= ? ORDER BY visible_at LIMIT ?)"
        " RETURNING namespace, run_id, step",
        (*namespaces, *queues, now, limit),
    ).fetchall()
    for ns, run_id, step in rows:
        append_events(conn, ns, run_id, [(EventType.TIMER_FIRED, {"step": step})], now)
        request_workflow_task(conn, ns, run_id, now)
    return len(rows), [WORK] if rows else []


def check_run(conn: sqlite3.Connection, namespace: str, run_id: str) -> str:
    """The run's status; raise WorkflowNotFound if the namespace has no such run, and
    NamespaceNotFound if the namespace is being deleted."""
    row = conn.execute(
        "SELECT r.status, n.deleting_since FROM runs r"
        " LEFT JOIN namespaces n ON n.name = r.namespace WHERE r.namespace = ? AND r.run_id = ?",
        (namespace, run_id),
    ).fetchone()
    if row is None:
        check_namespace(conn, namespace, missing_ok=True)
        raise WorkflowNotFound(namespace=namespace, run_id=run_id)
    if row[1] is not None:
        raise being_deleted(namespace)
    return str(row[0])


def open_run(conn: sqlite3.Connection, namespace: str, workflow_id: str) -> str | None:
    """The id of the workflow id's open run, if it has one."""
    row = conn.execute(
        "SELECT run_id FROM runs WHERE namespace = ? AND workflow_id = ? AND status = 'running'",
        (namespace, workflow_id),
    ).fetchone()
    return None if row is None else str(row[0])


def check_open(conn: sqlite3.Connection, namespace: str, run_id: str, action: str = "") -> None:
    """Raise unless the namespace has this run and it is open (``action`` says what
    the caller meant to do)."""
    status = check_run(conn, namespace, run_id)
    if status != RunStatus.RUNNING:
        why = f"the run is already {status}" + (f"; cannot {action} it" if action else "")
        raise InvalidArgument(why, namespace=namespace, run_id=run_id)


def signal_run(
    conn: sqlite3.Connection, namespace: str, run_id: str, name: str, payload: Any, now: float
) -> tuple[int, list[Any]]:
    check_open(conn, namespace, run_id, f"signal {name!r} to")
    event = (EventType.SIGNAL_RECEIVED, {"name": name, "payload": payload})
    seq = append_events(conn, namespace, run_id, [event], now)
    request_workflow_task(conn, namespace, run_id, now)
    return seq, [WORK]


def signal_with_start(
    conn: sqlite3.Connection, run: NewRun, name: str, payload: Any, now: float
) -> tuple[str, list[Any]]:
    """Signal the open run of the workflow id, or start ``run`` and signal it; return
    the run id signalled."""
    open_id = open_run(conn, run.namespace, run.workflow_id)
    if open_id is not None:
        _, notes = signal_run(conn, run.namespace, open_id, name, payload, now)
        return open_id, notes
    start_run(conn, run, now)  # its workflow task is the one the signal needs
    event = (EventType.SIGNAL_RECEIVED, {"name": name, "payload": payload})
    append_events(conn, run.namespace, run.run_id, [event], now)
    return run.run_id, [WORK]


def request_cancel(
    conn: sqlite3.Connection, namespace: str, run_id: str, reason: str, identity: str, now: float
) -> list[Any]:
    check_open(conn, namespace, run_id, "cancel")
    event = (EventType.WORKFLOW_CANCEL_REQUESTED, {"reason": reason, "identity": identity})
    append_events(conn, namespace, run_id, [event], now)
    request_workflow_task(conn, namespace, run_id, now)
    conn.execute(
        "UPDATE tasks SET cancel_requested = 1"
        " WHERE namespace = ? AND run_id = ? AND kind = 'activity'",
        (namespace, run_id),
    )
    return [WORK]


def terminate_run(
    conn: sqlite3.Connection, namespace: str, run_id: str, reason: str, identity: str, now: float
) -> list[Any]:
    check_open(conn, namespace, run_id)
    failure = {"code": "terminated", "message": f"terminated by {identity}: {reason}"}
    append_events(
        conn,
        namespace,
        run_id,
        [(EventType.WORKFLOW_TERMINATED, {"reason": reason, "identity": identity})],
        now,
    )
    conn.execute(
        "UPDATE runs SET status = 'terminated', failure = ?, closed_at = ?"
        " WHERE namespace = ? AND run_id = ?",
        (dumps(failure), now, namespace, run_id),
    )
    conn.execute("DELETE FROM tasks WHERE namespace = ? AND run_id = ?", (namespace, run_id))
    return [("closed", namespace, run_id), *on_run_closed(conn, namespace, run_id, now)]
