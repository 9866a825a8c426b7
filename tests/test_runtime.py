"""The event loop of Tether's own processes (``tether.runtime``): uvloop where
installed, the standard loop on request, a clear error for anything else; and a
workflow run end to end on uvloop, on both stores."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

import tether
from tether import runtime
from tether.errors import InvalidArgument


def _loop_module() -> str:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return runtime.run(which())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_EVENT_LOOP", raising=False)
    assert runtime.event_loop() == "uvloop"
    assert _loop_module() == "uvloop"


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_EVENT_LOOP", " AsyncIO ")
    assert runtime.event_loop() == "asyncio"
    assert _loop_module() == "asyncio"


def test_the_standard_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    monkeypatch.delenv("TETHER_EVENT_LOOP", raising=False)
    assert runtime.event_loop() == "asyncio"
    monkeypatch.setenv("TETHER_EVENT_LOOP", "uvloop")
    with pytest.raises(InvalidArgument, match="uvloop is not installed"):
        runtime.event_loop()


def test_an_unknown_loop_is_refused_and_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_EVENT_LOOP", "trio")
    ran = []

    async def main() -> None:
        ran.append(True)

    coroutine = main()
    with pytest.raises(InvalidArgument, match="TETHER_EVENT_LOOP must be one of uvloop, asyncio"):
        runtime.run(coroutine)
    assert ran == [] and coroutine.cr_frame is None  # closed, never started


async def add(x: int, y: int) -> int:
    return x + y


async def loop_of_activity() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def sums(ctx: tether.Context, n: int) -> list[int]:
    totals = [await ctx.activity(add, i, i) for i in range(n)]
    await ctx.sleep(0.01)
    return [*totals, sum(await ctx.gather(*(ctx.activity(add, i, 1) for i in range(n))))]


async def loop_seen(ctx: tether.Context) -> str:
    return str(await ctx.activity(loop_of_activity))


def test_a_workflow_runs_on_uvloop(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``App.run`` (the sync edge) runs on uvloop: starts, activities, a durable timer,
    a fan-out, on either store."""
    monkeypatch.delenv("TETHER_EVENT_LOOP", raising=False)
    app = tether.App(store_url)
    for activity in (add, loop_of_activity):
        app.activity(activity)
    for workflow in (sums, loop_seen):
        app.workflow(workflow)
    assert app.run(sums, 4) == [0, 2, 4, 6, 10]
    assert app.run(loop_seen) == "uvloop"
