"""The SQLite store's group commit (``store/sqlite/writer.py``): how it waits for the
file's write lock held by another process, and how it shares a group between
namespaces. Specific to SQLite: PostgreSQL has no file-wide write lock."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tether.store.sqlite import SqliteStore
from tether.store.sqlite.writer import MAX_GROUP

from .helpers import NS, start


async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        writing = asyncio.ensure_future(start(store, "waits"))
        ticks = 0
        while ticks < 20:  # the event loop keeps turning while the write waits
            await asyncio.sleep(0.001)
            ticks += 1
        assert not writing.done()
        other.execute("COMMIT")
        other.close()
        run = await asyncio.wait_for(writing, 5)
        assert (await store.get_run(NS, "waits")).run_id == run.run_id
    finally:
        await store.close()


async def test_a_namespace_with_a_backlog_does_not_hold_back_another(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        await store.ensure_namespace("a")
        await store.ensure_namespace("b")
        writer = store._writer
        assert writer is not None
        order: list[str] = []

        def op(name: str) -> object:
            def run(conn: sqlite3.Connection) -> None:
                order.append(name)

            return run

        flood = [writer.submit(op(f"a{i}"), "a") for i in range(3 * MAX_GROUP)]
        await writer.submit(op("b"), "b")
        # b's one write went in the first group, not behind a's 192.
        assert order.index("b") < MAX_GROUP
        await asyncio.gather(*flood)
        assert [n for n in order if n != "b"] == [f"a{i}" for i in range(3 * MAX_GROUP)]
    finally:
        await store.close()
