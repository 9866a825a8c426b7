"""The store's connections to PostgreSQL: a bounded set, each lent to one caller at a
time.

asyncpg's ``Pool`` costs two tasks and two turns of the event loop per statement: its
``acquire`` with a timeout runs in a task of its own (``wait_for``), and its
``release`` in another (``shield``). Here a free connection is taken and given back
without awaiting anything; only a caller that finds none free waits (and only then is
a timeout armed).

A connection comes back to the free list only in a known state: its statement returned
or PostgreSQL refused it, and no transaction is open. Anything else (the caller was
cancelled mid-statement, the socket failed, a transaction was left open) closes it,
and its place goes to the next caller, who opens a new one. A connection the server
ended while it sat free is dropped when it is next taken: asyncpg marks it closed as
soon as it reads the end of the socket.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import asyncpg

__all__ = ["Conn", "Connections"]

T = TypeVar("T")
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
#: A waiter is handed a free connection, or ``None``: a place to open one in.
_Handoff: TypeAlias = "asyncio.Future[Conn | None]"


class Connections:
    """At most ``size`` connections opened by ``connect``; ``run(op)`` lends one."""

    def __init__(
        self, connect: Callable[[], Awaitable[Conn]], size: int, *, wait_timeout: float
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._connect = connect
        self.size = size
        self.wait_timeout = wait_timeout
        self._free: list[Conn] = []  # the last one given back is the next one taken
        self._open = 0  # connections open or being opened
        self._waiters: deque[_Handoff] = deque()
        self._closed = False
        #: A moving average of the wait for a connection, in seconds: the load signal.
        self.queued = 0.0

    async def run(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        conn = self._take_free()
        if conn is None:
            asked = time.monotonic()
            conn = await self._wait()
            self.queued += (time.monotonic() - asked - self.queued) * 0.2
        else:
            self.queued -= self.queued * 0.2
        reusable = False
        try:
            result = await op(conn)
            reusable = True
            return result
        except asyncpg.PostgresError:
            reusable = True  # refused by the server: the connection is fine
            raise
        finally:
            self._give_back(conn, reusable and not conn.is_in_transaction())

    def _take_free(self) -> Conn | None:
        while self._free:
            conn = self._free.pop()
            if not conn.is_closed():
                return conn
            self._open -= 1
        return None

    async def _wait(self) -> Conn:
        if self._closed:
            raise asyncpg.InterfaceError("the store's connections are closed")
        if self._open < self.size:
            self._open += 1
            return await self._open_one()
        handoff: _Handoff = asyncio.get_running_loop().create_future()
        self._waiters.append(handoff)
        try:
            async with asyncio.timeout(self.wait_timeout):
                conn = await handoff
        except BaseException:
            if handoff.done() and not handoff.cancelled() and handoff.exception() is None:
                # Handed a connection (or a place) as it gave up: pass it on.
                given = handoff.result()
                if given is None:
                    self._open -= 1
                    self._hand_place()
                else:
                    self._give_back(given, True)
            else:
                handoff.cancel()
            raise
        return conn if conn is not None else await self._open_one()

    async def _open_one(self) -> Conn:
        """Open a connection in a place already counted in ``_open``."""
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._hand_place()
            raise

    def _give_back(self, conn: Conn, reusable: bool) -> None:
        if not reusable or self._closed or conn.is_closed():
            conn.terminate()
            self._open -= 1
            self._hand_place()
            return
        while self._waiters:
            handoff = self._waiters.popleft()
            if not handoff.done():
                handoff.set_result(conn)
                return
        self._free.append(conn)

    def _hand_place(self) -> None:
        """A place came free: the first caller still waiting opens a connection in it."""
        while self._waiters and not self._closed:
            handoff = self._waiters.popleft()
            if not handoff.done():
                self._open += 1
                handoff.set_result(None)
                return

    async def close(self, timeout: float = 10.0) -> None:
        """Close the free connections; those lent out close when they come back."""
        self._closed = True
        error = asyncpg.InterfaceError("the store's connections are closed")
        while self._waiters:
            handoff = self._waiters.popleft()
            if not handoff.done():
                handoff.set_exception(error)
        free, self._free = self._free, []
        self._open -= len(free)
        for conn in free:
            try:
                await asyncio.wait_for(conn.close(), timeout)
            except (Exception, TimeoutError):
                conn.terminate()
