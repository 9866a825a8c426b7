"""One LISTEN connection per store: turns NOTIFY into wake-ups, and survives restarts.

The connection is kept apart from the pool (a pooled connection may be reset or
replaced between uses, and would lose its LISTEN). When it drops (the server restarts,
the network fails, an administrator kills it) the listener reconnects with backoff
and then wakes every waiter, since notifications sent meanwhile are lost. A quiet
connection is checked every ``health_interval`` seconds, so that a silently dead one
is noticed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

__all__ = ["Listener"]

log = logging.getLogger("tether.store.postgres")

Handler = Callable[[str, str], None]


class Listener:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channels: dict[str, Handler],
        on_reconnect: Callable[[], None],
        *,
        health_interval: float = 10.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._connect = connect
        self._channels = channels
        self._on_reconnect = on_reconnect
        self._health_interval = health_interval
        self._max_backoff = max_backoff
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connects = 0

    async def start(self) -> None:
        """Connect and listen; raises if the first connection fails."""
        await self._listen()
        self._task = asyncio.create_task(self._supervise(), name="tether-pg-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection: work notifications name it
        when they are handed to this process alone (migration 0026)."""
        return None if self._conn is None or self._conn.is_closed() else self._conn.get_server_pid()

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            self._lost.clear()
            conn.add_termination_listener(self._terminated)
            for channel in self._channels:
                await conn.add_listener(channel, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self.connects += 1

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._terminated)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
            conn.terminate()

    def _terminated(self, conn: Any) -> None:
        self._lost.set()

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        handler = self._channels.get(channel)
        if handler is not None:
            handler(channel, str(payload))

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._health_interval)
            if not self._lost.is_set() and await self._healthy():
                continue
            log.warning("PostgreSQL LISTEN connection lost; reconnecting")
            await self._drop()
            await self._reconnect()
            self._on_reconnect()

    async def _healthy(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.execute("SELECT 1"), self._health_interval)
        except (Exception, TimeoutError):
            return False
        return True

    async def _reconnect(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._listen()
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.debug("PostgreSQL LISTEN reconnect failed: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
