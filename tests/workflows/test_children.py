"""Child workflows end to end on every store: results and failures reach the parent,
fan-out, parent-close policies, and children that continue as new."""

from __future__ import annotations

from typing import Any

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_a_child_returns_its_result_and_a_fan_out_gathers(
    make_app: AppFactory, cache_size: int
) -> None:
    app = make_app()

    @app.activity
    async def square(n: int) -> int:
        return n * n

    @app.workflow
    async def leaf(ctx: tether.Context, n: int) -> int:
        return await ctx.activity(square, n)

    @app.workflow
    async def parent(ctx: tether.Context, n: int) -> dict[str, Any]:
        one = await ctx.child(leaf, n, id="the-leaf")
        handles = [ctx.start_child(leaf, i) for i in range(5)]
        many = await ctx.gather(*handles)
        return {"one": one, "many": many}

    async with app, app.worker(cache_size=cache_size):
        handle = await app.client.start(parent, 7, id="parent")
        assert await handle.result(timeout=30) == {"one": 49, "many": [0, 1, 4, 9, 16]}
        history = await handle.history()
        child = await app.client.get_handle("the-leaf").describe()
        runs = (await app.client.list()).runs
    started = [e for e in history if e.type == EventType.CHILD_WORKFLOW_STARTED]
    done = [e for e in history if e.type == EventType.CHILD_WORKFLOW_COMPLETED]
    assert len(started) == 6 and len(done) == 6
    assert started[0].attrs["run_id"] == child.run_id and child.status == "completed"
    assert len(runs) == 7 and all(r.status == "completed" for r in runs)
    tether.testing.replay(parent, history)


async def test_a_failed_child_raises_a_child_workflow_error_with_the_cause(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def broken(ctx: tether.Context) -> None:
        raise tether.ApplicationError("no luck", type="Bad", non_retryable=True)

    @app.workflow
    async def parent(ctx: tether.Context) -> list[Any]:
        try:
            await ctx.child(broken, id="broken-child")
        except tether.ChildWorkflowError as exc:
            cause = exc.__cause__
            assert isinstance(cause, tether.ApplicationError)
            return [exc.workflow_id, exc.workflow_type, cause.type, cause.message]
        return []

    async with app, app.worker():
        result = await app.client.execute(parent, id="parent", timeout=30)
    assert result == ["broken-child", "broken", "Bad", "no luck"]


async def test_a_child_id_already_open_fails_the_start(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def waiter(ctx: tether.Context) -> str:
        return str(await ctx.wait_signal("go"))

    @app.workflow
    async def parent(ctx: tether.Context) -> str:
        try:
            await ctx.child(waiter, id="taken")
        except tether.ChildWorkflowError as exc:
            return f"{exc.message} / {exc.__cause__}"
        return "started"

    async with app, app.worker():
        await app.client.start(waiter, id="taken")
        result = await app.client.execute(parent, id="parent", timeout=30)
    assert "not started" in result and "already has workflow id 'taken'" in result


@pytest.mark.parametrize(
    ("policy", "status"),
    [("terminate", "terminated"), ("cancel", "canceled"), ("abandon", "completed")],
)
async def test_parent_close_policy_applies_when_the_parent_returns(
    make_app: AppFactory, policy: str, status: str
) -> None:
    app = make_app()

    @app.workflow
    async def waiter(ctx: tether.Context) -> str:
        return str(await ctx.wait_signal("go"))

    @app.workflow
    async def parent(ctx: tether.Context, policy: str) -> str:
        child = ctx.start_child(waiter, id="kid", parent_close_policy=policy)
        return child.workflow_id

    async with app, app.worker():
        assert await app.client.execute(parent, policy, id="parent", timeout=30) == "kid"
        kid = app.client.get_handle("kid")
        if policy == "abandon":
            await kid.signal("go", "alone")
            assert await kid.result(timeout=30) == "alone"
        else:
            with pytest.raises(tether.WorkflowFailed):
                await kid.result(timeout=30)
        assert (await kid.describe()).status == status


async def test_terminating_a_parent_terminates_its_children_and_grandchildren(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def waiter(ctx: tether.Context) -> str:
        return str(await ctx.wait_signal("go"))

    @app.workflow
    async def middle(ctx: tether.Context) -> str:
        return str(await ctx.child(waiter, id="grandchild"))

    @app.workflow
    async def top(ctx: tether.Context) -> str:
        return str(await ctx.child(middle, id="child"))

    async with app, app.worker():
        handle = await app.client.start(top, id="top")
        grandchild = app.client.get_handle("grandchild")

        async def started() -> bool:
            try:
                return (await grandchild.describe()).status == "running"
            except tether.WorkflowNotFound:
                return False

        await eventually(started)
        await handle.terminate("enough")
        statuses = {
            wid: (await app.client.get_handle(wid).describe()).status
            for wid in ("top", "child", "grandchild")
        }
    assert statuses == {"top": "terminated", "child": "terminated", "grandchild": "terminated"}


async def test_a_child_that_continues_as_new_reports_its_final_result(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def countdown(ctx: tether.Context, n: int) -> str:
        if n > 0:
            ctx.continue_as_new(n - 1)
        return "liftoff"

    @app.workflow
    async def parent(ctx: tether.Context) -> str:
        return str(await ctx.child(countdown, 3, id="countdown"))

    async with app, app.worker():
        assert await app.client.execute(parent, id="parent", timeout=30) == "liftoff"
        history = await app.client.get_handle("parent").history()
    assert sum(e.type == EventType.CHILD_WORKFLOW_COMPLETED for e in history) == 1
