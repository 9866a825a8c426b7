"""Workflows end to end on every store: steps, fan-out, timers, payloads, history."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pydantic
import pytest

import tether
from tests.conftest import AppFactory
from tether.history import EventType
from tether.store import ActivityTask, WorkflowTask
from tether.worker.pacing import TurnShare


class Order(pydantic.BaseModel):
    sku: str
    qty: int


class Quote(pydantic.BaseModel):
    sku: str
    total: float


async def test_sequential_steps_and_history(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity
    async def add(x: int, y: int) -> int:
        return x + y

    @app.workflow
    async def chain(ctx: tether.Context, x: int) -> int:
        for i in range(3):
            x = await ctx.activity(add, x, i)
        return x

    async with app, app.worker():
        handle = await app.client.start(chain, 10, id="chain-1")
        assert await handle.result(timeout=30) == 13
        run = await handle.describe()
        assert run.status == tether.RunStatus.COMPLETED and run.result == 13
        types = [e.type for e in await handle.history()]
    assert types == [
        EventType.WORKFLOW_STARTED,
        *[EventType.ACTIVITY_SCHEDULED, EventType.ACTIVITY_STARTED, EventType.ACTIVITY_COMPLETED]
        * 3,
        EventType.WORKFLOW_COMPLETED,
    ]


async def test_fan_out_gathers_in_order(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity
    async def square(x: int) -> int:
        await asyncio.sleep(0.001 * (x % 3))
        return x * x

    @app.workflow
    async def fan(ctx: tether.Context, n: int) -> list[int]:
        return await ctx.gather(*(ctx.activity(square, i) for i in range(n)))

    async with app, app.worker():
        assert await app.client.execute(fan, 50, timeout=30) == [i * i for i in range(50)]


async def test_sync_activity_runs_in_a_thread(make_app: AppFactory) -> None:
    app = make_app()
    threads: list[str] = []

    @app.activity
    def blocking(x: int) -> int:
        threads.append(threading.current_thread().name)
        return x * 2

    @app.workflow
    async def wf(ctx: tether.Context, x: int) -> int:
        return await ctx.activity(blocking, x)

    async with app, app.worker():
        assert await app.client.execute(wf, 21, timeout=30) == 42
    assert threads and threads[0] != threading.main_thread().name


async def test_durable_sleep_waits_its_time(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def napper(ctx: tether.Context) -> float:
        before = ctx.now()
        await ctx.sleep(timedelta(milliseconds=300))
        return (ctx.now() - before).total_seconds()

    async with app, app.worker():
        handle = await app.client.start(napper)
        slept = await handle.result(timeout=30)
        history = await handle.history()
    assert slept >= 0.3
    started = next(e for e in history if e.type == EventType.TIMER_STARTED)
    fired = next(e for e in history if e.type == EventType.TIMER_FIRED)
    assert fired.ts >= started.attrs["fire_at"]


async def test_asyncio_wait_for_timeout_is_a_durable_timer(make_app: AppFactory) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.activity
    async def slow() -> str:
        await gate.wait()
        return "late"

    @app.workflow
    async def impatient(ctx: tether.Context) -> str:
        try:
            return await ctx.wait_for(ctx.activity(slow), timeout=0.2)
        except TimeoutError:
            return "gave up"

    async with app, app.worker():
        handle = await app.client.start(impatient)
        assert await handle.result(timeout=30) == "gave up"
        gate.set()
        types = {e.type for e in await handle.history()}
    assert EventType.TIMER_FIRED in types


async def test_pydantic_models_cross_the_durable_boundary(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity
    async def price(order: Order) -> Quote:
        assert isinstance(order, Order)
        return Quote(sku=order.sku, total=order.qty * 2.5)

    @app.workflow
    async def checkout(ctx: tether.Context, order: Order) -> Quote:
        quote = await ctx.activity(price, order)
        assert isinstance(quote, Quote)
        return quote

    async with app, app.worker():
        quote = await app.client.execute(checkout, Order(sku="a1", qty=4), timeout=30)
    assert quote == Quote(sku="a1", total=10.0)


async def test_deterministic_values_and_side_effects(make_app: AppFactory) -> None:
    app = make_app()
    calls: list[int] = []

    @app.activity
    async def noop() -> None:
        return None

    def roll() -> int:
        calls.append(1)
        return 4

    @app.workflow
    async def values(ctx: tether.Context) -> list[object]:
        first = [ctx.random(), str(ctx.uuid()), ctx.side_effect(roll)]
        await ctx.activity(noop)
        return first

    # A cache of size 0 forces a full replay at every step, so replay must give back
    # the same random numbers, ids and recorded side effect (run once).
    async with app, app.worker(cache_size=0):
        handle = await app.client.start(values)
        result = await handle.result(timeout=30)
        history = await handle.history()
    assert result[2] == 4 and calls == [1]
    markers = [e for e in history if e.type == EventType.MARKER_RECORDED]
    assert [m.attrs["value"] for m in markers] == [4]


async def test_many_runs_and_listing(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity
    async def one() -> int:
        return 1

    @app.workflow
    async def unit(ctx: tether.Context) -> int:
        return await ctx.activity(one)

    async with app, app.worker():
        handles = await asyncio.gather(*(app.client.start(unit, id=f"u-{i}") for i in range(30)))
        assert await asyncio.gather(*(h.result(timeout=30) for h in handles)) == [1] * 30
        page = await app.client.list(limit=20)
        rest = await app.client.list(limit=20, cursor=page.next_cursor)
        done = await app.client.list(status="completed", workflow_type="unit", limit=100)
    ids = [r.workflow_id for r in page.runs + rest.runs]
    assert len(ids) == 30 == len(set(ids)) and rest.next_cursor is None
    assert len(done.runs) == 30


async def test_terminate_records_who_and_why(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def forever(ctx: tether.Context) -> None:
        await ctx.sleep(3600)

    async with app, app.worker():
        handle = await app.client.start(forever, id="stuck")
        run = await handle.terminate("operator says so", identity="alice")
        assert run.status == tether.RunStatus.TERMINATED
        try:
            await handle.result(timeout=5)
        except tether.WorkflowFailed as exc:
            assert isinstance(exc.__cause__, tether.TerminatedFailure)
        else:
            raise AssertionError("a terminated run has no result")
        last = (await handle.history())[-1]
    assert last.type == EventType.WORKFLOW_TERMINATED
    assert last.attrs == {"reason": "operator says so", "identity": "alice"}


async def test_workflow_id_is_unique_among_open_runs(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def quick(ctx: tether.Context, x: int) -> int:
        return x

    async with app, app.worker():
        first = await app.client.start(quick, 1, id="same")
        assert await first.result(timeout=30) == 1
        # Closed: the id may be used again, and the handle follows the newest run.
        second = await app.client.start(quick, 2, id="same")
        assert await second.result(timeout=30) == 2
        assert await app.client.get_handle("same").result() == 2
        assert await app.client.get_handle("same", first.run_id).result() == 1


async def test_workflow_id_reuse_and_conflict_policies(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def maybe(ctx: tether.Context, fail: bool) -> str:
        if fail:
            raise tether.ApplicationError("no")
        await ctx.wait_signal("finish")  # open until the test says so
        return "ok"

    async with app, app.worker():
        first = await app.client.start(maybe, False, id="job")
        # An open run holds the id: fail, or hand back the open run.
        with pytest.raises(tether.WorkflowAlreadyStarted):
            await app.client.start(maybe, False, id="job")
        same = await app.client.start(maybe, False, id="job", id_conflict="use_existing")
        assert same.run_id == first.run_id
        await first.signal("finish")
        assert await first.result(timeout=30) == "ok"
        # Closed and completed: reject and allow_failed_only refuse, allow starts anew.
        for policy in ("reject", "allow_failed_only"):
            with pytest.raises(tether.WorkflowAlreadyStarted, match=policy):
                await app.client.start(maybe, True, id="job", id_reuse=policy)  # type: ignore[arg-type]
        failing = await app.client.start(maybe, True, id="job")
        with pytest.raises(tether.WorkflowFailed):
            await failing.result(timeout=30)
        # The last run failed: allow_failed_only lets the id be used again.
        retry = await app.client.start(maybe, False, id="job", id_reuse="allow_failed_only")
        await retry.signal("finish")
        assert await retry.result(timeout=30) == "ok"
        with pytest.raises(tether.InvalidArgument, match="id_reuse"):
            await app.client.start(maybe, False, id="x", id_reuse="sometimes")  # type: ignore[arg-type]


def with_one_step(app: tether.App) -> Callable[..., Awaitable[int]]:
    """Register a one-activity workflow (x -> x + 1) on ``app``; return it."""

    @app.activity
    async def bump(x: int) -> int:
        return x + 1

    @app.workflow
    async def one_step(ctx: tether.Context, x: int) -> int:
        return await ctx.activity(bump, x)

    return one_step


@pytest.mark.parametrize("fair", [True, False])
async def test_a_full_worker_still_takes_the_first_step_of_a_quieter_namespace(
    make_app: AppFactory, fair: bool
) -> None:
    """Tenant "loud" holds the worker's only activity slot and the pacer leaves no
    room; with fair scheduling, tenant "quiet", holding fewer places here, still gets
    an eager start, and its activity is leased here in that start's write."""
    app = make_app()
    release = asyncio.Event()
    holding = asyncio.Event()

    @app.activity
    async def hold() -> None:
        holding.set()
        await release.wait()

    @app.workflow
    async def loud(ctx: tether.Context) -> None:
        await ctx.activity(hold)

    one_step = with_one_step(app)

    async with app:
        for name in ("loud", "quiet"):
            await app.client.namespaces.create(name)
        async with app.worker(namespaces=["loud", "quiet"], max_activities=1, fair=fair) as worker:
            flood = await app.client.start(loud, namespace="loud")
            await holding.wait()
            assert worker.pacer is not None
            worker.pacer.room = lambda: 0  # type: ignore[method-assign]  # as under a flood
            eager = worker.eager_starts
            handle = await app.client.start(one_step, 1, namespace="quiet")
            if fair:
                assert worker.eager_starts == eager + 1
                assert await handle.result(timeout=30) == 2
            else:
                assert worker.eager_starts == eager
                assert (await handle.describe()).status == tether.RunStatus.RUNNING
                await handle.terminate("no room here")
            release.set()
            await flood.result(timeout=30)


