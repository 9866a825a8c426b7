"""Updates on every store: validated before anything is recorded, then recorded, run
as part of the workflow (steps included) and answered to the caller exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tests.conftest import AppFactory
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
