"""A store that forgets acknowledged commits (PostgreSQL with synchronous_commit off,
or a failover to an asynchronous replica, after a crash) holds a shorter history than
the instance a worker keeps cached. The worker must notice and replay the run from what
the store holds, or the run stalls: open, with no task."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg
import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


async def _forget_after(store_url: str, namespace: str, run_id: str, seq: int) -> None:
    """Make the store hold the run as it was when its history ended at ``seq``, as a
    database that lost the commits after that would: their events are gone and the
    run's last seq is back. (The caller picks a ``seq`` at which the run had no task,
    timer or update row, so nothing else needs putting back.)"""
    if not store_url.startswith("postgres"):
        conn = sqlite3.connect(store_url, timeout=30.0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "DELETE FROM events WHERE namespace = ? AND run_id = ? AND seq > ?",
                (namespace, run_id, seq),
            )
            conn.execute(
                "UPDATE runs SET last_seq = ? WHERE namespace = ? AND run_id = ?",
                (seq, namespace, run_id),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(store_url)
    try:
        async with pg.transaction():
            await pg.execute(
                "DELETE FROM tether.events WHERE namespace = $1 AND run_id = $2 AND seq > $3",
                namespace,
                run_id,
                seq,
            )
            await pg.execute(
                "UPDATE tether.runs SET last_seq = $3 WHERE namespace = $1 AND run_id = $2",
                namespace,
                run_id,
                seq,
            )
    finally:
        await pg.close()


async def test_a_run_whose_last_commits_were_lost_is_replayed_and_goes_on(
    make_app: AppFactory, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    calls: list[int] = []

    @app.activity
    async def tally() -> int:
        calls.append(1)
        return len(calls)

    @app.workflow
    async def approve(ctx: tether.Context) -> list[Any]:
        first = await ctx.wait_signal("step")
        count = await ctx.activity(tally)
        second = await ctx.wait_signal("step")
        return [first, count, second]

    async with app, app.worker() as worker:
        handle = await app.client.start(approve, id="forgetful")
        run_id = handle.run_id
        assert run_id is not None

        async def cached_at_the_end(kind: str) -> int | None:
            """The cached instance's last seq, once it has seen all the run's history
            and the history has an event of ``kind``."""
            history = await handle.history()
            instance = worker.cache.get(run_id)
            if instance is None or run_id in worker._busy:  # not while a commit is out
                return None
            seen = instance.last_seq == history[-1].seq
            return instance.last_seq if seen and history[-1].type == kind else None

        # The first workflow task has run: the run waits for a signal with no task.
        assert await eventually(lambda: cached_at_the_end(EventType.WORKFLOW_STARTED)) == 1
        await handle.signal("step", "a")
        cached = await eventually(lambda: cached_at_the_end(EventType.ACTIVITY_COMPLETED))
        assert calls == [1]

        # The store forgets everything after the start: the signal, the activity and
        # its result. The worker still holds the instance, which saw all of it.
        await _forget_after(store_url, "default", run_id, 1)
        assert [e.type for e in await handle.history()] == [EventType.WORKFLOW_STARTED]

        caplog.set_level(logging.WARNING, logger="tether.worker")
        # New input: the store appends it after what it holds, still short of what the
        # cached instance saw, so reading past the instance finds nothing new.
        await handle.signal("step", "b")
        await handle.signal("step", "c")
        # Without the guard the run stalls here; with it, it replays from the store: the
        # activity runs again (at least once) and the run goes on.
        assert await handle.result(timeout=15) == ["b", 2, "c"]
        history = await handle.history()
    assert calls == [1, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(run_id in w and f"up to event {cached}" in w for w in warnings), warnings
    signals = [e.attrs["payload"] for e in history if e.type == EventType.SIGNAL_RECEIVED]
    assert signals == ["b", "c"]
    tether.testing.replay(approve, history)
