"""PostgreSQL wakes one idle worker process per piece of work, not all of them
(migration 0026). Each store here is what one process has: its own LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import tether
from tests.conftest import AppFactory
from tests.support.pg import database_url
from tether.store import Store
from tether.store.postgres import PostgresStore
from tether.store.postgres import queries as q

from .conftest import Harness
from .helpers import NS, Q, eventually, start

ON_POSTGRES = pytest.mark.parametrize("harness", ["postgres"], indirect=True)


async def _idle(store: Store, worker: str) -> asyncio.Future[None]:
    """Wait for work as a worker with free slots does: listen, then say so in the look
    at the next due task."""
    woken = asyncio.ensure_future(store.wait_for_work([NS], [Q], 60))
    await store.next_due([NS], [Q], idle=worker)
    return woken


def _hears(store: Store, marker: str) -> asyncio.Event:
    """An event set once ``store`` has taken in a work notification naming ``marker``
    as its queue (notifications reach a listener in commit order)."""
    assert isinstance(store, PostgresStore) and store._listener is not None
    heard = asyncio.Event()
    channels = store._listener._channels
    on_work = channels[q.WORK_CHANNEL]

    def traced(channel: str, payload: str) -> None:
        on_work(channel, payload)
        if marker in payload:
            heard.set()

    channels[q.WORK_CHANNEL] = traced
    return heard


@contextlib.asynccontextmanager
async def _registry(app: tether.App) -> AsyncIterator[Callable[..., Awaitable[bool]]]:
    """A probe of the idle registrations on ``app``'s database: ``registered(n,
    worker=None, since=0.0)`` is whether ``n`` workers (or this one) serving the queue
    "act" have registered since then."""
    store = app.client.store
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.url)

    async def registered(n: int = 1, *, worker: str | None = None, since: float = 0.0) -> bool:
        found = await conn.fetchval(
            "SELECT count(*) FROM tether.idle_listeners WHERE 'act' = ANY (queues)"
            " AND ($1::text IS NULL OR worker = $1) AND since > $2",
            worker,
            since,
        )
        return bool(found == n)

    try:
        yield registered
    finally:
        await conn.close()


async def _notify(harness: Harness, payload: str) -> None:
    conn = await asyncpg.connect(database_url(harness.location))
    try:
        await conn.execute("SELECT pg_notify('tether_work', $1)", payload)
    finally:
        await conn.close()


@ON_POSTGRES
async def test_work_wakes_the_longest_idle_process_only(harness: Harness) -> None:
    first, second, client = await harness.open(), await harness.open(), await harness.open()
    marker = _hears(second, "marker")
    woken_first = await _idle(first, "w1")
    woken_second = await _idle(second, "w2")
    await start(client)  # a workflow task on Q
    await asyncio.wait_for(woken_first, 10)
    # The second has heard everything sent before the marker: not woken by the start.
    await _notify(harness, '["default", "marker", null]')
    await asyncio.wait_for(marker.wait(), 10)
    assert not woken_second.done()
    # The first was woken once; it is not idle any more: the next work goes to the second.
    await start(client)
    await asyncio.wait_for(woken_second, 10)


@ON_POSTGRES
async def test_a_process_with_no_waiting_worker_passes_the_work_on(harness: Harness) -> None:
    """A process whose worker said it was idle, then stopped waiting (woke for another
    reason, filled its slots, or stopped), hands the notification to the next idle one."""
    stale, idle, client = await harness.open(), await harness.open(), await harness.open()
    await stale.next_due([NS], [Q], idle="stopped")  # registered; nobody waits there
    woken = await _idle(idle, "w")
    await start(client)
    await asyncio.wait_for(woken, 10)


@ON_POSTGRES
async def test_an_idle_registration_of_an_ended_connection_is_skipped(harness: Harness) -> None:
    idle, client = await harness.open(), await harness.open()
    gone = await asyncpg.connect(database_url(harness.location))
    pid = gone.get_server_pid()
    await gone.close()  # a crashed process: its LISTEN connection ended
    conn = await asyncpg.connect(database_url(harness.location))
    try:
        await conn.execute(
            "INSERT INTO tether.idle_listeners VALUES ($1, 'crashed', $2, $3, tether.epoch() - 1)",
            pid,
            [NS],
            [Q],
        )
        woken = await _idle(idle, "w")  # registered after the dead one: younger
        await start(client)
        await asyncio.wait_for(woken, 10)
        # The dead row was not taken (it will age out); the live one was.
        rows = await conn.fetch("SELECT listener FROM tether.idle_listeners")
        assert [r["listener"] for r in rows] == [pid]
    finally:
        await conn.close()


@ON_POSTGRES
async def test_with_no_idle_worker_every_listener_hears_of_work(harness: Harness) -> None:
    """A worker between a claim that found nothing and its look is not registered yet:
    work made ready then is announced to every process, as before 0026."""
    first, second, client = await harness.open(), await harness.open(), await harness.open()
    woken = [asyncio.ensure_future(s.wait_for_work([NS], [Q], 60)) for s in (first, second)]
    await start(client)
    await asyncio.wait_for(asyncio.gather(*woken), 10)


@ON_POSTGRES
async def test_announced_work_wakes_one_more_idle_process(harness: Harness) -> None:
    first, second, client = await harness.open(), await harness.open(), await harness.open()
    woken_first = await _idle(first, "w1")
    woken_second = await _idle(second, "w2")
    await client.announce_work([(NS, Q)])
    await asyncio.wait_for(woken_first, 10)
    await client.announce_work([(NS, Q)])
    await asyncio.wait_for(woken_second, 10)
    await client.announce_work([(NS, Q)])  # nobody idle: nothing sent, nothing fails


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_full_claim_spreads_a_burst_over_idle_workers(make_app: AppFactory) -> None:
    """Two activities scheduled in one commit make one notification; the worker it
    wakes has one slot, claims one, and wakes the other idle worker for the rest. The
    two meet (each waits for the other to start): with the second worker left asleep
    until its 5 s look, the run would not end within 4 s."""
    met: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}

    def deployment() -> tether.App:
        app = make_app()

        @app.activity
        async def meet(me: str, other: str) -> str:
            met[me].set()
            await met[other].wait()
            return me

        @app.workflow
        async def pair(ctx: tether.Context) -> list[Any]:
            return list(
                await ctx.gather(
                    ctx.activity(meet, "a", "b", task_queue="act"),
                    ctx.activity(meet, "b", "a", task_queue="act"),
                )
            )

        return app

    flows, one, two = deployment(), deployment(), deployment()
    async with (
        flows,
        one,
        two,
        one.worker(task_queues=["act"], max_activities=1),
        two.worker(task_queues=["act"], max_activities=1),
        flows.worker(task_queues=["default"]),
        _registry(flows) as registered,
    ):
        # Both activity workers have looked and wait idle: the activities'
        # notification is handed to one of them only.
        await eventually(lambda: registered(2))
        assert await flows.client.execute("pair", timeout=4) == ["a", "b"]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_work_handed_to_a_worker_without_room_for_it_goes_on(make_app: AppFactory) -> None:
    """The longest-idle worker has a free workflow slot but its one activity slot is
    taken: an activity handed to it goes on to the next idle worker at once (not after
    that worker's next look, 5 s later)."""
    holding, release = asyncio.Event(), asyncio.Event()

    def deployment() -> tether.App:
        app = make_app()

        @app.activity
        async def hold() -> None:
            holding.set()
            await release.wait()

        @app.activity
        async def quick() -> str:
            return "done"

        @app.workflow
        async def held(ctx: tether.Context) -> None:
            await ctx.activity(hold, task_queue="act")

        @app.workflow
        async def one_more(ctx: tether.Context) -> str:
            return str(await ctx.activity(quick, task_queue="act"))

        return app

    flows, first, second = deployment(), deployment(), deployment()
    async with (
        flows,
        first,
        second,
        flows.worker(task_queues=["default"]),
        first.worker(task_queues=["act"], max_activities=1, identity="first"),
        _registry(flows) as registered,
    ):
        blocked = await flows.client.start("held")
        await holding.wait()
        since = time.time()
        # Its activity slot is taken, its workflow slots are free: it waits idle.
        await eventually(lambda: registered(worker="first", since=since))
        async with second.worker(task_queues=["act"], max_activities=1, identity="second"):
            await eventually(lambda: registered(worker="second", since=since))
            assert await flows.client.execute("one_more", timeout=4) == "done"
        release.set()
        await blocked.result(timeout=30)
