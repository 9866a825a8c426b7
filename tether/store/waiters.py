"""Waiting for a run to change: the loop every store's ``wait_closed`` and
``wait_update`` share.

A waiter registers a future under its run before it looks, so a change committed
while it looks still wakes it; then it waits for that wake-up, at most ``poll``
seconds when notifications can be missed (PostgreSQL's LISTEN connection may drop),
and looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

from .protocol import RunRecord, RunStatus
from .updates import UpdateRecord

__all__ = ["Waiters", "wait_closed", "wait_for_change", "wait_update"]

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, wait)
        finally:
            registered = waiters.get(key)
            if registered is not None:
                registered.discard(future)
                if not registered:
                    del waiters[key]


class _Reads(Protocol):
    async def get_run(
        self, namespace: str, workflow_id: str, run_id: str | None = None
    ) -> RunRecord: ...

    async def get_update(self, namespace: str, run_id: str, update_id: str) -> UpdateRecord: ...


async def wait_closed(
    store: _Reads,
    waiters: Waiters[tuple[str, str]],
    namespace: str,
    run_id: str,
    timeout: float | None,
    poll: float | None = None,
) -> RunRecord:
    """The run once it is closed, or as it is when ``timeout`` passes."""

    async def look() -> tuple[bool, RunRecord]:
        run = await store.get_run(namespace, "", run_id)
        return run.status != RunStatus.RUNNING, run

    return await wait_for_change(waiters, (namespace, run_id), look, timeout, poll)


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
