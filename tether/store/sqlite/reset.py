"""Reset in the SQLite store (see ``store/reset.py``): run by the writer thread, in one
transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ...errors import WorkflowAlreadyStarted
from ...history import EventType
from ..reset import ResetRun
from .children import on_run_closed

__all__ = ["reset_run"]

dumps = orjson.dumps


def _terminate(
    conn: sqlite3.Connection, reset: ResetRun, run_id: str, now: float
) -> tuple[tuple[Any, ...], list[Any]]:
    """Close the open run the reset replaces; return its parent link (which the new
    run takes over, so the parent is not told of this run's end) and notes."""
    from .ops import append_events

    ns = reset.namespace
    event = (EventType.WORKFLOW_TERMINATED, reset.terminated())
    append_events(conn, ns, run_id, [event], now)
    parent = conn.execute(
        "SELECT parent_run_id, parent_step, parent_close_policy FROM runs"
        " WHERE namespace = ? AND run_id = ?",
        (ns, run_id),
    ).fetchone()
    conn.execute(
        "UPDATE runs SET status = 'terminated', failure = ?, closed_at = ?,"
        " parent_run_id = NULL, parent_step = NULL, parent_close_policy = NULL"
        " WHERE namespace = ? AND run_id = ?",
        (dumps(reset.failure()), now, ns, run_id),
    )
    conn.execute("DELETE FROM tasks WHERE namespace = ? AND run_id = ?", (ns, run_id))
    return tuple(parent), [("closed", ns, run_id), *on_run_closed(conn, ns, run_id, now)]


def reset_run(conn: sqlite3.Connection, reset: ResetRun, now: float) -> list[Any]:
    """Write ``reset``; return notes for ``store.py``."""
    from .ops import WORK, check_run, open_run

    ns, base = reset.namespace, reset.base_run_id
    check_run(conn, ns, base)  # the run, in a namespace not being deleted
    row = conn.execute(
        "SELECT workflow_id, workflow_type, task_queue, last_seq FROM runs"
        " WHERE namespace = ? AND run_id = ?",
        (ns, base),
    ).fetchone()
    workflow_id, workflow_type, queue = reset.check_base(row)
    notes: list[Any] = [WORK]
    parent: tuple[Any, ...] = (None, None, None)
    open_id = open_run(conn, ns, workflow_id)
    if open_id is not None:
        parent, closed = _terminate(conn, reset, open_id, now)
        notes.extend(closed)
    signals = []
    if reset.reapply_signals:
        signals = conn.execute(
            "SELECT attrs FROM events WHERE namespace = ? AND run_id = ? AND seq > ? AND type = ?"
            " ORDER BY seq",
            (ns, base, reset.seq, str(EventType.SIGNAL_RECEIVED)),
        ).fetchall()
    marker = reset.marker(open_id, len(signals))
    last_seq = reset.seq + 1 + len(signals)
    try:
        conn.execute(
            "INSERT INTO runs (namespace, run_id, workflow_id, workflow_type, task_queue, status,"
            " created_at, last_seq, parent_run_id, parent_step, parent_close_policy)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (ns, reset.new_run_id, workflow_id, workflow_type, queue, now, last_seq, *parent),
        )
    except sqlite3.IntegrityError:
        raise WorkflowAlreadyStarted(namespace=ns, workflow_id=workflow_id) from None
    conn.execute(
        "INSERT INTO events (namespace, run_id, seq, type, ts, attrs)"
        " SELECT namespace, ?, seq, type, ts, attrs FROM events"
        " WHERE namespace = ? AND run_id = ? AND seq <= ?",
        (reset.new_run_id, ns, base, reset.seq),
    )
    added = [(str(EventType.WORKFLOW_RESET), dumps(marker))]
    added.extend((str(EventType.SIGNAL_RECEIVED), attrs) for (attrs,) in signals)
    conn.executemany(
        "INSERT INTO events (namespace, run_id, seq, type, ts, attrs) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (ns, reset.new_run_id, reset.seq + 1 + i, etype, now, attrs)
            for i, (etype, attrs) in enumerate(added)
        ],
    )
    conn.execute(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)"
        " VALUES (?, ?, 'workflow', ?, ?, ?)",
        (ns, reset.new_run_id, queue, now, now),
    )
    conn.executemany(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, step, visible_at, scheduled_at,"
        " name, args, options, cancel_requested) VALUES (?, ?, 'activity', ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (ns, reset.new_run_id, a.task_queue, a.step, now, now, a.name, dumps(a.args),
             dumps(a.options), int(reset.cancel_requested))
            for a in reset.activities
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO tasks (namespace, run_id, kind, task_queue, step, visible_at,"
        " scheduled_at) VALUES (?, ?, 'timer', ?, ?, ?, ?)",
        [(ns, reset.new_run_id, queue, step, fire_at, now) for step, fire_at in reset.timers],
    )
    return notes
