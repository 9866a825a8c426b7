"""Waiting for a run to change: the loop every store's ``wait_closed`` and
``wait_update`` share.

A waiter registers a future under its run before it looks, so a change committed
while it looks still wakes it; then it waits for that wake-up, at most ``poll``
seconds when notifications can be missed (PostgreSQL's LISTEN connection may drop),
and looks again.

A close committed by this process can also hand the waiters of the run what it wrote
(``LocalCloses``): the waiter then has the closed run without reading it back, one
round trip less for a result awaited beside the worker that produced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, Protocol, TypeVar

from .protocol import RunRecord, RunStatus
from .updates import UpdateRecord

__all__ = [
    "Box",
    "LocalCloses",
    "Waiters",
    "closed_record",
    "wait_closed",
    "wait_for_change",
    "wait_update",
]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

Waiters = dict[K, set["asyncio.Future[None]"]]


async def wait_for_change(
    waiters: Waiters[K],
    key: K,
    look: Callable[[], Awaitable[tuple[bool, T]]],
    timeout: float | None,
    poll: float | None = None,
) -> T:
    """Call ``look()`` until it answers (True, value), and return that value; once
    ``timeout`` seconds have passed, return the last value it gave. Between looks,
    wait for a wake-up of ``key`` in ``waiters`` (at most ``poll`` seconds)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    loop = asyncio.get_running_loop()
    while True:
        future: asyncio.Future[None] = loop.create_future()
        waiters.setdefault(key, set()).add(future)
        try:
            done, value = await look()
            remaining = None if deadline is None else deadline - time.monotonic()
            if done or (remaining is not None and remaining <= 0):
                return value
            wait = remaining if poll is None else min(remaining or poll, poll)
            # A wait that ends unwoken is a look like any other: the timer wakes the
            # future itself (cheaper than ``wait_for``'s timeout, at every wait).
            timer = None if wait is None else loop.call_later(wait, _wake, future)
            try:
                await future
            finally:
                if timer is not None:
                    timer.cancel()
        finally:
            registered = waiters.get(key)
            if registered is not None:
                registered.discard(future)
                if not registered:
                    del waiters[key]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Reads(Protocol):
    async def get_run(
        self, namespace: str, workflow_id: str, run_id: str | None = None
    ) -> RunRecord: ...

    async def get_update(self, namespace: str, run_id: str, update_id: str) -> UpdateRecord: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Close:
    status: RunStatus
    result: Any
    failure: dict[str, Any] | None
    closed_at: float
    history_length: int


@dataclasses.dataclass(slots=True)
class Box:
    """What a waiter (or a watch) was handed of its run's close, if anything yet.
    ``limit``: the largest close, in bytes of JSON, it keeps; a larger one only sets
    ``missed`` (its holder must read the run)."""

    close: _Close | None = None
    limit: int | None = None
    missed: bool = False


def closed_record(last: RunRecord, close: _Close) -> RunRecord:
    """The run as a read would give it after ``close``, from ``last`` read before (a
    closed run has no stuck task; its search attributes are left empty, as they may
    have changed in that close)."""
    # Built field by field: dataclasses.replace inspects the class's fields at every
    # call, and this runs at the end of every run a client waits for.
    return RunRecord(
        namespace=last.namespace, workflow_id=last.workflow_id, run_id=last.run_id,
        workflow_type=last.workflow_type, task_queue=last.task_queue, status=close.status,
        created_at=last.created_at, closed_at=close.closed_at, result=close.result,
        failure=close.failure, history_length=close.history_length, stuck=None,
        search_attributes={},
    )  # fmt: skip


class LocalCloses:
    """Closes handed to the waiters of their runs, so that they need not read the run
    back: those this process commits, and those a notification carries (PostgreSQL)."""

    def __init__(self) -> None:
        self._boxes: dict[tuple[str, str], list[Box]] = {}

    def watch(self, key: tuple[str, str], *, limit: int | None = None) -> Box:
        """A box the run's closes are handed to until :meth:`unwatch`."""
        box = Box(limit=limit)
        self._boxes.setdefault(key, []).append(box)
        return box

    def unwatch(self, key: tuple[str, str], box: Box) -> None:
        boxes = self._boxes.get(key)
        if boxes is not None and box in boxes:
            boxes.remove(box)
            if not boxes:
                del self._boxes[key]

    @contextlib.contextmanager
    def box(self, key: tuple[str, str]) -> Iterator[Box]:
        box = self.watch(key)
        try:
            yield box
        finally:
            self.unwatch(key, box)

    def waiting(self, key: tuple[str, str]) -> bool:
        """Does a waiter of the run wait here (is a close worth handing over)?"""
        return key in self._boxes

    def hand(
        self,
        key: tuple[str, str],
        *,
        status: RunStatus,
        result: Any,
        failure: dict[str, Any] | None,
        closed_at: float,
        history_length: int,
        size: int = 0,
    ) -> None:
        """Give the run's waiters, if any, the close just committed (before waking
        them); ``size`` is its result's and failure's length in JSON."""
        boxes = self._boxes.get(key)
        if boxes:
            close = _Close(status, result, failure, closed_at, history_length)
            for box in boxes:
                if box.limit is not None and size > box.limit:
                    box.missed = True
                else:
                    box.close = close


async def wait_closed(
    store: _Reads,
    waiters: Waiters[tuple[str, str]],
    namespace: str,
    run_id: str,
    timeout: float | None,
    poll: float | None = None,
    local: LocalCloses | None = None,
    *,
    started: RunRecord | None = None,
) -> RunRecord:
    """The run once it is closed, or as it is when ``timeout`` passes. A close handed
    by ``local`` completes the run as last read, without reading it again (a closed
    run has no stuck task; its search attributes are left empty, as they may have
    changed in that close). A run ``started`` in this very turn, whose first task ran
    here, is taken as that record at first (one read less for a result awaited beside
    its start); the wait for news is registered before anything else can close it."""
    key = (namespace, run_id)
    last = started
    # Taken as the first look, unless there is no time to wait for news of it.
    first = started if timeout is None or timeout > 0 else None

    async def look(box: Box | None) -> tuple[bool, RunRecord]:
        nonlocal last, first
        if first is not None:
            record, first = first, None
            return False, record
        if box is not None and box.close is not None and last is not None:
            return True, closed_record(last, box.close)
        last = await store.get_run(namespace, "", run_id)
        return last.status != RunStatus.RUNNING, last

    if local is None:
        return await wait_for_change(waiters, key, lambda: look(None), timeout, poll)
    with local.box(key) as box:
        return await wait_for_change(waiters, key, lambda: look(box), timeout, poll)


async def wait_update(
    store: _Reads,
    waiters: Waiters[tuple[str, str]],
    namespace: str,
    run_id: str,
    update_id: str,
    timeout: float | None,
    poll: float | None = None,
) -> UpdateRecord:
    """The update once it has its outcome, or once its run closed (it will not get one
    then), or as it is when ``timeout`` passes. Outcomes and closes of the run wake the
    run's waiters."""

    async def look() -> tuple[bool, UpdateRecord]:
        record = await store.get_update(namespace, run_id, update_id)
        if record.done:
            return True, record
        run = await store.get_run(namespace, "", run_id)
        return run.status != RunStatus.RUNNING, record

    return await wait_for_change(waiters, (namespace, run_id), look, timeout, poll)
