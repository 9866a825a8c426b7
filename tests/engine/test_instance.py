"""The engine alone: events in, commands out, no store, no clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.testing
from examples.hello import greet
from tether.codec import Codec
from tether.definitions import WorkflowDefinition
from tether.engine import RunInfo, WorkflowInstance
from tether.history import Event, EventType

GOLDEN = Path(__file__).parent / "golden"
INFO = RunInfo("default", "wf", "run", "flow", "default")


def _instance(fn: Any) -> WorkflowInstance:
    return WorkflowInstance(WorkflowDefinition.create(fn, None, "default"), INFO, Codec())


def _started(*args: Any, seq: int = 1) -> Event:
    return Event(seq, EventType.WORKFLOW_STARTED, 100.0, {"args": list(args), "seed": 7})


async def two_steps(ctx: tether.Context, x: int) -> int:
    a = await ctx.activity("double", x)
    b = await ctx.activity("double", a)
    return int(a + b)


def test_commands_follow_inputs() -> None:
    instance = _instance(two_steps)
    first = instance.activate([_started(3)])
    assert [(c.type, c.attrs["step"], c.attrs["name"]) for c in first.commands] == [
        (EventType.ACTIVITY_SCHEDULED, 1, "double")
    ]
    done = Event(3, EventType.ACTIVITY_COMPLETED, 101.0, {"step": 1, "result": 6})
    second = instance.activate([done])
    assert [c.attrs["step"] for c in second.commands] == [2]
    third = instance.activate(
        [Event(5, EventType.ACTIVITY_COMPLETED, 102.0, {"step": 2, "result": 12})]
    )
    assert third.closes and third.commands[-1].attrs["result"] == 18


def _full_history() -> list[Event]:
    def scheduled(seq: int, step: int, wt: int) -> Event:
        attrs = {"step": step, "name": "double", "args": [], "options": {}, "wt": wt}
        return Event(seq, EventType.ACTIVITY_SCHEDULED, 100.0, attrs)

    return [
        _started(3),
        scheduled(2, 1, 1),
        Event(3, EventType.ACTIVITY_COMPLETED, 101.0, {"step": 1, "result": 6}),
        scheduled(4, 2, 3),
        Event(5, EventType.ACTIVITY_COMPLETED, 102.0, {"step": 2, "result": 12}),
    ]


def test_replay_is_independent_of_batching() -> None:
    history = _full_history()
    at_once = _instance(two_steps).activate(history)
    one_by_one = _instance(two_steps)
    commands = []
    for event in history:
        commands.extend(one_by_one.activate([event]).commands)
    assert at_once.nondeterminism is None
    # Replaying all of history issues only what history lacks: the completion.
    assert [c.type for c in at_once.commands] == [EventType.WORKFLOW_COMPLETED]
    assert at_once.commands[0].attrs["result"] == 18


def test_divergence_names_the_step_and_the_event() -> None:
    async def changed(ctx: tether.Context, x: int) -> int:
        a = await ctx.activity("double", x)
        await ctx.sleep(1)  # a deploy put a timer where history has an activity
        return int(a)

    activation = _instance(changed).activate(_full_history())
    error = activation.nondeterminism
    assert isinstance(error, tether.NonDeterminismError)
    assert "step 2" in str(error) and "TimerStarted" in str(error)
    assert "ActivityScheduled double (event 4)" in str(error)


def test_dropped_step_is_divergence_too() -> None:
    async def shorter(ctx: tether.Context, x: int) -> int:
        return int(await ctx.activity("double", x))

    history = _full_history()[:4]  # step 2 scheduled, not yet completed
    error = _instance(shorter).activate(history).nondeterminism
    assert error is not None and "no longer issues it" in str(error)


def test_seeded_values_repeat_on_replay() -> None:
    async def values(ctx: tether.Context) -> list[Any]:
        return [ctx.random(), str(ctx.uuid()), ctx.now().timestamp()]

    one = _instance(values).activate([_started()]).commands[-1].attrs["result"]
    two = _instance(values).activate([_started()]).commands[-1].attrs["result"]
    assert one == two and one[2] == 100.0


def test_asyncio_primitives_are_deterministic() -> None:
    async def racing(ctx: tether.Context) -> list[str]:
        order: list[str] = []
        event = asyncio.Event()

        async def waiter(name: str) -> None:
            await event.wait()
            order.append(name)

        tasks = [asyncio.ensure_future(waiter(n)) for n in "abc"]
        await asyncio.sleep(0)
        event.set()
        await asyncio.gather(*tasks)
        return order

    result = _instance(racing).activate([_started()]).commands[-1].attrs["result"]
    assert result == ["a", "b", "c"]


def test_bad_arguments_fail_the_run_with_a_clear_error() -> None:
    activation = _instance(two_steps).activate([_started("not a number")])
    failure = activation.commands[-1].attrs["failure"]
    assert activation.commands[-1].type == EventType.WORKFLOW_FAILED
    assert failure["type"] == "InvalidArgument" and "'x'" in failure["message"]


def test_golden_history_still_replays() -> None:
    """Guards deploys: a run recorded with examples/hello.py must replay unchanged."""
    tether.testing.replay(greet, tether.testing.load_history(GOLDEN / "greet.json"))


def test_golden_history_catches_a_changed_workflow() -> None:
    app = tether.App(":unused:")

    @app.workflow(name="greet")
    async def greet_v2(ctx: tether.Context, name: str) -> str:
        return str(await ctx.activity("shout", name))  # skips the lookup step

    with pytest.raises(tether.NonDeterminismError, match="step 1"):
        tether.testing.replay(greet_v2, tether.testing.load_history(GOLDEN / "greet.json"))
