"""Numbered migrations of the PostgreSQL store, applied when a store opens.

Everything lives in the schema ``tether``, marked as Tether's by its comment. Several
processes may open a new database at once: the migrations run in one transaction
under a transaction-level advisory lock, so exactly one applies them and the others
then find the schema current. A schema that is not Tether's, or that a newer Tether
wrote, is refused with :class:`tether.errors.IncompatibleStore` and left untouched.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

from ...errors import IncompatibleStore

__all__ = ["SCHEMA", "current_version", "latest_version", "migrate", "migrations"]

SCHEMA = "tether"
MARKER = "Tether store"
# pg_advisory_xact_lock key: "TETR" + "MIGR" as one bigint, unlikely to collide.
LOCK_KEY = 0x54455452_4D494752

_SCHEMA_STATE = """
SELECT n.oid IS NOT NULL AS present,
       obj_description(n.oid, 'pg_namespace') AS marker,
       (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) AS relations,
       to_regclass('tether.schema_version') IS NOT NULL AS versioned
FROM (SELECT 1) AS one
LEFT JOIN pg_namespace n ON n.nspname = $1
"""


def migrations() -> list[tuple[int, str]]:
    """The (number, SQL) of every migration shipped with this code, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def latest_version() -> int:
    return migrations()[-1][0]


async def current_version(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
) -> int:
    """The schema version the database holds (0 when it holds none)."""
    if await conn.fetchval("SELECT to_regclass('tether.schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM tether.schema_version"))


async def migrate(conn: asyncpg.Connection, where: str, *, apply: bool = True) -> int:
    """Bring the schema up to date (only check it, if not ``apply``); return its version.

    ``where`` names the database.
    """
    shipped = migrations()
    latest = shipped[-1][0]
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        state = await conn.fetchrow(_SCHEMA_STATE, SCHEMA)
        assert state is not None
        version = 0
        if state["present"]:
            ours = state["marker"] == MARKER and state["versioned"]
            if not ours and state["relations"]:
                raise IncompatibleStore(
                    f"{where} has a schema {SCHEMA!r} that is not a Tether store", store=where
                )
            if ours:
                version = await current_version(conn)
        if version > latest:
            raise IncompatibleStore(
                f"{where} has schema version {version}, newer than this Tether knows"
                f" ({latest}); upgrade Tether",
                store=where,
            )
        for number, sql in shipped:
            if apply and number > version:
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO tether.schema_version (version) VALUES ($1)", number
                )
                version = number
    return version
