"""The store conformance suite runs every test against every store.

``harness`` gives a test a fresh, empty location (a temp SQLite file, or a PostgreSQL
database cloned from a migrated template) and opens store objects on it; two store
objects on one location model two processes sharing a database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.pg import PgTemplate, database_url
from tether.store import Store
from tether.store.postgres import PostgresStore
from tether.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "postgres"]


class Harness:
    """One store location and the store objects opened on it during a test."""

    def __init__(self, kind: str, location: str, pg: PgTemplate | None, tmp: Path) -> None:
        self.kind = kind
        self.location = location  # a file path, or a database name
        self._pg = pg
        self._tmp = tmp
        self._stores: list[Store] = []
        self._databases: list[str] = []

    def new(self, location: str | None = None, **options: Any) -> Store:
        """A store object (not opened) on this location, or on another one."""
        where = location or self.location
        store: Store
        if self.kind == "sqlite":
            store = SqliteStore(where, **options)
        else:
            store = PostgresStore(database_url(where), **options)
        self._stores.append(store)
        return store

    async def open(self, **options: Any) -> Store:
        store = self.new(**options)
        await store.open()
        return store

    async def mark_newer(self) -> None:
        """Make the location look written by a newer Tether."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.location) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.close()
        else:
            assert self._pg is not None
            await self._pg.execute(
                self.location,
                "INSERT INTO tether.schema_version (version)"
                " SELECT max(version) + 1 FROM tether.schema_version",
            )

    async def foreign_locations(self) -> list[str]:
        """Locations that hold another application's data under Tether's names."""
        if self.kind == "sqlite":
            text = self._tmp / "notes.txt"
            text.write_text("not a database, just text long enough to fill a header\n" * 20)
            other = self._tmp / "other-app.db"
            with sqlite3.connect(other) as conn:
                conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
            conn.close()
            return [str(text), str(other)]
        assert self._pg is not None
        name = await self._pg.clone(empty=True)
        self._databases.append(name)
        await self._pg.execute(
            name,
            "CREATE SCHEMA tether; CREATE TABLE tether.runs (id serial PRIMARY KEY, name text);"
            " CREATE TABLE tether.tasks (id serial PRIMARY KEY)",
        )
        return [name]

    async def fresh_location(self) -> str:
        """Another empty location (for several processes creating one store at once)."""
        if self.kind == "sqlite":
            return str(self._tmp / f"fresh-{len(self._stores)}.db")
        assert self._pg is not None
        name = await self._pg.clone(empty=True)
        self._databases.append(name)
        return name

    async def aclose(self) -> None:
        for store in reversed(self._stores):
            await store.close()
        if self._pg is not None:
            for name in [self.location, *self._databases]:
                await self._pg.drop_database(name)


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind: str = request.param
    if kind == "sqlite":
        h = Harness(kind, str(tmp_path / "tether.db"), None, tmp_path)
    else:
        pg: PgTemplate = request.getfixturevalue("pg_template")
        h = Harness(kind, await pg.clone(), pg, tmp_path)
    try:
        yield h
    finally:
        await h.aclose()


@pytest.fixture
async def store(harness: Harness) -> Store:
    return await harness.open()
