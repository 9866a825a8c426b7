"""The PostgreSQL store's own connections (``store/postgres/connections.py``): bounded,
lent one caller at a time, and given back only in a known state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.pg import PgTemplate, database_url
from tether.store.postgres.connections import Conn, Connections


@pytest.fixture
async def url(pg_template: PgTemplate) -> AsyncIterator[str]:
    name = await pg_template.clone()
    yield database_url(name)
    await pg_template.drop_database(name)


class Opened:
    """``connect`` for a ``Connections``, counting what it opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conns: list[Conn] = []

    async def __call__(self) -> Conn:
        conn: Conn = await asyncpg.connect(self.url)
        self.conns.append(conn)
        return conn


class Held:
    """An operation that keeps its connection until released; returns its backend."""

    def __init__(self) -> None:
        self.holding, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, conn: Conn) -> int:
        self.holding.set()
        await self.release.wait()
        return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_a_caller_waits_for_the_one_connection_and_gets_it_back(url: str) -> None:
    opened = Opened(url)
    conns = Connections(opened, 1, wait_timeout=30)
    held = Held()
    first = asyncio.ensure_future(conns.run(held))
    await held.holding.wait()
    second = asyncio.ensure_future(conns.run(lambda c: c.fetchval("SELECT pg_backend_pid()")))
    await asyncio.sleep(0)
    assert not second.done()  # the only connection is lent out
    held.release.set()
    assert await first == await second  # handed over, not a second connection
    assert len(opened.conns) == 1
    await conns.close()
    assert opened.conns[0].is_closed()


async def test_a_refused_statement_keeps_its_connection_a_cancelled_one_does_not(
    url: str,
) -> None:
    opened = Opened(url)
    conns = Connections(opened, 1, wait_timeout=30)
    with pytest.raises(asyncpg.UndefinedTableError):
        await conns.run(lambda c: c.fetch("SELECT * FROM no_such_table"))
    assert await conns.run(lambda c: c.fetchval("SELECT 1")) == 1
    assert len(opened.conns) == 1  # refused by the server: the connection is fine

    started = asyncio.Event()

    async def slow(conn: Conn) -> None:
        started.set()
        await conn.execute("SELECT pg_sleep(30)")

    cancelled = asyncio.ensure_future(conns.run(slow))
    await started.wait()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert opened.conns[0].is_closed()  # its state unknown: closed, not reused
    assert await conns.run(lambda c: c.fetchval("SELECT 2")) == 2
    assert len(opened.conns) == 2  # the next caller opened one in its place
    await conns.close()


async def test_a_waiter_that_gives_up_leaves_its_place_to_the_next(url: str) -> None:
    opened = Opened(url)
    conns = Connections(opened, 1, wait_timeout=0.2)
    held = Held()
    first = asyncio.ensure_future(conns.run(held))
    await held.holding.wait()
    with pytest.raises(TimeoutError):  # no connection came free within wait_timeout
        await conns.run(lambda c: c.fetchval("SELECT 1"))
    held.release.set()
    await first
    assert await conns.run(lambda c: c.fetchval("SELECT 3")) == 3
    assert len(opened.conns) == 1
    await conns.close()
    with pytest.raises(asyncpg.InterfaceError):
        await conns.run(lambda c: c.fetchval("SELECT 4"))
