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
from .refusals import input_refused, lease_lost, start_refused

__all__ = ["COMPLETE_UPDATES", "UPDATE_CHANNEL", "PostgresUpdates", "completions"]

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

# The history after a seq, the pending requests and the run's last seq, in one
# statement (one snapshot): the requests come next, as (1, arrival, update_id,
# created_at, [name, args]), and the run's row last, as (2, last_seq, ...).
READ_FOR_TASK = """
SELECT 0, seq, type, ts, attrs FROM tether.events
WHERE namespace = $1 AND run_id = $2 AND seq > $3
UNION ALL
SELECT 1, arrival, update_id, created_at, json_build_array(name, args) FROM tether.updates
WHERE namespace = $1 AND run_id = $2 AND status = 'pending'
UNION ALL
SELECT 2, last_seq, NULL, NULL, NULL FROM tether.runs
WHERE namespace = $1 AND run_id = $2
ORDER BY 1, 2
"""

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

        async def get_run(
            self, namespace: str, workflow_id: str, run_id: str | None = None
        ) -> RunRecord: ...

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
        waiters, poll = self._close_waiters, self.poll_interval
        return await wait_update(self, waiters, namespace, run_id, update_id, timeout, poll)

    async def read_for_task(self, namespace: str, run_id: str, after_seq: int) -> TaskRead:
        rows = await self._call(lambda c: c.fetch(READ_FOR_TASK, namespace, run_id, after_seq))
        events, pending, last_seq = [], [], 0
        for kind, seq, text, ts, attrs in rows:
            if kind == 0:
                events.append(Event(seq, text, ts, orjson.loads(attrs)))
            elif kind == 1:
                name, args = orjson.loads(attrs)
                pending.append(
                    UpdateRecord(
                        namespace, run_id, text, name, args, UpdateStatus.PENDING, None, None, ts
                    )
                )
            else:
                last_seq = seq
        return TaskRead(events, pending, last_seq)

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
