"""A claim lost in a crash does not hand out its fencing token again.

A claim commits without waiting for its WAL flush (migration 0037), so a crash right
after it can lose it though the worker was told it holds the task. The next claim must
then get another token: with the old ``token + 1`` it got the lost claim's, and the
first worker's late writes passed for the second's.

The loss is made certain, not raced for: on a private server (never the shared one) the
processes that could write the claim's WAL to disk meanwhile (the WAL writer, the
background writer, the checkpointer, the autovacuum launcher) are stopped before the
claim and killed after it; the postmaster then ends every backend, resets shared
memory, where the claim's WAL still was, and recovers from what is on disk.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import asyncpg
import pytest

from tests.store.helpers import LEASE, NS, Q, start
from tests.support.pgserver import PgServer
from tether.errors import LeaseLost
from tether.store.postgres import PostgresStore

from .cluster import eventually

pytestmark = pytest.mark.scaleout

WAL_WRITERS = ("walwriter", "background writer", "checkpointer", "autovacuum launcher")


async def _stop_wal_writers(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = ANY($1::text[])",
            list(WAL_WRITERS),
        )
    finally:
        await conn.close()
    pids = [row["pid"] for row in rows]
    assert len(pids) == len(WAL_WRITERS), rows
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


async def _accepting(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def test_a_claim_lost_in_a_crash_leaves_its_token_unused(
    pg_server_factory: Callable[..., PgServer],
) -> None:
    server = pg_server_factory()
    url = server.url()
    first = PostgresStore(url)
    await first.open()
    run = await start(first)
    stopped = await _stop_wal_writers(url)
    try:
        (lost,) = await first.claim_workflow_tasks("worker-a", [NS], [Q], 1, LEASE)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGKILL)
    await first.close()
    await eventually(lambda: _accepting(url), timeout=60, what="the server back after the crash")

    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT owner, token FROM tether.tasks WHERE id = $1", lost.task_id
        )
    finally:
        await conn.close()
    # The premise: the crash took the acknowledged claim (the task is ready again).
    assert row is not None and row["owner"] is None and row["token"] < lost.token, row

    second = PostgresStore(url)
    await second.open()
    try:
        (again,) = await second.claim_workflow_tasks("worker-b", [NS], [Q], 1, LEASE)
        assert (again.run_id, again.task_id) == (run.run_id, lost.task_id)
        assert again.token > lost.token
        # The first worker, back after the crash, writes under its lost claim: refused.
        with pytest.raises(LeaseLost):
            await second.release_workflow_task(lost, delay=0.0, error="late")
        await second.release_workflow_task(again, delay=0.0, error="handed back")
    finally:
        await second.close()
