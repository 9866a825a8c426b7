"""Sending an attempt's heartbeats to the store: in order, coalesced, flushed at the end.

A heartbeat's answer also says whether the attempt's run was asked to cancel; the
attempt is then stopped (``on_cancel``). Attempts that never heartbeat are not
stopped early: cancellation reaches an activity through its heartbeats, as in Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..errors import LeaseLost, StoreUnavailable
from ..store import ActivityTask, Store

__all__ = ["Heartbeats"]

log = logging.getLogger("tether.worker")
_NOTHING = object()


class Heartbeats:
    """One writer per attempt, so details land in the order they were given.

    While a heartbeat is being written, newer ones replace each other: an activity
    that beats in a tight loop costs one write at a time, not one per call.
    """

    def __init__(self, store: Store, task: ActivityTask, lease: float) -> None:
        self._store = store
        self._task = task
        self._lease = lease
        self._pending: Any = _NOTHING
        self._sender: asyncio.Task[None] | None = None
        self.on_lost: Callable[[], None] = lambda: None
        # Called when the store answers that the attempt's run was asked to cancel.
        self.on_cancel: Callable[[], None] = lambda: None

    def push(self, details: Any) -> None:
        self._pending = details
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def flush(self) -> None:
        """Wait until the newest details are written (before the attempt reports)."""
        if self._sender is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def _send(self) -> None:
        while self._pending is not _NOTHING:
            details, self._pending = self._pending, _NOTHING
            try:
                if await self._store.heartbeat_activity(self._task, details, self._lease):
                    self.on_cancel()
            except LeaseLost:
                self.on_lost()
                return
            except StoreUnavailable as exc:
                log.warning("heartbeat not recorded: %s", exc)
