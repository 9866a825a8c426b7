"""Replay after eviction or restart, and what happens when code and history disagree."""

from __future__ import annotations

import logging

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tether.history import EventType


async def _wait_for_event(handle: tether.WorkflowHandle[object], event_type: str) -> None:
    # Wait on the run's own progress rather than on the clock.
    for _ in range(2000):
        if any(e.type == event_type for e in await handle.history()):
            return
        run = await handle.describe()
        assert run.status == tether.RunStatus.RUNNING, run
        await handle.client.store.wait_for_work(["default"], ["default"], 0.01)
    raise AssertionError(f"no {event_type} in history")


def _app(make_app: AppFactory, first_step: str) -> tether.App:
    """The same workflow type, whose first step is ``first_step`` in this "deploy"."""
    app = make_app()

    @app.activity(name="charge")
    async def charge(x: int) -> int:
        return x + 1

    @app.activity(name="refund")
    async def refund(x: int) -> int:
        return x - 1

    steps = {"charge": charge, "refund": refund}

    @app.workflow(name="billing")
    async def billing(ctx: tether.Context, x: int) -> int:
        x = await ctx.activity(steps[first_step], x)
        await ctx.sleep(0.3)
        return await ctx.activity(charge, x)

    return app


async def test_changed_code_waits_for_a_fix_instead_of_failing(make_app: AppFactory) -> None:
    v1 = _app(make_app, "charge")
    async with v1, v1.worker():
        handle = await v1.client.start("billing", 1, id="bill")
        await _wait_for_event(handle, EventType.TIMER_STARTED)

    v2 = _app(make_app, "refund")  # a deploy that changed the first step
    async with v2, v2.worker(stuck_retry=0.05):
        stuck = v2.client.get_handle("bill")
        for _ in range(2000):
            run = await stuck.describe()
            if run.stuck:
                break
            await v2.store.wait_for_work(["default"], ["default"], 0.01)
        assert run.status == tether.RunStatus.RUNNING
        assert run.stuck is not None
        assert "step 1" in run.stuck and "refund" in run.stuck and "charge" in run.stuck
        assert "event 2" in run.stuck

    v3 = _app(make_app, "charge")  # the fix
    async with v3, v3.worker(stuck_retry=0.05):
        assert await v3.client.get_handle("bill").result(timeout=30) == 3
        run = await v3.client.get_handle("bill").describe()
    assert run.status == tether.RunStatus.COMPLETED and run.stuck is None


async def test_every_step_replayed_from_scratch_gives_the_same_run(make_app: AppFactory) -> None:
    app = make_app()
    # The values each execution of the code drew, one list per execution: outside the
    # workflow on purpose, to see what replays compute, not only what the run returned.
    drawn: list[list[object]] = []

    @app.activity
    async def inc(x: int) -> int:
        return x + 1

    @app.workflow
    async def counter(ctx: tether.Context, n: int) -> list[object]:
        values: list[object] = []
        drawn.append(values)
        trail: list[object] = []
        for _ in range(n):
            trail.append(await ctx.activity(inc, len(trail)))
            values.append(round(ctx.random(), 6))
            trail.append(values[-1])
        await ctx.sleep(0.01)
        values.append(str(ctx.uuid()))
        trail.append(values[-1])
        return trail

    def draws(trail: list[object]) -> list[object]:
        return [*trail[1::2][:4], trail[-1]]

    async with app:
        async with app.worker():
            cached = await app.client.execute(counter, 4, id="c1")
            history = await app.client.get_handle("c1").history()
        assert drawn == [draws(cached)], "a cached run executes its code once"
        drawn.clear()
        tether.testing.replay(counter, history)
        assert drawn == [draws(cached)], "replaying the history draws the original values"

        drawn.clear()
        async with app.worker(cache_size=0):
            uncached = await app.client.execute(counter, 4, id="c1")
    # Without a cache every workflow task runs the code again from the first event:
    # each of those replays drew what the first execution drew, up to where it got.
    final = drawn[-1]
    assert final == draws(uncached)
    assert {len(values) for values in drawn} == {0, 1, 2, 3, 4, 5}, "every step replayed"
    for values in drawn:
        assert values == final[: len(values)], (values, final)
    # Each run draws from its own seed; the activity results do not depend on it.
    assert cached[0::2][:4] == uncached[0::2][:4] == [1, 3, 5, 7]
    assert draws(cached) != draws(uncached)


async def test_workflow_logger_is_silent_during_replay(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    @app.activity
    async def noop(i: int) -> int:
        return i

    @app.workflow
    async def chatty(ctx: tether.Context) -> None:
        for i in range(3):
            ctx.logger.info("step %d", i)
            await ctx.activity(noop, i)

    caplog.set_level(logging.INFO, logger="tether.workflow")
    async with app, app.worker(cache_size=0):  # every step replays the ones before it
        await app.client.execute(chatty, timeout=30)
    messages = [r.getMessage() for r in caplog.records if r.name == "tether.workflow"]
    assert [m.split("] ")[1] for m in messages] == ["step 0", "step 1", "step 2"]
