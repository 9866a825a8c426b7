"""Child runs and continue-as-new in the SQLite store: run by the writer thread inside
the transaction of the commit or close that causes them (see ``ops.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...history import EventType
from ..protocol import ContinueAsNew, NewChild, RunStatus, child_failure, child_refused
from .columns import loads_or_none

__all__ = ["on_run_closed", "start_children", "start_continued"]

dumps = orjson.dumps


def _insert_run(
    conn: sqlite3.Connection,
    run: Any,
    parent: tuple[str | None, int | None, str | None],
    events: Sequence[tuple[str, Any]],
    now: float,
) -> bool:
    """Insert a run, its first events and its workflow task; False if an open run of
    the namespace has its workflow id (nothing is written then)."""
    try:
        conn.execute(
            "INSERT INTO runs (namespace, run_id, workflow_id, workflow_type, task_queue, status,"
            " created_at, last_seq, parent_run_id, parent_step, parent_close_policy)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (run.namespace, run.run_id, run.workflow_id, run.workflow_type, run.task_queue, now,
             len(events), *parent),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        return False
    conn.executemany(
        "INSERT INTO events (namespace, run_id, seq, type, ts, attrs) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (run.namespace, run.run_id, i + 1, str(etype), now, attrs)
            for i, (etype, attrs) in enumerate(events)
        ],
    )
    conn.execute(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)"
        " VALUES (?, ?, 'workflow', ?, ?, ?)",
        (run.namespace, run.run_id, run.task_queue, now, now),
    )
    return True


def start_children(
    conn: sqlite3.Connection, namespace: str, run_id: str, children: list[NewChild], now: float
) -> None:
    """Create the child runs of a commit; a child whose id is taken fails at once."""
    from .ops import append_events, request_workflow_task

    for child in children:
        run = child.run
        started = [(EventType.WORKFLOW_STARTED, dumps(run.started))]
        if _insert_run(conn, run, (run_id, child.step, child.close_policy), started, now):
            continue
        event = (
            EventType.CHILD_WORKFLOW_FAILED,
            {"step": child.step, "failure": child_refused(child)},
        )
        append_events(conn, namespace, run_id, [event], now)
        request_workflow_task(conn, namespace, run_id, now)


def start_continued(
    conn: sqlite3.Connection, namespace: str, run_id: str, new: ContinueAsNew, now: float
) -> None:
    """Start the run that continues ``run_id`` (already closed), with its signals."""
    parent = conn.execute(
        "SELECT parent_run_id, parent_step, parent_close_policy FROM runs"
        " WHERE namespace = ? AND run_id = ?",
        (namespace, run_id),
    ).fetchone()
    later = conn.execute(
        "SELECT attrs FROM events WHERE namespace = ? AND run_id = ? AND seq > ? AND type = ?"
        " ORDER BY seq",
        (namespace, run_id, new.after_seq, str(EventType.SIGNAL_RECEIVED)),
    ).fetchall()
    events: list[tuple[str, Any]] = [(EventType.WORKFLOW_STARTED, dumps(new.run.started))]
    for name, payload in new.signals:
        events.append((EventType.SIGNAL_RECEIVED, dumps({"name": name, "payload": payload})))
    events.extend((EventType.SIGNAL_RECEIVED, row[0]) for row in later)
    # The old run is closed, so its workflow id is free: this cannot conflict.
    inserted = _insert_run(conn, new.run, tuple(parent), events, now)
    assert inserted, "continue-as-new: the workflow id is still held by an open run"


def on_run_closed(conn: sqlite3.Connection, namespace: str, run_id: str, now: float) -> list[Any]:
    """After a run closed: tell its parent (unless it continued as new) and apply its
    close policy to its open children. Returns notes for ``store.py``."""
    from .ops import WORK, append_events, request_cancel, request_workflow_task, terminate_run

    notes: list[Any] = []
    # Most runs have no parent and no open child: one indexed look tells.
    linked = conn.execute(
        "SELECT parent_run_id IS NOT NULL, EXISTS (SELECT 1 FROM runs c INDEXED BY runs_by_parent"
        " WHERE c.namespace = r.namespace AND c.parent_run_id = r.run_id"
        " AND c.status = 'running') FROM runs r WHERE r.namespace = ? AND r.run_id = ?",
        (namespace, run_id),
    ).fetchone()
    if not linked[0] and not linked[1]:
        return notes
    row = conn.execute(
        "SELECT status, result, failure, workflow_id, workflow_type, parent_run_id, parent_step"
        " FROM runs WHERE namespace = ? AND run_id = ?",
        (namespace, run_id),
    ).fetchone()
    status, result, failure, workflow_id, workflow_type, parent_id, step = row
    if parent_id is not None and status != RunStatus.CONTINUED_AS_NEW:
        parent = conn.execute(
            "SELECT status FROM runs WHERE namespace = ? AND run_id = ?", (namespace, parent_id)
        ).fetchone()
        if parent is not None and parent[0] == RunStatus.RUNNING:
            if status == RunStatus.COMPLETED:
                attrs = {"step": step, "result": loads_or_none(result)}
                event = (EventType.CHILD_WORKFLOW_COMPLETED, attrs)
            else:
                cause = loads_or_none(failure)
                info = child_failure(status, workflow_id, workflow_type, run_id, cause)
                event = (EventType.CHILD_WORKFLOW_FAILED, {"step": step, "failure": info})
            append_events(conn, namespace, parent_id, [event], now)
            request_workflow_task(conn, namespace, parent_id, now)
            notes.append(WORK)
    children = conn.execute(
        # Without statistics SQLite would scan the namespace's runs by primary key.
        "SELECT run_id, parent_close_policy FROM runs INDEXED BY runs_by_parent"
        " WHERE namespace = ? AND parent_run_id = ? AND status = 'running'",
        (namespace, run_id),
    ).fetchall()
    reason = f"parent run {run_id} closed ({status})"
    for child_id, policy in children:
        if policy == "terminate":
            notes.extend(terminate_run(conn, namespace, child_id, reason, "parent", now))
        elif policy == "cancel":
            notes.extend(request_cancel(conn, namespace, child_id, reason, "parent", now))
    return notes
