"""An isolated PostgreSQL database per test, cloned from a migrated template.

The admin URL is ``TETHER_TEST_PG`` (default: ``postgresql://postgres@127.0.0.1:5432/
postgres``, trust auth). Once per session a template database is created and migrated;
each test gets ``CREATE DATABASE ... TEMPLATE`` (a file copy, tens of milliseconds)
and the database is dropped afterwards. When the server is unreachable the tests are
skipped locally but fail under CI (``CI`` set): CI must never skip PostgreSQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

__all__ = ["ADMIN_URL", "PgTemplate", "database_url"]

T = TypeVar("T")
ADMIN_URL = os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    """The admin URL pointed at database ``name``."""
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # A thread of its own, so that no event loop of the test session is disturbed.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(admin_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(admin_url, timeout=5)


class PgTemplate:
    """A migrated template database for one test session."""

    def __init__(self, admin_url: str = ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.prefix = f"tether_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.name = f"{self.prefix}_tmpl"

    def create(self) -> None:
        """Create and migrate the template; skip (or fail under CI) if unreachable."""
        try:
            _run(self._create())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            message = f"PostgreSQL unreachable at {self.admin_url}: {exc}"
            if os.environ.get("CI"):
                pytest.fail(f"{message} (CI must not skip PostgreSQL tests)", pytrace=False)
            pytest.skip(message)

    async def _create(self) -> None:
        from tether.store.postgres import PostgresStore

        admin = await _admin(self.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        store = PostgresStore(database_url(self.name, self.admin_url), pool_size=1)
        await store.open()
        await store.close()

    def drop(self) -> None:
        _run(self._drop(self.name))

    async def _drop(self, name: str) -> None:
        admin = await _admin(self.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def clone(self, *, empty: bool = False) -> str:
        """A new database (a copy of the template, or ``empty``); returns its name."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        source = "template0" if empty else self.name
        admin = await _admin(self.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        finally:
            await admin.close()
        return name

    async def drop_database(self, name: str) -> None:
        await self._drop(name)

    async def execute(self, name: str, sql: str) -> None:
        """Run ``sql`` in database ``name`` as the admin user."""
        conn = await asyncpg.connect(database_url(name, self.admin_url), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
