"""Reading the SQLite store's rows: its JSON columns, a run's events, and the columns
of a claimed task with the ``ActivityTask`` they describe."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...history import Event
from ..protocol import ActivityTask

__all__ = ["CLAIMED_COLUMNS", "activity_task", "events_after", "loads_or_none"]

# What a claim returns for each task (tasks t JOIN runs r), as the PostgreSQL type
# tether.claimed_task.
CLAIMED_COLUMNS = (
    "t.id, t.namespace, t.run_id, r.workflow_id, r.workflow_type, t.task_queue, t.token,"
    " t.step, t.name, t.args, t.options, t.attempt, t.scheduled_at, t.heartbeat,"
    " t.last_failure"
)


def loads_or_none(raw: bytes | str | None) -> Any:
    """The JSON value a nullable column holds; None for SQL NULL."""
    return None if raw is None else orjson.loads(raw)


def events_after(
    conn: sqlite3.Connection, namespace: str, run_id: str, after_seq: int
) -> list[Event]:
    """The run's events after seq ``after_seq``, in order."""
    rows = conn.execute(
        "SELECT seq, type, ts, attrs FROM events WHERE namespace = ? AND run_id = ?"
        " AND seq > ? ORDER BY seq",
        (namespace, run_id, after_seq),
    ).fetchall()
    return [Event(seq, etype, ts, orjson.loads(attrs)) for seq, etype, ts, attrs in rows]


def activity_task(row: Sequence[Any]) -> ActivityTask:
    """The claimed activity a row of ``CLAIMED_COLUMNS`` then ``lost`` (whether the
    previous attempt's lease expired) describes."""
    return ActivityTask(
        task_id=row[0],
        namespace=row[1],
        run_id=row[2],
        workflow_id=row[3],
        step=row[7],
        name=row[8],
        task_queue=row[5],
        args=orjson.loads(row[9]),
        options=orjson.loads(row[10]),
        attempt=row[11],
        scheduled_at=row[12],
        token=row[6],
        heartbeat_details=loads_or_none(row[13]),
        last_failure=loads_or_none(row[14]),
        previous_lost=bool(row[15]),
    )
