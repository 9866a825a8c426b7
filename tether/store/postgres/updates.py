"""Update requests in the PostgreSQL store (``migrations/0007_updates.sql``).

``PostgresUpdates`` is the part of :class:`PostgresStore` that handles them; outcomes
are announced on ``tether_update`` and wake the same waiters as a run's close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import orjson

from ...errors import (
    TetherError,
    UpdateNotFound,
)
from ...history import Event
from ..protocol import NewRun, RunRecord, TaskRead, WorkflowCommit, WorkflowTask
from ..updates import UpdateRecord, UpdateStatus
from ..waiters import wait_update
from . import queries as q
from .commits import GroupCommit, Kind
from .refusals import input_refused, lease_lost, start_refused

__all__ = ["COMPLETE_UPDATES", "UPDATE_CHANNEL", "PostgresUpdates", "completions", "task_read"]

T = TypeVar("T")

UPDATE_CHANNEL = "tether_update"

REQUEST_UPDATE = """
SELECT * FROM tether.request_update($1, $2, $3, $4, $5) WHERE tether.usable_namespace($1)
"""

UPDATE_WITH_START = """
SELECT * FROM tether.update_with_start($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
WHERE tether.usable_namespace($1)
"""

GET_UPDATE = """
SELECT * FROM tether.updates WHERE namespace = $1 AND run_id = $2 AND update_id = $3
"""

# What workflow tasks read of their runs, one row per key (``read_key``: namespace,
# run id, seq read so far), in one snapshot: the run's last seq, the events after the
# seq and the pending requests, each as parallel arrays. The first three columns are
# the group commit's refusal columns (commits.py), always empty for a read.
READ_FOR_TASKS = """
SELECT NULL::text, NULL::text, NULL::text, coalesce(r.last_seq, 0),
       e.seqs, e.types, e.tss, e.attrs, u.ids, u.created, u.calls
FROM unnest($1::tether.read_key[]) WITH ORDINALITY AS k (namespace, run_id, after_seq, i)
LEFT JOIN tether.runs r ON r.namespace = k.namespace AND r.run_id = k.run_id
CROSS JOIN LATERAL (
    SELECT array_agg(ev.seq ORDER BY ev.seq) AS seqs,
           array_agg(ev.type ORDER BY ev.seq) AS types,
           array_agg(ev.ts ORDER BY ev.seq) AS tss,
           array_agg(ev.attrs::text ORDER BY ev.seq) AS attrs
    FROM tether.events ev
    WHERE ev.namespace = k.namespace AND ev.run_id = k.run_id AND ev.seq > k.after_seq
) AS e
CROSS JOIN LATERAL (
    SELECT array_agg(up.update_id ORDER BY up.arrival) AS ids,
           array_agg(up.created_at ORDER BY up.arrival) AS created,
           array_agg(json_build_array(up.name, up.args)::text ORDER BY up.arrival) AS calls
    FROM tether.updates up
    WHERE up.namespace = k.namespace AND up.run_id = k.run_id AND up.status = 'pending'
) AS u
ORDER BY k.i
"""
_READ = Kind(READ_FOR_TASKS)

ACCEPT_UPDATES = "SELECT tether.accept_updates($1, $2, $3, $4, $5, $6, $7, $8)"

COMPLETE_UPDATES = "SELECT tether.complete_updates($1, $2, $3, $4, $5)"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _record(row: asyncpg.Record) -> UpdateRecord:
    return UpdateRecord(
        namespace=row["namespace"],
        run_id=row["run_id"],
        update_id=row["update_id"],
        name=row["name"],
        args=orjson.loads(row["args"]),
        status=UpdateStatus(row["status"]),
        result=None if row["result"] is None else orjson.loads(row["result"]),
        failure=None if row["failure"] is None else orjson.loads(row["failure"]),
        created_at=row["created_at"],
    )


def task_read(namespace: str, run_id: str, columns: Sequence[Any]) -> TaskRead:
    """A TaskRead from READ_FOR_TASKS's columns past its refusal columns (the claim's
    CLAIM_AND_READ has the same): last seq, the events' arrays, the updates' arrays."""
    last_seq, seqs, types, tss, attrs, ids, created, calls = columns
    events = [
        Event(seq, kind, ts, orjson.loads(data))
        for seq, kind, ts, data in zip(seqs or (), types or (), tss or (), attrs or (), strict=True)
    ]
    pending = []
    for update_id, at, call in zip(ids or (), created or (), calls or (), strict=True):
        name, args = orjson.loads(call)
        pending.append(
            UpdateRecord(
                namespace, run_id, update_id, name, args, UpdateStatus.PENDING, None, None, at
            )
        )
    return TaskRead(events, pending, last_seq)


def completions(commit: WorkflowCommit) -> tuple[list[str], list[str], list[str | None]]:
    """The parameters of COMPLETE_UPDATES for a commit's update outcomes."""
    return (
        [o.update_id for o in commit.updates],
        [_dumps(o.result) for o in commit.updates],
        [None if o.failure is None else _dumps(o.failure) for o in commit.updates],
    )


