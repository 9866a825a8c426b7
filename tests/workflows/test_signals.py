"""Signals end to end on every store: buffered, ordered, never lost, taken once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


async def _signals_recorded(handle: tether.WorkflowHandle[Any], count: int) -> bool:
    events = await handle.history()
    return sum(e.type == EventType.SIGNAL_RECEIVED for e in events) >= count


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_signals_sent_before_the_wait_are_buffered_in_order(
    make_app: AppFactory, cache_size: int
) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.activity
    async def busy() -> None:
        await gate.wait()

    @app.workflow
    async def collect(ctx: tether.Context, n: int) -> list[Any]:
        await ctx.activity(busy)  # the signals arrive while the code is here
        return [await ctx.wait_signal("item") for _ in range(n)]

    async with app, app.worker(cache_size=cache_size):
        handle = await app.client.start(collect, 3, id="collect")
        for payload in [{"n": 1}, {"n": 2}, {"n": 3}]:
            await handle.signal("item", payload)
        gate.set()
        assert await handle.result(timeout=30) == [{"n": 1}, {"n": 2}, {"n": 3}]
        history = await handle.history()
    signals = [e.attrs for e in history if e.type == EventType.SIGNAL_RECEIVED]
    assert signals == [{"name": "item", "payload": {"n": i}} for i in (1, 2, 3)]
    tether.testing.replay(collect, history)


async def test_signal_sent_while_no_worker_runs(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def approval(ctx: tether.Context) -> str:
        decision = await ctx.wait_signal("decision")
        return f"decided: {decision}"

    async with app:
        handle = await app.client.start(approval, id="no-worker")
        await handle.signal("decision", "yes")
        async with app.worker():
            assert await handle.result(timeout=30) == "decided: yes"


async def test_wait_for_any_of_several_signals(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def review(ctx: tether.Context) -> list[Any]:
        name, payload = await ctx.wait_signal(["approve", "reject"])
        # The earliest buffered signal of either name comes first.
        later = [await ctx.wait_signal(["approve", "reject"]) for _ in range(2)]
        return [[name, payload], *[list(x) for x in later]]

    async with app, app.worker():
        handle = await app.client.start(review, id="review")
        await handle.signal("reject", {"why": "typo"})
        await eventually(lambda: _signals_recorded(handle, 1))
        await handle.signal("approve", 1)
        await handle.signal("reject", 2)
        assert await handle.result(timeout=30) == [
            ["reject", {"why": "typo"}],
            ["approve", 1],
            ["reject", 2],
        ]


async def test_wait_signal_timeout_is_a_durable_timer_and_loses_nothing(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def patient(ctx: tether.Context) -> list[Any]:
        out: list[Any] = []
        try:
            out.append(await ctx.wait_signal("ping", timeout=0.2))
        except TimeoutError:
            out.append("timed out")
        out.append(await ctx.wait_signal("ping"))  # a signal after the timeout is kept
        return out

    async with app, app.worker():
        handle = await app.client.start(patient, id="patient")

        async def timed_out() -> bool:
            return any(e.type == EventType.TIMER_FIRED for e in await handle.history())

        await eventually(timed_out)
        await handle.signal("ping", "late")
        assert await handle.result(timeout=30) == ["timed out", "late"]


async def test_parallel_branches_wait_at_once(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def branches(ctx: tether.Context) -> list[Any]:
        ctx.side_effect(lambda: "waiting")  # a marker: the waits are about to begin
        return await ctx.gather(
            ctx.wait_signal("a"),
            ctx.wait_signal("b"),
            ctx.wait_signal("c"),
            ctx.wait_signal("c"),  # two waits for one name: taken oldest wait first
        )

    async with app, app.worker():
        handle = await app.client.start(branches, id="branches")

        async def waiting() -> bool:
            return any(e.type == EventType.MARKER_RECORDED for e in await handle.history())

        await eventually(waiting)
        for name, payload in [("c", "c1"), ("b", "b1"), ("c", "c2"), ("a", "a1")]:
            await handle.signal(name, payload)
        assert await handle.result(timeout=30) == ["a1", "b1", "c1", "c2"]


async def test_a_closed_run_refuses_signals(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def quick(ctx: tether.Context) -> int:
        return 1

    async with app, app.worker():
        handle = await app.client.start(quick, id="quick")
        await handle.result(timeout=30)
        with pytest.raises(tether.InvalidArgument, match="already completed; cannot signal"):
            await handle.signal("late", 1)
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.get_handle("nobody").signal("x")
        await app.store.ensure_namespace("acme")
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.get_handle("quick", handle.run_id, namespace="acme").signal("x")
        with pytest.raises(tether.InvalidArgument, match="signal name"):
            await handle.signal("", 1)
        history = await handle.history()
    assert not any(e.type == EventType.SIGNAL_RECEIVED for e in history)


async def test_signal_with_start_starts_one_run_and_delivers_every_signal(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def inbox(ctx: tether.Context, owner: str, n: int) -> dict[str, Any]:
        items = sorted([await ctx.wait_signal("msg") for _ in range(n)])
        return {"owner": owner, "items": items}

    async with app:
        handles = await asyncio.gather(
            *(
                app.client.signal_with_start(inbox, "ada", 5, id="inbox", signal="msg", payload=i)
                for i in range(5)
            )
        )
        assert len({h.run_id for h in handles}) == 1
        runs = await app.client.list()
        assert len(runs.runs) == 1
        first = await handles[0].history()
        assert [e.type for e in first[:2]] == [
            EventType.WORKFLOW_STARTED,
            EventType.SIGNAL_RECEIVED,
        ]
        async with app.worker():
            assert await handles[0].result(timeout=30) == {"owner": "ada", "items": [0, 1, 2, 3, 4]}
            # The id is free again: the next signal-with-start begins a new run.
            again = await app.client.signal_with_start(
                inbox, "ada", 1, id="inbox", signal="msg", payload="new"
            )
            assert again.run_id != handles[0].run_id
            assert await again.result(timeout=30) == {"owner": "ada", "items": ["new"]}
        with pytest.raises(tether.InvalidArgument, match="argument 'n' of inbox"):
            await app.client.signal_with_start(inbox, "x", "y", id="bad", signal="msg")
