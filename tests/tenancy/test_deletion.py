"""Deleting a namespace or a run leaves no byte of it in the database files; the
retention sweeper removes closed runs past their namespace's retention."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import asyncpg

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually


def _app(make_app: AppFactory) -> tether.App:
    app = make_app()

    @app.activity
    async def remember(secret: str) -> str:
        return f"stored {secret}"

    @app.workflow
    async def keep(ctx: tether.Context, secret: str) -> str:
        await ctx.sleep(3600) if secret.endswith("wait") else None
        return await ctx.activity(remember, secret)

    return app


async def _found(store_url: str, marker: bytes) -> dict[str, bool]:
    """Where ``marker`` is in the store's files: the SQLite file and its log; on
    PostgreSQL every relation file of the tether schema (tables, indexes, TOAST), read
    through the server (superuser), after a VACUUM FULL and a CHECKPOINT."""
    if not store_url.startswith("postgres"):
        conn = sqlite3.connect(store_url)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        files = [Path(store_url), Path(f"{store_url}-wal")]
        return {f.name: marker in f.read_bytes() for f in files if f.exists()}
    conn = await asyncpg.connect(store_url)
    try:
        tables = await conn.fetch(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'tether' AND c.relkind = 'r'"
        )
        for (table,) in tables:
            await conn.execute(f"VACUUM FULL {table}")
        await conn.execute("CHECKPOINT")
        relations = await conn.fetch(
            "SELECT c.oid::regclass::text, pg_relation_filepath(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('tether', 'pg_toast') AND c.relkind IN ('r', 'i', 't')"
            " AND (n.nspname = 'tether' OR c.oid IN (SELECT reltoastrelid FROM pg_class"
            " JOIN pg_namespace m ON m.oid = relnamespace WHERE m.nspname = 'tether'))"
        )
        found = {}
        try:
            for name, path in relations:
                data = await conn.fetchval("SELECT pg_read_binary_file($1)", path)
                found[name] = marker in (data or b"")
        except asyncpg.InsufficientPrivilegeError:
            # Not a superuser: the files cannot be read, so look in every row instead
            # (this proves less: it cannot see dead tuples).
            for (table,) in tables:
                found[table] = await conn.fetchval(
                    f"SELECT count(*) > 0 FROM {table} t WHERE t::text LIKE '%' || $1 || '%'",
                    marker.decode(),
                )
        return found
    finally:
        await conn.close()


async def _gone(store_url: str, marker: bytes) -> dict[str, bool]:
    """Scan until the marker is gone: on PostgreSQL a VACUUM FULL keeps row versions that
    a snapshot still open elsewhere in the database may see, so a scan can race the
    last of them; a few rounds let such snapshots end. Returns the last scan."""
    for _ in range(20):
        found = await _found(store_url, marker)
        if found and not any(found.values()):
            break
        await asyncio.sleep(0.25)
    return found


async def test_deleting_a_namespace_leaves_no_byte(make_app: AppFactory, store_url: str) -> None:
    marker = f"GDPR-NS-{uuid.uuid4().hex}"
    app = _app(make_app)
    async with app, app.worker(namespaces=["doomed", "default"]):
        await app.client.namespaces.create("doomed", max_running_activities=5)
        for i in range(20):
            assert (
                await app.client.execute(
                    "keep", f"{marker}-{i}", namespace="doomed", id=f"{marker}-id-{i}", timeout=30
                )
                == f"stored {marker}-{i}"
            )
        waiting = await app.client.start("keep", f"{marker}-wait", namespace="doomed")
        await eventually(lambda: waiting.history())
        assert await app.client.execute("keep", "innocent", timeout=30) == "stored innocent"
        assert any((await _found(store_url, marker.encode())).values())  # it was there
        await app.client.namespaces.delete("doomed")
    found = await _gone(store_url, marker.encode())
    assert found and not any(found.values()), found
    async with app:  # the other namespace kept its run
        assert (await app.client.list()).runs[0].result == "stored innocent"


async def test_deleting_one_run_leaves_no_byte(make_app: AppFactory, store_url: str) -> None:
    marker = f"GDPR-RUN-{uuid.uuid4().hex}"
    app = _app(make_app)
    async with app, app.worker():
        await app.client.execute("keep", marker, id="customer-42", timeout=30)
        await app.client.execute("keep", "someone else", id="customer-43", timeout=30)
        assert any((await _found(store_url, marker.encode())).values())
        await app.client.delete_run("customer-42")
        try:
            await app.client.get_handle("customer-42").describe()
            raise AssertionError("the run is still there")
        except tether.WorkflowNotFound:
            pass
        assert await app.client.get_handle("customer-43").result() == "stored someone else"
    found = await _gone(store_url, marker.encode())
    assert found and not any(found.values()), found


async def test_the_sweeper_removes_runs_past_retention(make_app: AppFactory) -> None:
    app = _app(make_app)
    async with app:
        await app.client.namespaces.create("short", retention=0.5)
        # A minute: longer than this test lasts, yet short enough that a sweeper that
        # misread the retention (as milliseconds, say) would remove these runs too.
        await app.client.namespaces.create("long", retention=60)
        async with app.worker(namespaces=["short", "long"], retention_sweep=0.2) as worker:
            for ns in ("short", "long"):
                for i in range(3):
                    await app.client.execute("keep", f"s{i}", namespace=ns, timeout=30)
            open_run = await app.client.start("keep", "x-wait", namespace="short")

            sweeper = worker.sweeper
            assert sweeper is not None

            async def swept() -> bool:
                # The count is added when a sweep ends, after its last namespace.
                return sweeper.purged >= 3 and not [
                    r
                    for r in (await app.client.list(namespace="short")).runs
                    if r.status != tether.RunStatus.RUNNING
                ]

            await eventually(swept, timeout=10)
            assert sweeper.purged == 3
            # Retention, not the sweep itself, decides: the same sweeps kept the closed
            # runs of the namespace whose retention has not passed, and the open run.
            assert len((await app.client.list(namespace="long")).runs) == 3
            assert (await open_run.describe()).status == tether.RunStatus.RUNNING
