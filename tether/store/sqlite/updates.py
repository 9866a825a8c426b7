"""Update requests in the SQLite store (``migrations/0007_updates.sql``): the writer
thread's operations and the reads; see ``store/updates.py``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...errors import UpdateNotFound, WorkflowAlreadyStarted
from ...history import EventType
from ..protocol import NewRun, TaskRead, WorkflowTask
from ..updates import UpdateRecord, UpdateStatus
from . import ops
from .columns import events_after, loads_or_none

__all__ = [
    "accept_updates",
    "get_update",
    "pending_updates",
    "read_for_task",
    "request_update",
    "update_with_start",
]


_COLUMNS = "namespace, run_id, update_id, name, args, status, result, failure, created_at"


def _record(row: Sequence[Any]) -> UpdateRecord:
    return UpdateRecord(
        namespace=row[0],
        run_id=row[1],
        update_id=row[2],
        name=row[3],
        args=orjson.loads(row[4]),
        status=UpdateStatus(row[5]),
        result=loads_or_none(row[6]),
        failure=loads_or_none(row[7]),
        created_at=row[8],
    )


def _find(
    conn: sqlite3.Connection, namespace: str, run_id: str, update_id: str
) -> UpdateRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM updates WHERE namespace = ? AND run_id = ? AND update_id = ?",
        (namespace, run_id, update_id),
    ).fetchone()
    return None if row is None else _record(row)


def get_update(
    conn: sqlite3.Connection, namespace: str, run_id: str, update_id: str
) -> UpdateRecord:
    found = _find(conn, namespace, run_id, update_id)
    if found is None:
        raise UpdateNotFound(namespace=namespace, run_id=run_id, update_id=update_id)
    return found


def pending_updates(conn: sqlite3.Connection, namespace: str, run_id: str) -> list[UpdateRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM updates WHERE namespace = ? AND run_id = ?"
        " AND status = 'pending' ORDER BY arrival",
        (namespace, run_id),
    ).fetchall()
    return [_record(r) for r in rows]


def read_for_task(
    conn: sqlite3.Connection, namespace: str, run_id: str, after_seq: int
) -> TaskRead:
    """What a workflow task reads, in one read transaction: the events and the run's
    last seq come from one snapshot, whatever the writer commits meanwhile."""
    conn.execute("BEGIN")
    try:
        row = conn.execute(
            "SELECT last_seq FROM runs WHERE namespace = ? AND run_id = ?", (namespace, run_id)
        ).fetchone()
        events = events_after(conn, namespace, run_id, after_seq)
        pending = pending_updates(conn, namespace, run_id)
    finally:
        conn.execute("COMMIT")
    return TaskRead(events, pending, 0 if row is None else row[0])


def _insert(
    conn: sqlite3.Connection,
    namespace: str,
    run_id: str,
    update_id: str,
    name: str,
    args: list[Any],
    now: float,
) -> UpdateRecord:
    conn.execute(
        "INSERT INTO updates (namespace, run_id, update_id, arrival, name, args, status,"
        " created_at) VALUES (?, ?, ?, (SELECT coalesce(max(arrival), 0) + 1 FROM updates"
        " WHERE namespace = ? AND run_id = ?), ?, ?, 'pending', ?)",
        (namespace, run_id, update_id, namespace, run_id, name, orjson.dumps(args), now),
    )
    return UpdateRecord(
        namespace, run_id, update_id, name, args, UpdateStatus.PENDING, None, None, now
    )


def request_update(
    conn: sqlite3.Connection,
    namespace: str,
    run_id: str,
    update_id: str,
    name: str,
    args: list[Any],
    now: float,
) -> tuple[UpdateRecord, list[Any]]:
    ops.check_run(conn, namespace, run_id)
    found = _find(conn, namespace, run_id, update_id)
    if found is not None:
        return found, []
    ops.check_open(conn, namespace, run_id, "update")
    record = _insert(conn, namespace, run_id, update_id, name, args, now)
    ops.request_workflow_task(conn, namespace, run_id, now)
    return record, [ops.WORK]


def update_with_start(
    conn: sqlite3.Connection,
    run: NewRun,
    update_id: str,
    name: str,
    args: list[Any],
    use_existing: bool,
    now: float,
) -> tuple[UpdateRecord, list[Any]]:
    open_id = ops.open_run(conn, run.namespace, run.workflow_id)
    if open_id is not None:
        if not use_existing:
            raise WorkflowAlreadyStarted(namespace=run.namespace, workflow_id=run.workflow_id)
        return request_update(conn, run.namespace, open_id, update_id, name, args, now)
    ops.start_run(conn, run, now)  # its workflow task is the one the update needs
    record = _insert(conn, run.namespace, run.run_id, update_id, name, args, now)
    return record, [ops.WORK]


def accept_updates(
    conn: sqlite3.Connection,
    task: WorkflowTask,
    accepted: Sequence[UpdateRecord],
    rejected: Sequence[tuple[str, dict[str, Any]]],
    now: float,
) -> list[Any]:
    ops.check_lease(conn, task.task_id, task.token, now)
    ns, run_id = task.namespace, task.run_id
    if accepted:
        events = [
            (EventType.UPDATE_ACCEPTED, {"name": u.name, "update_id": u.update_id, "args": u.args})
            for u in accepted
        ]
        ops.append_events(conn, ns, run_id, events, now)
        conn.executemany(
            "UPDATE updates SET status = 'accepted' WHERE namespace = ? AND run_id = ?"
            " AND update_id = ? AND status = 'pending'",
            [(ns, run_id, u.update_id) for u in accepted],
        )
    if not rejected:
        return []
    conn.executemany(
        "UPDATE updates SET status = 'rejected', failure = ? WHERE namespace = ? AND run_id = ?"
        " AND update_id = ? AND status = 'pending'",
        [(orjson.dumps(failure), ns, run_id, update_id) for update_id, failure in rejected],
    )
    return [(ops.UPDATED, ns, run_id)]
