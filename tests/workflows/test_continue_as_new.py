"""Continue-as-new end to end on every store: one atomic hand-over to a new run of the
same workflow id, signals carried over, results followed along the chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_a_counter_continues_as_new_and_the_result_follows_the_chain(
    make_app: AppFactory, cache_size: int
) -> None:
    app = make_app()

    @app.activity
    async def add(total: int, n: int) -> int:
        return total + n

    @app.workflow
    async def counter(ctx: tether.Context, total: int, left: int) -> int:
        total = await ctx.activity(add, total, left)
        if left > 1:
            ctx.continue_as_new(total, left - 1)
        return total

    async with app, app.worker(cache_size=cache_size):
        handle = await app.client.start(counter, 0, 4, id="counter")
        assert await handle.result(timeout=30) == 4 + 3 + 2 + 1
        runs = (await app.client.list()).runs
        assert sorted(r.status for r in runs) == ["completed"] + ["continued_as_new"] * 3
        assert len({r.workflow_id for r in runs}) == 1
        first = await app.client.store.read_history("default", handle.run_id or "")
        latest = await app.client.get_handle("counter").describe()
    assert first[-1].type == EventType.WORKFLOW_CONTINUED_AS_NEW
    assert first[-1].attrs["args"] == [4, 3]
    assert latest.status == "completed" and latest.run_id != handle.run_id
    tether.testing.replay(counter, first)


async def test_unconsumed_signals_reach_the_new_run_in_order(make_app: AppFactory) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.activity
    async def wait_gate() -> None:
        await gate.wait()

    @app.workflow
    async def inbox(ctx: tether.Context, seen: list[Any], generation: int) -> list[Any]:
        if generation == 0:
            seen.append(await ctx.wait_signal("msg"))
            await ctx.activity(wait_gate)  # more signals arrive while the run is here
            ctx.continue_as_new(seen, 1)
        while len(seen) < 4:
            seen.append(await ctx.wait_signal("msg"))
        return seen

    async with app, app.worker():
        handle = await app.client.start(inbox, [], 0, id="inbox")
        await handle.signal("msg", 1)

        async def first_taken() -> bool:
            history = await app.client.store.read_history("default", handle.run_id or "")
            return any(e.type == EventType.ACTIVITY_SCHEDULED for e in history)

        await eventually(first_taken)
        for i in (2, 3, 4):
            await handle.signal("msg", i)
        gate.set()
        assert await handle.result(timeout=30) == [1, 2, 3, 4]
        new_run = await app.client.get_handle("inbox").describe()
        history = await app.client.get_handle("inbox").history()
    assert new_run.run_id != handle.run_id
    assert [e.type for e in history[:4]] == [EventType.WORKFLOW_STARTED] + [
        EventType.SIGNAL_RECEIVED
    ] * 3


async def test_should_continue_as_new_turns_true_past_the_limit(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def long_lived(ctx: tether.Context, runs: int, steps: int) -> list[int]:
        while not ctx.should_continue_as_new:
            await ctx.sleep(0.001)
            steps += 1
        if runs < 2:
            ctx.continue_as_new(runs + 1, steps)
        return [runs, steps, ctx.history_length]

    async with app, app.worker(continue_as_new_after=10):
        handle = await app.client.start(long_lived, 0, 0, id="long")
        runs, steps, length = await handle.result(timeout=30)
        page = await app.client.list()
    assert runs == 2 and length >= 10
    assert steps >= 9  # each run took a few timers before it was told to move on
    assert len(page.runs) == 3
    assert max(r.history_length for r in page.runs) < 20


async def test_signal_and_cancel_through_a_start_handle_reach_the_latest_run(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def relay(ctx: tether.Context, generation: int) -> str:
        if generation == 0:
            ctx.continue_as_new(1)
        return str(await ctx.wait_signal("go"))

    async with app, app.worker():
        handle = await app.client.start(relay, 0, id="relay")

        async def continued() -> bool:
            return (await handle.describe()).status == "continued_as_new"

        await eventually(continued)
        await handle.signal("go", "went")
        assert await handle.result(timeout=30) == "went"


async def test_a_signal_that_races_the_hand_over_goes_to_the_new_run(
    make_app: AppFactory,
) -> None:
    """The run continues as new between the handle finding it and the store recording
    the signal: the closed run refuses it, and the handle sends it on to the new run."""
    app = make_app()

    @app.workflow
    async def relay(ctx: tether.Context, generation: int) -> str:
        if generation == 0:
            await ctx.wait_signal("go")
            ctx.continue_as_new(1)
        return str(await ctx.wait_signal("msg"))

    async with app, app.worker():
        handle = await app.client.start(relay, 0, id="relay")
        store = app.client.store
        signal_run = store.signal_run
        refused: list[str] = []

        async def hand_over_first(namespace: str, run_id: str, name: str, payload: Any) -> int:
            if name == "msg" and not refused:
                # The handle found the run open; make it continue as new before the
                # signal lands (a worker committing at that moment does the same).
                await signal_run(namespace, run_id, "go", None)

                async def continued() -> bool:
                    return (await handle.describe()).status == "continued_as_new"

                await eventually(continued)
                refused.append(run_id)
            return await signal_run(namespace, run_id, name, payload)

        store.signal_run = hand_over_first  # type: ignore[method-assign]
        await handle.signal("msg", "arrived")
        assert refused == [handle.run_id]
        assert await handle.result(timeout=30) == "arrived"
        latest = await app.client.get_handle("relay").describe()
    assert latest.run_id != handle.run_id