class PostgresUpdates:
    """Update requests: the store's methods for them (mixed into PostgresStore)."""

    if TYPE_CHECKING:
        poll_interval: float
        _close_waiters: dict[tuple[str, str], set[asyncio.Future[None]]]

        async def _call(
            self,
            op: Callable[[Any], Awaitable[T]],
            on_error: Callable[[asyncpg.PostgresError], TetherError | None] | None = None,
        ) -> T: ...

        async def _await_close(self, namespace: str, run_id: str) -> None: ...

        async def get_run(
            self, namespace: str, workflow_id: str, run_id: str | None = None
        ) -> RunRecord: ...

        _looks: GroupCommit

        async def _guarded(
            self,
            run: Callable[[], Awaitable[T]],
            on_error: Callable[[asyncpg.PostgresError], TetherError | None] | None,
        ) -> T: ...

    async def request_update(
        self, namespace: str, run_id: str, update_id: str, name: str, args: list[Any]
    ) -> UpdateRecord:
        row = await self._call(
            lambda c: c.fetchrow(REQUEST_UPDATE, namespace, run_id, update_id, name, _dumps(args)),
            input_refused(namespace, run_id),
        )
        return _record(row)

    async def update_with_start(
        self, run: NewRun, update_id: str, name: str, args: list[Any], *, use_existing: bool
    ) -> UpdateRecord:
        refused = start_refused(run, then=input_refused(run.namespace, run.run_id))
        params = (*q.run_args(run), update_id, name, _dumps(args), use_existing)
        row = await self._call(lambda c: c.fetchrow(UPDATE_WITH_START, *params), refused)
        return _record(row)

    async def get_update(self, namespace: str, run_id: str, update_id: str) -> UpdateRecord:
        row = await self._call(lambda c: c.fetchrow(GET_UPDATE, namespace, run_id, update_id))
        if row is None:
            raise UpdateNotFound(namespace=namespace, run_id=run_id, update_id=update_id)
        return _record(row)

    async def wait_update(
        self, namespace: str, run_id: str, update_id: str, timeout: float | None
    ) -> UpdateRecord:
        if timeout is None or timeout > 0:
            await self._await_close(namespace, run_id)  # a close ends the wait too
        waiters, poll = self._close_waiters, self.poll_interval
        return await wait_update(self, waiters, namespace, run_id, update_id, timeout, poll)

    async def read_for_task(self, namespace: str, run_id: str, after_seq: int) -> TaskRead:
        # The reads of one loop turn share a statement, as the looks at runs do.
        row = await self._guarded(
            lambda: self._looks.submit(_READ, (namespace, run_id, after_seq)), None
        )
        return task_read(namespace, run_id, row[3:])

    async def accept_updates(
        self,
        task: WorkflowTask,
        accepted: Sequence[UpdateRecord],
        rejected: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        refused = lease_lost(task.task_id)

        events = [
            _dumps({"name": u.name, "update_id": u.update_id, "args": u.args}) for u in accepted
        ]
        await self._call(
            lambda c: c.execute(
                ACCEPT_UPDATES,
                task.namespace,
                task.run_id,
                task.task_id,
                task.token,
                [u.update_id for u in accepted],
                events,
                [update_id for update_id, _ in rejected],
                [_dumps(failure) for _, failure in rejected],
            ),
            refused,
        )
