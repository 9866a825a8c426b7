"""Cancellation end to end on every store: CancelledError in the code, cleanup, status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


async def _has(handle: tether.WorkflowHandle[Any], event_type: str) -> bool:
    return any(e.type == event_type for e in await handle.history())


async def test_cancel_runs_cleanup_steps_and_closes_canceled(make_app: AppFactory) -> None:
    app = make_app()
    stopped = asyncio.Event()
    cleaned: list[str] = []

    @app.activity
    async def long_job() -> str:
        try:
            for _ in range(600):
                tether.heartbeat("working")
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            stopped.set()  # asked to stop through its heartbeats
            raise
        return "done"

    @app.activity
    async def release(what: str) -> None:
        cleaned.append(what)

    @app.workflow
    async def job(ctx: tether.Context) -> str:
        try:
            return await ctx.activity(long_job)
        except asyncio.CancelledError:
            assert ctx.cancel_requested
            await ctx.sleep(1.0)  # long enough for long_job to be told to stop
            await ctx.activity(release, "lock")  # cleanup may still run steps
            raise

    async with app, app.worker():
        handle = await app.client.start(job, id="job")
        await eventually(lambda: _has(handle, EventType.ACTIVITY_SCHEDULED))
        record = await handle.cancel("user left", identity="test")
        assert record.status == tether.RunStatus.RUNNING  # asked, not yet done
        with pytest.raises(tether.WorkflowFailed) as failed:
            await handle.result(timeout=30)
        await asyncio.wait_for(stopped.wait(), 10)
        run = await handle.describe()
        history = await handle.history()
    assert isinstance(failed.value.__cause__, tether.CancelledFailure)
    assert "user left" in str(failed.value.__cause__)
    assert run.status == tether.RunStatus.CANCELED
    assert cleaned == ["lock"]
    types = [e.type for e in history]
    requested = types.index(EventType.WORKFLOW_CANCEL_REQUESTED)
    assert history[requested].attrs == {"reason": "user left", "identity": "test"}
    assert types[-1] == EventType.WORKFLOW_CANCELED
    # The cleanup step was scheduled after the request, and ran.
    scheduled = [e for e in history if e.type == EventType.ACTIVITY_SCHEDULED]
    assert [e.attrs["name"] for e in scheduled] == ["long_job", "release"]
    assert scheduled[1].seq > history[requested].seq
    # The step running when the request came was stopped and failed for good.
    (stopped_step,) = [e for e in history if e.type == EventType.ACTIVITY_FAILED]
    assert stopped_step.attrs["step"] == scheduled[0].attrs["step"]
    assert stopped_step.attrs["failure"]["cause"]["code"] == "cancelled"


async def test_cancel_during_a_durable_sleep(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def sleeper(ctx: tether.Context) -> str:
        await ctx.sleep(3600)
        return "woke"

    async with app, app.worker():
        handle = await app.client.start(sleeper, id="sleeper")
        await eventually(lambda: _has(handle, EventType.TIMER_STARTED))
        await handle.cancel()
        with pytest.raises(tether.WorkflowFailed):
            await handle.result(timeout=30)
        types = [e.type for e in await handle.history()]
        assert (await handle.describe()).status == tether.RunStatus.CANCELED
        assert await app.store.next_due(["default"], ["default"]) is None  # no timer left
    assert types[-3:] == [
        EventType.WORKFLOW_CANCEL_REQUESTED,
        EventType.TIMER_CANCELED,
        EventType.WORKFLOW_CANCELED,
    ]


async def test_workflow_may_handle_cancellation_and_complete(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def stubborn(ctx: tether.Context) -> str:
        ctx.side_effect(lambda: "waiting")  # a marker: the wait is about to begin
        try:
            await ctx.wait_signal("never")
        except asyncio.CancelledError:
            return "cancelled, but finished cleanly"
        return "signalled"

    async with app, app.worker():
        handle = await app.client.start(stubborn, id="stubborn")
        await eventually(lambda: _has(handle, EventType.MARKER_RECORDED))
        await handle.cancel("stop")
        assert await handle.result(timeout=30) == "cancelled, but finished cleanly"
        assert (await handle.describe()).status == tether.RunStatus.COMPLETED


async def test_cancel_before_a_worker_runs_and_of_a_closed_run(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def waits(ctx: tether.Context) -> str:
        await ctx.wait_signal("go")
        return "went"

    async with app:
        handle = await app.client.start(waits, id="waits")
        await handle.cancel("changed my mind")
        async with app.worker():
            with pytest.raises(tether.WorkflowFailed):
                await handle.result(timeout=30)
        assert (await handle.describe()).status == tether.RunStatus.CANCELED
        with pytest.raises(tether.InvalidArgument, match="already canceled"):
            await handle.cancel()
        with pytest.raises(tether.InvalidArgument, match="already canceled"):
            await handle.signal("go")
