"""What only the PostgreSQL store has: its LISTEN connection, pool and server errors.

The behaviour every store shares is in the conformance modules next to this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

import tether
from tests.conftest import AppFactory
from tests.support.pg import ADMIN_URL, PgTemplate, database_url
from tether.errors import StoreUnavailable
from tether.store import open_store
from tether.store.postgres import PostgresStore

from .helpers import LEASE, NS, Q, eventually, new_run, start


@pytest.fixture
async def database(pg_template: PgTemplate) -> AsyncIterator[str]:
    name = await pg_template.clone()
    yield name
    await pg_template.drop_database(name)


async def test_open_store_selects_postgres(database: str) -> None:
    store = open_store(database_url(database), pool_size=2)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        assert await store.list_namespaces() == ["default"]
    finally:
        await store.close()


async def test_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:9/nowhere", connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.list_namespaces()


async def test_listener_reconnects_and_wakes_waiters(database: str) -> None:
    store = PostgresStore(database_url(database), poll_interval=30)
    other = PostgresStore(database_url(database))
    await store.open()
    await other.open()
    try:
        listener = store._listener
        assert listener is not None and listener.backend_pid is not None
        old_pid = listener.backend_pid
        waiting = asyncio.ensure_future(store.wait_for_work([NS], [Q], 30))
        await asyncio.sleep(0)
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await admin.close()
        await asyncio.wait_for(waiting, 10)  # woken: notifications may have been missed

        async def reconnected() -> bool:
            pid = listener.backend_pid
            return pid is not None and pid != old_pid

        await eventually(reconnected, timeout=10)
        # Notifications flow again on the new connection.
        waiting = asyncio.ensure_future(store.wait_for_work([NS], [Q], 30))
        await asyncio.sleep(0)
        await start(other)
        await asyncio.wait_for(waiting, 5)
    finally:
        await other.close()
        await store.close()


async def test_pool_is_bounded(database: str) -> None:
    store = PostgresStore(database_url(database), pool_size=2)
    await store.open()
    try:
        await asyncio.gather(*(start(store) for _ in range(20)))
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            count = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
            )
        finally:
            await admin.close()
        assert count <= 4  # the pool, plus the claims connection and the LISTEN one
        tasks = await store.claim_workflow_tasks("w", [NS], [Q], 100, LEASE)
        assert len(tasks) == 20
    finally:
        await store.close()


async def test_store_recovers_when_pooled_connections_are_killed(database: str) -> None:
    store = PostgresStore(database_url(database), pool_size=1)
    await store.open()
    try:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            listener_pid = store._listener.backend_pid if store._listener else None
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> $2",
                database,
                listener_pid,
            )
        finally:
            await admin.close()
        # The pool notices the dead connection (or the first call fails with
        # StoreUnavailable); either way the store serves again without reopening.
        with contextlib.suppress(StoreUnavailable):
            await store.list_namespaces()
        assert await store.list_namespaces() == ["default"]
    finally:
        await store.close()


def _count_reads(store: PostgresStore) -> list[str]:
    """The runs ``store.get_run`` reads from now on (by workflow id, or run id)."""
    reads: list[str] = []
    get_run = store.get_run

    async def counted(namespace: str, workflow_id: str, run_id: str | None = None) -> Any:
        reads.append(workflow_id or str(run_id))
        return await get_run(namespace, workflow_id, run_id)

    store.get_run = counted  # type: ignore[method-assign]
    return reads


def _count_task_reads(store: PostgresStore) -> list[str]:
    """The runs ``store.read_for_task`` reads from now on (by run id)."""
    reads: list[str] = []
    read_for_task = store.read_for_task

    async def counted(namespace: str, run_id: str, after_seq: int) -> Any:
        reads.append(run_id)
        return await read_for_task(namespace, run_id, after_seq)

    store.read_for_task = counted  # type: ignore[method-assign]
    return reads


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_result_awaited_beside_the_worker_is_not_read_back(make_app: AppFactory) -> None:
    """The close a worker commits hands the run to the waiters in its process: the
    result of a run started here needs no read of the run at all (the start's watch
    vouches that it was open until the close came); a run started elsewhere is looked
    at once, before waiting."""
    app = make_app()

    @app.activity
    async def bump(x: int) -> int:
        return x + 1

    @app.workflow
    async def twice(ctx: tether.Context, x: int) -> list[int]:
        y = await ctx.activity(bump, x)
        if y > 10:
            raise ValueError(f"too big: {y}")
        return [x, await ctx.activity(bump, y)]

    async with app, app.worker():
        store = app.client.store
        assert isinstance(store, PostgresStore)
        get_run = store.get_run
        reads = _count_reads(store)
        handle = await app.client.start(twice, 1, id="handed")
        assert handle.run_id is not None
        handed = await store.wait_closed("default", handle.run_id, 30)
        assert reads == []
        assert handed == await get_run("default", "", handle.run_id)  # as a read gives it
        assert await handle.result(timeout=30) == [1, 3]
        assert reads == [handle.run_id], "the watch is taken by the first wait"
        reads.clear()
        early = await app.client.start(twice, 3, id="early")
        early_id = early.run_id
        assert early_id is not None

        async def closed() -> bool:
            return (await get_run("default", "", early_id)).status != tether.RunStatus.RUNNING

        await eventually(closed, timeout=30)
        assert await early.result(timeout=30) == [3, 5]
        assert reads == [], "closed before the wait: the watch kept the close"
        other = await app.client.start(twice, 2, id="other")
        assert other.run_id is not None
        store._wake_everyone()  # as when LISTEN reconnects: closes may have gone unheard
        assert await other.result(timeout=30) == [2, 4]
        assert reads == [other.run_id], "no watch left: a look first"
        failing = await app.client.start(twice, 20, id="fails")
        with pytest.raises(tether.WorkflowFailed) as failed:
            await failing.result(timeout=30)
        assert "too big: 21" in str(failed.value.__cause__)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_watched_run_terminated_wakes_its_wait(make_app: AppFactory) -> None:
    """A wait for a run started here reads nothing before waiting; a terminate (from
    here, or from another process: the same notification) still ends it."""
    app = make_app()

    @app.workflow
    async def forever(ctx: tether.Context) -> None:
        await ctx.wait_signal("never")

    async with app:
        store = app.client.store
        assert isinstance(store, PostgresStore)
        reads = _count_reads(store)
        handle = await app.client.start(forever)
        assert handle.run_id is not None
        waiting = asyncio.ensure_future(store.wait_closed("default", handle.run_id, 30))
        await store.terminate_run("default", handle.run_id, reason="enough", identity="t")
        closed = await asyncio.wait_for(waiting, 10)
        assert closed.status == tether.RunStatus.TERMINATED
        assert closed.failure is not None and "enough" in closed.failure["message"]
        assert reads == []


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_close_in_another_process_reaches_its_waiters_in_the_notification(
    make_app: AppFactory,
) -> None:
    """A client whose runs another process's worker runs gets the close in the close's
    notification: no read of the run (the start's watch vouched that it was open
    until then). A close too big for a notification is read back."""

    def deployment() -> tether.App:
        app = make_app()

        @app.activity
        async def bump(x: int) -> int:
            return x + 1

        @app.workflow
        async def echo(ctx: tether.Context, text: str) -> str:
            await ctx.activity(bump, 1)
            if text == "fail":
                raise ValueError("asked to fail")
            return text

        return app

    workers, clients = deployment(), deployment()  # two stores, two LISTEN connections
    async with workers, workers.worker(), clients:
        store = clients.client.store
        assert isinstance(store, PostgresStore)
        get_run = store.get_run
        reads = _count_reads(store)
        for text in ("small", "fail"):
            reads.clear()
            handle = await clients.client.start("echo", text, id=text)
            assert handle.run_id is not None
            closed = await store.wait_closed("default", handle.run_id, 30)
            assert reads == [], "no look before waiting, no read after the close"
            assert closed == await get_run("default", "", handle.run_id)
        assert closed.status == tether.RunStatus.FAILED and closed.failure is not None
        assert "asked to fail" in closed.failure["message"]
        big = await clients.client.start("echo", "x" * 9000, id="big")
        assert await big.result(timeout=30) == "x" * 9000
        assert reads[-1] == big.run_id, "over 8000 bytes: read back"


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_close_only_its_writer_waits_for_is_not_notified(make_app: AppFactory) -> None:
    """A close whose only waiter is in the process that writes it is handed to that
    waiter and not notified; once a wait in another process has looked at the run, the
    run's close is notified, though it is written the same way."""
    gate = asyncio.Event()

    def deployment() -> tether.App:
        app = make_app()

        @app.activity
        async def through(x: int) -> int:
            await gate.wait()
            return x

        @app.workflow
        async def gated(ctx: tether.Context, x: int) -> int:
            return await ctx.activity(through, x)

        return app

    here, elsewhere = deployment(), deployment()  # two stores, two LISTEN connections
    async with here, here.worker(), elsewhere:
        store, other = here.client.store, elsewhere.client.store
        assert isinstance(store, PostgresStore) and isinstance(other, PostgresStore)
        loop = asyncio.get_running_loop()
        notified: dict[str, asyncio.Future[None]] = {}

        def heard(run_id: str) -> asyncio.Future[None]:
            return notified.setdefault(run_id, loop.create_future())

        listening = await asyncpg.connect(store.url)
        try:
            await listening.add_listener(
                "tether_closed", lambda *args: heard(orjson.loads(args[3])[1]).set_result(None)
            )
            gate.set()
            quiet = await here.client.start("gated", 1)
            assert await quiet.result(timeout=30) == 1
            gate.clear()
            loud = await here.client.start("gated", 2)
            assert loud.run_id is not None
            looked = await other.wait_closed("default", loud.run_id, 0.01)
            assert looked.status == tether.RunStatus.RUNNING
            gate.set()
            assert await loud.result(timeout=30) == 2
            await asyncio.wait_for(heard(loud.run_id), 10)
            # One connection gets notifications in commit order: the first close's
            # would have come before.
            assert quiet.run_id not in notified
            assert (await other.wait_closed("default", loud.run_id, 30)).result == 2
        finally:
            await listening.close()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_claim_brings_a_short_history_with_its_task(make_app: AppFactory) -> None:
    """A worker claiming a run's task (started, or signalled, by another process) gets
    the run's history in the claim when it is short, and reads a long one after it."""

    def deployment() -> tether.App:
        app = make_app()

        @app.workflow
        async def waits(ctx: tether.Context, markers: int) -> str:
            for i in range(markers):
                ctx.side_effect(functools.partial(int, i))
            return str(await ctx.wait_signal("go"))

        return app

    workers, clients = deployment(), deployment()
    # No cache: every task of the worker starts from the history it reads or is sent.
    async with workers, workers.worker(cache_size=0), clients:
        store = workers.store
        assert isinstance(store, PostgresStore)
        reads = _count_task_reads(store)
        for markers, workflow_id in ((3, "short"), (70, "long")):
            handle = await clients.client.start("waits", markers, id=workflow_id)
            await eventually(functools.partial(_has_markers, handle))
            await handle.signal("go", workflow_id)
            assert await handle.result(timeout=30) == workflow_id
        short, long = [
            (await clients.client.get_handle(w).describe()).run_id for w in ("short", "long")
        ]
        assert short not in reads, "both tasks of the short run came with their history"
        assert reads.count(long) == 1, "the long run's history was read after its signal"


async def _has_markers(handle: tether.WorkflowHandle[Any]) -> bool:
    return any(e.type == "MarkerRecorded" for e in await handle.history())


async def test_values_the_server_cannot_take_are_client_errors(database: str) -> None:
    """Below the client's checks (which refuse these first, on both stores), the
    server's own refusals of a value are InvalidArgument, not an outage: a NUL
    character in text, and a value too long for an index entry."""
    store = PostgresStore(database_url(database), pool_size=2)
    await store.open()
    try:
        for value, message in [("a\x00b", "NUL"), ("x" + secrets.token_hex(2000), "too long")]:
            with pytest.raises(tether.InvalidArgument, match=message):
                run = dataclasses.replace(new_run("w"), task_queue=value)
                await store.signal_with_start(run, "go", None)
        assert (await start(store, "after")).workflow_id == "after"
    finally:
        await store.close()
