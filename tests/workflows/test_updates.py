"""Updates on every store: validated before anything is recorded, then recorded, run
as part of the workflow (steps included) and answered to the caller exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType
from tether.testing import replay


def _approvals(make_app: AppFactory) -> tuple[tether.App, Any]:
    app = make_app()

    @app.activity
    async def revise(plan: list[str], edits: list[str]) -> list[str]:
        return [*plan, *edits]

    @app.workflow
    async def planner(ctx: tether.Context, topic: str) -> list[str]:
        state: dict[str, Any] = {"plan": [f"research {topic}"], "approved": False}

        def check(edits: list[str]) -> None:
            if state["approved"]:
                raise ValueError("the plan is already approved")
            if not all(edit.strip() for edit in edits):
                raise ValueError("an edit is empty")

        @ctx.update("approve", validator=check)
        async def approve(edits: list[str]) -> list[str]:
            state["plan"] = await ctx.activity(revise, state["plan"], edits)
            state["approved"] = True
            return list(state["plan"])

        @ctx.update("peek")
        def peek() -> int:
            return len(state["plan"])

        await ctx.wait_signal("finish")
        return list(state["plan"])

    return app, planner


def _types(events: list[tether.Event]) -> list[str]:
    return [e.type for e in events]


async def test_update_runs_an_activity_and_returns_its_result(make_app: AppFactory) -> None:
    app, planner = _approvals(make_app)
    async with app, app.worker():
        handle = await app.client.start(planner, "tides", id="plan-1")
        new_plan = await handle.update("approve", ["write draft"], timeout=30)
        assert new_plan == ["research tides", "write draft"]
        assert await handle.update("peek", timeout=30) == 2
        history = await handle.history()
        accepted = [e for e in history if e.type == EventType.UPDATE_ACCEPTED]
        completed = [e for e in history if e.type == EventType.UPDATE_COMPLETED]
        assert [e.attrs["name"] for e in accepted] == ["approve", "peek"]
        assert [e.attrs["result"] for e in completed] == [new_plan, 2]
        assert EventType.ACTIVITY_SCHEDULED in _types(history)
        await handle.signal("finish")
        assert await handle.result(timeout=30) == new_plan
        # The history with updates replays against the same code.
        replay(planner, await handle.history())


async def test_rejected_update_records_nothing(make_app: AppFactory) -> None:
    app, planner = _approvals(make_app)
    async with app, app.worker():
        handle = await app.client.start(planner, "tides", id="plan-2")
        await handle.update("peek", timeout=30)
        before = await handle.history()
        with pytest.raises(tether.UpdateRejected, match="an edit is empty") as caught:
            await handle.update("approve", ["ok", " "], timeout=30)
        assert caught.value.code == "update_rejected"
        with pytest.raises(tether.UpdateRejected, match="no update handler 'nope'"):
            await handle.update("nope", timeout=30)
        with pytest.raises(tether.UpdateRejected, match="takes 1 argument"):
            await handle.update("approve", timeout=30)
        assert await handle.history() == before
        await handle.update("approve", ["edit"], timeout=30)
        with pytest.raises(tether.UpdateRejected, match="already approved"):
            await handle.update("approve", ["again"], timeout=30)


async def test_same_update_id_runs_the_handler_once(make_app: AppFactory) -> None:
    app, planner = _approvals(make_app)
    async with app, app.worker():
        handle = await app.client.start(planner, "tides", id="plan-3")
        first = await handle.update("approve", ["a"], update_id="approve-1", timeout=30)
        again = await app.client.update("plan-3", "approve", ["b"], update_id="approve-1")
        assert first == again == ["research tides", "a"]
        history = await handle.history()
        assert _types(history).count(EventType.UPDATE_ACCEPTED) == 1
        assert _types(history).count(EventType.ACTIVITY_SCHEDULED) == 1
        # Concurrent callers with one id share one request.
        results = await asyncio.gather(
            *(handle.update("peek", update_id="peek-1", timeout=30) for _ in range(3))
        )
        assert results == [2, 2, 2]
        assert _types(await handle.history()).count(EventType.UPDATE_ACCEPTED) == 2


async def test_update_with_start_when_absent_and_when_running(make_app: AppFactory) -> None:
    app, planner = _approvals(make_app)
    async with app, app.worker():
        result, handle = await app.client.update_with_start(
            planner, "tides", id="plan-4", update="approve", update_args=[["x"]], timeout=30
        )
        assert result == ["research tides", "x"]
        # Started here: the update came with the start, before any other input.
        history = await handle.history()
        assert _types(history)[:2] == [EventType.WORKFLOW_STARTED, EventType.UPDATE_ACCEPTED]
        size, again = await app.client.update_with_start(
            planner, "ignored", id="plan-4", update="peek", timeout=30
        )
        assert (size, again.run_id) == (2, handle.run_id)
        with pytest.raises(tether.WorkflowAlreadyStarted):
            await app.client.update_with_start(
                planner, "t", id="plan-4", update="peek", id_conflict="fail"
            )
        with pytest.raises(tether.UpdateRejected, match="already approved"):
            await app.client.update_with_start(
                planner, "t", id="plan-4", update="approve", update_args=[["y"]], timeout=30
            )
        await handle.signal("finish")
        assert await handle.result(timeout=30) == ["research tides", "x"]
        # A closed run's id starts a new run by default.
        result, fresh = await app.client.update_with_start(
            planner, "moss", id="plan-4", update="peek", timeout=30
        )
        assert result == 1 and fresh.run_id != handle.run_id


async def test_bad_requests_get_clear_errors(make_app: AppFactory) -> None:
    app, planner = _approvals(make_app)
    app.codec.max_payload = 2_000
    async with app, app.worker():
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.update("missing", "approve", ["x"])
        handle = await app.client.start(planner, "tides", id="plan-5")
        with pytest.raises(tether.InvalidArgument, match="update name"):
            await handle.update("", 1)
        with pytest.raises(tether.InvalidArgument, match="update id"):
            await handle.update("peek", update_id="")
        with pytest.raises(tether.PayloadTooLarge, match="arguments of update 'approve'"):
            await handle.update("approve", ["x" * 5_000])
        with pytest.raises(tether.InvalidArgument, match="update_args must be a list"):
            await app.client.update_with_start(
                planner, "t", id="plan-5", update="approve", update_args="abc"
            )
        await handle.signal("finish")
        await handle.result(timeout=30)
        with pytest.raises(tether.InvalidArgument, match="already completed; cannot update"):
            await handle.update("peek")


async def test_handler_failure_and_run_closing_first(make_app: AppFactory) -> None:
    app = make_app()
    gate: dict[str, Any] = {}

    @app.workflow
    async def flaky(ctx: tether.Context) -> str:
        @ctx.update("boom")
        def boom() -> None:
            raise ValueError("handler says no")

        @ctx.update("slow")
        async def slow() -> str:
            await ctx.wait_signal("never")
            return "late"

        @ctx.update("huge")
        def huge() -> str:
            return "x" * 5_000

        await ctx.wait_signal("finish")
        gate["in_flight"] = ctx.updates_in_flight
        return "done"

    app.codec.max_payload = 2_000
    async with app, app.worker():
        handle = await app.client.start(flaky, id="flaky")
        with pytest.raises(tether.UpdateFailed, match="'boom'") as caught:
            await handle.update("boom", timeout=30)
        assert isinstance(caught.value.__cause__, tether.ApplicationError)
        assert "handler says no" in str(caught.value.__cause__)
        with pytest.raises(tether.UpdateFailed) as too_big:
            await handle.update("huge", timeout=30)
        assert "over the limit" in str(too_big.value.__cause__)
        slow = asyncio.ensure_future(handle.update("slow", update_id="slow-1"))

        async def accepted() -> bool:  # accepted before the run is asked to finish
            return any(e.attrs.get("update_id") == "slow-1" for e in await handle.history())

        await eventually(accepted)
        with pytest.raises(TimeoutError):
            await handle.update("slow", update_id="slow-1", timeout=0.05)
        await handle.signal("finish")
        with pytest.raises(tether.UpdateFailed, match="the run is completed"):
            await asyncio.wait_for(slow, 30)
        assert gate["in_flight"] == 1
        replay(flaky, await handle.history())


async def test_update_before_handler_is_registered_is_rejected(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def late(ctx: tether.Context) -> int:
        await ctx.wait_signal("ready")
        ctx.set_update_handler("bump", lambda n: n + 1)
        await ctx.wait_signal("finish")
        return 0

    async with app, app.worker():
        handle = await app.client.start(late, id="late")
        with pytest.raises(tether.UpdateRejected, match=r"no update handler 'bump'.*known: none"):
            await handle.update("bump", 1, timeout=30)
        await handle.signal("ready")
        assert await handle.update("bump", 1, timeout=30) == 2


async def test_validator_may_not_change_state(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def strict(ctx: tether.Context) -> None:
        ctx.set_update_handler("u", lambda: 1, validator=lambda: ctx.random())

        async def check() -> None:
            return None

        ctx.set_update_handler("v", lambda: 1, validator=check)
        await ctx.wait_signal("finish")

    async with app, app.worker():
        handle = await app.client.start(strict, id="strict")
        with pytest.raises(tether.UpdateRejected, match="update validator 'u' tried to draw"):
            await handle.update("u", timeout=30)
        with pytest.raises(tether.UpdateRejected, match="must be a plain function"):
            await handle.update("v", timeout=30)


async def test_handler_may_not_continue_as_new(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def restless(ctx: tether.Context) -> str:
        ctx.set_update_handler("restart", lambda: ctx.continue_as_new())
        await ctx.wait_signal("finish")
        return "same run"

    async with app, app.worker():
        handle = await app.client.start(restless, id="restless")
        with pytest.raises(tether.UpdateFailed) as caught:
            await handle.update("restart", timeout=30)
        assert "only the workflow's own code may end the run" in str(caught.value.__cause__)
        await handle.signal("finish")
        assert await handle.result(timeout=30) == "same run"


async def test_concurrent_update_with_start_starts_one_run(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def tally(ctx: tether.Context) -> list[int]:
        seen: list[int] = []

        @ctx.update("add")
        def add(n: int) -> int:
            seen.append(n)
            return len(seen)

        await ctx.wait_signal("finish")
        return sorted(seen)

    async with app, app.worker():
        outcomes = await asyncio.gather(
            *(
                app.client.update_with_start(tally, id="tally", update="add", update_args=[n])
                for n in range(6)
            )
        )
        assert sorted(count for count, _ in outcomes) == [1, 2, 3, 4, 5, 6]
        assert len({handle.run_id for _, handle in outcomes}) == 1
        handle = outcomes[0][1]
        await handle.signal("finish")
        assert await handle.result(timeout=30) == list(range(6))
