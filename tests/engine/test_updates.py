"""Updates in the engine alone: validation is read-only, UpdateAccepted starts the
handler, UpdateCompleted is a command that replay matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tether
import tether.testing
from tests.engine.update_flow import approval
from tether.codec import Codec
from tether.definitions import WorkflowDefinition
from tether.engine import RunInfo, WorkflowInstance
from tether.history import Event, EventType

GOLDEN = Path(__file__).parent / "golden"
INFO = RunInfo("default", "wf", "run", "flow", "default")


def _instance(fn: Any) -> WorkflowInstance:
    return WorkflowInstance(WorkflowDefinition.create(fn, None, "default"), INFO, Codec())


def _started(seq: int = 1) -> Event:
    return Event(seq, EventType.WORKFLOW_STARTED, 100.0, {"args": [], "seed": 7})


def _accepted(seq: int, update_id: str, *args: Any, name: str = "add") -> Event:
    attrs = {"name": name, "update_id": update_id, "args": list(args)}
    return Event(seq, EventType.UPDATE_ACCEPTED, 100.0 + seq, attrs)


async def counter(ctx: tether.Context) -> int:
    total = {"n": 0}

    def positive(n: int) -> None:
        if n <= 0:
            raise ValueError("positive numbers only")

    @ctx.update("add", validator=positive)
    async def add(n: int) -> int:
        doubled = await ctx.activity("double", n)
        total["n"] += doubled
        return total["n"]

    await ctx.wait_signal("stop")
    return total["n"]


def test_validate_is_read_only_and_names_the_problem() -> None:
    instance = _instance(counter)
    instance.activate([_started()])
    assert instance.updates.validate("add", [2]) is None
    assert "positive numbers only" in str(instance.updates.validate("add", [0]))
    assert "no update handler 'nope' (known: add)" in str(instance.updates.validate("nope", []))
    assert "argument 'n'" in str(instance.updates.validate("add", ["x"]))
    assert instance.activate([]).commands == []  # validating issued nothing


def test_accepted_update_runs_and_completes_as_a_command() -> None:
    instance = _instance(counter)
    instance.activate([_started()])
    first = instance.activate([_accepted(2, "u1", 3)])
    assert [(c.type, c.attrs["step"]) for c in first.commands] == [
        (EventType.ACTIVITY_SCHEDULED, 1)
    ]
    done = Event(4, EventType.ACTIVITY_COMPLETED, 104.0, {"step": 1, "result": 6})
    second = instance.activate([done])
    [completed] = second.commands
    assert completed.type == EventType.UPDATE_COMPLETED
    assert {k: completed.attrs[k] for k in ("step", "name", "update_id", "result")} == {
        "step": 2,
        "name": "add",
        "update_id": "u1",
        "result": 6,
    }


def test_replay_matches_updates_and_catches_a_changed_handler() -> None:
    history = tether.testing.load_history(GOLDEN / "approve.json")
    tether.testing.replay(approval, history)

    app = tether.App(":unused:")

    @app.workflow(name="approval")
    async def approval_v2(ctx: tether.Context, topic: str) -> list[str]:
        @ctx.update("approve")
        async def approve(edits: list[str]) -> list[str]:
            return edits  # no longer runs the revise step

        ctx.set_update_handler("size", lambda: 1)
        await ctx.wait_signal("publish")
        return []

    with pytest.raises(tether.NonDeterminismError, match="step 1"):
        tether.testing.replay(approval_v2, history)


def test_golden_history_describes_updates() -> None:
    history = tether.testing.load_history(GOLDEN / "approve.json")
    lines = [tether.history.describe_event(e) for e in history]
    assert "approve(['tables']) id approve-1" in lines
    assert "step 2: approve id approve-1 -> ['research tides', 'tables']" in lines
    failed = Event(
        9,
        EventType.UPDATE_COMPLETED,
        1.0,
        {"step": 3, "name": "a", "update_id": "x", "failure": {"message": "boom"}},
    )
    assert tether.history.describe_event(failed) == "step 3: a id x failed: boom"