async def test_places_held_for_a_claim_out_do_not_keep_a_quiet_namespace_waiting(
    make_app: AppFactory,
) -> None:
    """Between a flood's claims, the places held for the claim out are all the worker
    holds, and they may fill it: a namespace holding nothing still starts eagerly."""
    app = make_app()
    one_step = with_one_step(app)
    async with app:
        for name in ("loud", "quiet"):
            await app.client.namespaces.create(name)
        worker = app.worker(namespaces=["loud", "quiet"])
        claiming, release = asyncio.Event(), asyncio.Event()
        claim = worker.scheduler.claim_workflow_tasks

        async def held_claim(limit: int, lease: float) -> list[WorkflowTask]:
            claiming.set()
            await release.wait()
            return await claim(limit, lease)

        worker.scheduler.claim_workflow_tasks = held_claim  # type: ignore[method-assign]
        async with worker:
            await claiming.wait()  # every workflow slot is held for this claim
            handle = await app.client.start(one_step, 1, namespace="quiet")
            assert worker.eager_starts == 1
            assert await handle.result(timeout=30) == 2
            release.set()


async def test_a_run_started_beside_a_worker_starts_eagerly(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def quick(ctx: tether.Context, x: int) -> int:
        return x + 1

    async with app, app.worker() as worker:
        handle = await app.client.start(quick, 1)
        # This worker ran the first workflow task before the start was stored, and
        # the start's write recorded its outcome: the run is complete already.
        assert worker.eager_starts == 1
        assert (await handle.describe()).status == tether.RunStatus.COMPLETED
        assert [e.type for e in await handle.history()] == ["WorkflowStarted", "WorkflowCompleted"]
        assert await handle.result(timeout=30) == 2
        elsewhere = await app.client.start(quick, 2, task_queue="elsewhere")
        assert worker.eager_starts == 1, "a run on a queue it does not serve is not offered"
        assert (await elsewhere.describe()).status == tether.RunStatus.RUNNING
        await elsewhere.terminate("not served here")
        assert not worker.offer("default", "elsewhere", "quick")
        assert not worker.offer("default", "default", "unknown")
    assert not worker.offer("default", "default", "quick")  # stopped


async def test_a_burst_of_starts_runs_eagerly_past_the_slots_of_a_one_namespace_worker(
    make_app: AppFactory,
) -> None:
    """Ten starts at once beside a worker of one workflow slot and one activity slot:
    each runs its first task here (the slot is held only while the start is
    written); the activities past the one slot wait in the queue and all runs end.
    A worker serving two namespaces keeps to its slot: one start runs here (two if
    its poller's claim was out, whose place counts as another tenant's); so do runs
    with a priority."""
    app = make_app()
    one_step = with_one_step(app)
    async with app:
        await app.client.namespaces.create("other")
        async with app.worker(max_workflow_tasks=1, max_activities=1) as worker:
            handles = await asyncio.gather(*(app.client.start(one_step, i) for i in range(10)))
            assert worker.eager_starts == 10
            assert [await h.result(timeout=30) for h in handles] == list(range(1, 11))
            urgent = tether.Priority(level=0)
            handles = await asyncio.gather(
                *(app.client.start(one_step, i, priority=urgent) for i in range(10))
            )
            assert worker.eager_starts <= 12
            assert [await h.result(timeout=30) for h in handles] == list(range(1, 11))
        async with app.worker(
            namespaces=["default", "other"], max_workflow_tasks=1, max_activities=1
        ) as worker:
            handles = await asyncio.gather(*(app.client.start(one_step, i) for i in range(10)))
            assert worker.eager_starts <= 2
            assert [await h.result(timeout=30) for h in handles] == list(range(1, 11))


async def test_a_burst_of_eager_starts_leaves_the_loop_turns_between_its_shares(
    make_app: AppFactory,
) -> None:
    """Starts gathered at once run their first tasks a share at a time (four here), so
    the loop takes up the writes of the first ones (and anything else) meanwhile; all
    run here, and all end."""
    app = make_app()
    one_step = with_one_step(app)
    async with app, app.worker() as worker:
        worker._eager_turns = TurnShare(4)  # type: ignore[attr-defined]
        done = asyncio.Event()
        seen: list[int] = []

        async def tick() -> None:
            while not done.is_set():
                await asyncio.sleep(0)
                seen.append(worker.eager_starts)

        ticker = asyncio.ensure_future(tick())
        handles = await asyncio.gather(*(app.client.start(one_step, i) for i in range(20)))
        done.set()
        await ticker
        assert worker.eager_starts == 20
        steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
        # At most a share a turn, give or take where the ticker falls in each turn.
        assert max(steps) <= 8 and sum(1 for s in steps if s) >= 3, seen
        assert [await h.result(timeout=30) for h in handles] == list(range(1, 21))


class FirstShare(TurnShare):
    """A share that says when its first caller went on."""

    def __init__(self, per_turn: int) -> None:
        super().__init__(per_turn)
        self.went = asyncio.Event()

    async def take(self) -> None:
        await super().take()
        self.went.set()


async def test_eager_starts_still_waiting_for_their_turn_when_the_worker_stops_are_stored(
    make_app: AppFactory,
) -> None:
    """Those whose turn comes once the worker is stopping do not run their first task on
    it: they are stored as plain starts (only their WorkflowStarted event), and another
    worker runs them."""
    app = make_app()
    one_step = with_one_step(app)
    async with app:
        worker = app.worker()
        await worker.start()
        share = worker._eager_turns = FirstShare(4)  # type: ignore[attr-defined]
        starts = asyncio.gather(*(app.client.start(one_step, i) for i in range(20)))
        await share.went.wait()
        stopping = asyncio.ensure_future(worker.stop())
        handles = await starts
        await stopping
        plain = [h for h in handles if len(await h.history()) == 1]
        assert 0 < worker.eager_starts < 20 and len(plain) == 20 - worker.eager_starts
        async with app.worker():
            assert [await h.result(timeout=30) for h in handles] == list(range(1, 21))


async def test_an_activity_hands_its_slot_to_the_next_step_of_its_run(
    make_app: AppFactory,
) -> None:
    """An activity that ends by advancing its run frees its slot for the activity the
    advance schedules: with one slot, every step of a run is leased to this worker by
    the write that schedules it, none waits in the queue for a claim."""
    app = make_app()

    @app.activity
    async def inc(x: int) -> int:
        return x + 1

    @app.workflow
    async def three(ctx: tether.Context, x: int) -> int:
        for _ in range(3):
            x = await ctx.activity(inc, x)
        return x

    async with app:
        worker = app.worker(max_activities=1)
        claimed: list[ActivityTask] = []
        polled = asyncio.Event()
        claim = worker.scheduler.claim_activity_tasks

        async def counted(limit: int, lease: float) -> list[ActivityTask]:
            tasks = await claim(limit, lease)
            claimed.extend(tasks)
            polled.set()
            return tasks

        worker.scheduler.claim_activity_tasks = counted  # type: ignore[method-assign]
        async with worker:
            # A claim out holds the free slots; start once the first one is back.
            await asyncio.wait_for(polled.wait(), 30)
            handle = await app.client.start(three, 1)
            assert await handle.result(timeout=30) == 4
        assert worker.eager_starts == 1
        assert claimed == []


async def test_a_result_awaited_beside_its_start_is_not_read_first(make_app: AppFactory) -> None:
    """``execute`` waits for news of a run whose first task ran here before reading it:
    nothing else can have closed it yet. A run its first task closed is read at once."""
    app = make_app()
    one_step = with_one_step(app)

    @app.workflow
    async def at_once(ctx: tether.Context, x: int) -> int:
        return x + 1

    async with app, app.worker() as worker:
        store = app.client.store
        reads: list[str] = []
        get_run = store.get_run

        async def counted(namespace: str, workflow_id: str, run_id: str | None = None) -> Any:
            reads.append(run_id or workflow_id)
            return await get_run(namespace, workflow_id, run_id)

        store.get_run = counted  # type: ignore[method-assign]
        assert await asyncio.wait_for(app.client.execute(one_step, 1), 10) == 2
        assert worker.eager_starts == 1
        # PostgreSQL hands the close written here to the waiter; SQLite reads it once.
        assert len(reads) == (0 if store.url.startswith("postgres") else 1), reads
        # Closed by the start's own write: read, not waited for (that close's wake-up
        # may have come before the wait began).
        assert await asyncio.wait_for(app.client.execute(at_once, 1), 10) == 2
        assert worker.eager_starts == 2
