"""Deleting a namespace or a run leaves no byte of it in the database files, also when
the deletion (in batches) was killed midway and then finished; other namespaces work
on meanwhile; the retention sweeper removes closed runs past their namespace's
retention."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


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


# -- deletion in batches ----------------------------------------------------------------

# Deletes the namespace a few rows at a time, saying so after each batch, until killed.
_SLOW_DELETER = """
import asyncio, sys
from tether.store import open_store

async def main() -> None:
    store = open_store(sys.argv[1])
    await store.open()
    await store.begin_namespace_deletion("doomed")
    while not await store.delete_namespace_batch("doomed", 3):
        print("batch", flush=True)
        await asyncio.sleep(0.05)
    print("done", flush=True)

asyncio.run(main())
"""


async def test_a_deletion_killed_midway_leaves_the_namespace_unusable_and_is_finished(
    make_app: AppFactory, store_url: str
) -> None:
    marker = f"GDPR-KILL-{uuid.uuid4().hex}"
    app = _app(make_app)
    async with app:
        await app.client.namespaces.create("doomed")
        async with app.worker(namespaces=["doomed"]):
            for i in range(6):
                await app.client.execute(
                    "keep", f"{marker}-{i}", namespace="doomed", id=f"k{i}", timeout=30
                )
        deleter = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SLOW_DELETER, store_url,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert deleter.stdout is not None
        for _ in range(2):
            assert await asyncio.wait_for(deleter.stdout.readline(), 30) == b"batch\n"
        deleter.send_signal(signal.SIGKILL)
        await deleter.wait()
        # Marked, part deleted: invisible and refusing work, its data partly there.
        with pytest.raises(tether.NamespaceNotFound):
            await app.client.namespaces.get("doomed")
        assert "doomed" not in [ns.name for ns in await app.client.namespaces.list()]
        with pytest.raises(tether.NamespaceNotFound):
            await app.client.start("keep", "x", namespace="doomed")
        assert any((await _found(store_url, marker.encode())).values())
        await app.client.namespaces.delete("doomed")  # a second delete finishes it
        with pytest.raises(tether.NamespaceNotFound):
            await app.client.namespaces.delete("doomed")
    found = await _gone(store_url, marker.encode())
    assert found and not any(found.values()), found


async def test_a_live_namespace_works_on_while_another_is_deleted(make_app: AppFactory) -> None:
    app = make_app()
    ran: list[str] = []

    @app.workflow
    async def note(ctx: tether.Context, tag: str) -> str:
        ran.append(tag)
        return tag

    async with app:
        for ns in ("doomed", "live"):
            await app.client.namespaces.create(ns)
        for i in range(150):
            await app.client.start("note", "doomed", namespace="doomed", id=f"d{i}")
        # One row per batch: hundreds of transactions, with the live work between them.
        deletion = asyncio.create_task(app.client.namespaces.delete("doomed", batch=1))
        await eventually(lambda: app.store.deleting_namespaces())
        async with app.worker(namespaces=["doomed", "live"]):
            for i in range(3):
                assert await app.client.execute("note", f"live-{i}", namespace="live") == (
                    f"live-{i}"
                )
            assert not deletion.done()
            await asyncio.wait_for(deletion, 60)
        assert ran == ["live-0", "live-1", "live-2"]  # no task of the doomed one ran
        assert await app.store.deleting_namespaces() == []
        assert [ns.name for ns in await app.client.namespaces.list()] == ["default", "live"]
