"""Queries on every store: answered by replaying history here, never written to it."""

from __future__ import annotations

from typing import Any

import pytest

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


def _app_with_counter(make_app: AppFactory) -> tuple[tether.App, Any]:
    app = make_app()

    @app.activity
    async def double(x: int) -> int:
        return 2 * x

    @app.workflow
    async def counter(ctx: tether.Context, start: int) -> int:
        state = {"total": start, "seen": 0}

        @ctx.query("progress")
        def progress() -> dict[str, int]:
            return dict(state)

        ctx.set_query_handler("plus", lambda n: state["total"] + n)
        while True:
            name, payload = await ctx.wait_signal(["add", "stop"])
            if name == "stop":
                return state["total"]
            state["total"] += await ctx.activity(double, payload)
            state["seen"] += 1

    return app, counter


async def test_query_answers_from_live_state_and_writes_nothing(make_app: AppFactory) -> None:
    app, counter = _app_with_counter(make_app)
    async with app, app.worker():
        handle = await app.client.start(counter, 10, id="counter")
        assert await handle.query("progress") == {"total": 10, "seen": 0}
        await handle.signal("add", 3)

        async def added() -> bool:
            return any(e.type == EventType.ACTIVITY_COMPLETED for e in await handle.history())

        await eventually(added)
        assert await handle.query("progress") == {"total": 16, "seen": 1}
        assert await handle.query("plus", 4) == 20
        before = await handle.history()
        await handle.query("progress")
        assert await handle.history() == before  # a query is never recorded
        await handle.signal("stop")
        assert await handle.result(timeout=30) == 16
        # A closed run still answers: its state is rebuilt from history.
        assert await handle.query("progress") == {"total": 16, "seen": 1}


async def test_query_errors_are_clear(make_app: AppFactory, store_url: str) -> None:
    app, _ = _app_with_counter(make_app)  # registers the activity "double"

    @app.workflow
    async def meddler(ctx: tether.Context) -> None:
        ctx.set_query_handler("schedule", lambda: ctx.activity("double", 1))
        ctx.set_query_handler("sleepy", lambda: ctx.random())

        async def not_plain() -> int:
            return 1

        ctx.set_query_handler("async", not_plain)
        await ctx.wait_signal("never")

    async with app, app.worker():
        handle = await app.client.start(meddler, id="meddler")
        with pytest.raises(tether.InvalidArgument, match="'schedule' tried to schedule a step"):
            await handle.query("schedule")
        with pytest.raises(tether.InvalidArgument, match="'sleepy' tried to draw a random"):
            await handle.query("sleepy")
        with pytest.raises(tether.InvalidArgument, match="must be a plain function"):
            await handle.query("async")
        with pytest.raises(tether.InvalidArgument, match=r"no query 'nope' \(known: async,"):
            await handle.query("nope")
        assert not any(e.type == EventType.ACTIVITY_SCHEDULED for e in await handle.history()), (
            "a refused query changed nothing"
        )

        # A client whose App does not register the workflow cannot replay it.
        bare = tether.App(store_url)
        async with bare:
            with pytest.raises(tether.UnknownWorkflowType, match="does not register"):
                await bare.client.get_handle("meddler").query("async")


async def test_query_rebuilds_state_that_depends_on_signals(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity
    async def shout(text: str) -> str:
        return text.upper()

    @app.workflow
    async def chat(ctx: tether.Context) -> None:
        said: list[str] = []
        answered: list[str] = []  # filled by activity results: only a worker runs them
        ctx.set_query_handler("chat", lambda: {"said": said, "answered": sorted(answered)})
        while True:
            text = await ctx.wait_signal("say")
            said.append(text)
            answer = ctx.activity(shout, text)
            answer.add_done_callback(lambda done: answered.append(done.result()))

    async with app:
        handle = await app.client.start(chat, id="chat")
        # No worker runs: the query still sees every recorded signal, and no answer.
        for text in ["hi", "there"]:
            await handle.signal("say", text)
        assert await handle.query("chat") == {"said": ["hi", "there"], "answered": []}
        async with app.worker():
            await handle.signal("say", "again")

            async def answered_all() -> bool:
                history = await handle.history()
                return sum(e.type == EventType.ACTIVITY_COMPLETED for e in history) == 3

            await eventually(answered_all)
            assert await handle.query("chat") == {
                "said": ["hi", "there", "again"],
                "answered": ["AGAIN", "HI", "THERE"],
            }
