"""The engine on histories made by a reset: the copy replays, the inputs after the
code's last copied command read the reset's time, the same live and on replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tether
import tether.testing
from examples.hello import greet
from tether.codec import Codec
from tether.definitions import WorkflowDefinition
from tether.engine import RunInfo, WorkflowInstance
from tether.history import Event, EventType

GOLDEN = Path(__file__).parent / "golden"
INFO = RunInfo("default", "wf", "run", "flow", "default")


async def stamped(ctx: tether.Context) -> float:
    await ctx.activity("first")
    now = ctx.now().timestamp()
    await ctx.activity("second", now)
    return now


def _prefix() -> list[Event]:
    """A run reset just after its first step completed (at time 500)."""
    options: dict[str, Any] = {"task_queue": "default"}
    return [
        Event(1, EventType.WORKFLOW_STARTED, 100.0, {"args": [], "seed": 7}),
        Event(2, EventType.ACTIVITY_SCHEDULED, 100.0,
              {"step": 1, "name": "first", "args": [], "options": options, "wt": 1}),
        Event(3, EventType.ACTIVITY_STARTED, 101.0, {"step": 1, "attempt": 1}),
        Event(4, EventType.ACTIVITY_COMPLETED, 101.0, {"step": 1, "result": None}),
        Event(5, EventType.WORKFLOW_RESET, 500.0, {"base_run_id": "old", "seq": 4}),
    ]  # fmt: skip


def _instance() -> WorkflowInstance:
    return WorkflowInstance(WorkflowDefinition.create(stamped, None, "default"), INFO, Codec())


def test_code_after_the_point_reads_the_reset_time_live_and_on_replay() -> None:
    live = _instance()
    (second,) = live.activate(_prefix()).commands
    assert second.attrs["step"] == 2 and second.attrs["args"] == [500.0]
    # The commit, then the step's outcome: the run completes with the reset's time.
    history = [*_prefix(), Event(6, second.type, 500.0, second.attrs)]
    done = Event(8, EventType.ACTIVITY_COMPLETED, 600.0, {"step": 2, "result": None})
    closing = live.activate([done]).commands
    assert closing[-1].attrs["result"] == 500.0
    # Replayed from scratch, in one activation: the same result, nothing new.
    replayed = _instance().activate([*history, done])
    assert replayed.nondeterminism is None
    assert replayed.commands[-1].attrs["result"] == 500.0


def test_without_a_reset_inputs_keep_their_own_time() -> None:
    (second,) = _instance().activate(_prefix()[:4]).commands
    assert second.attrs["args"] == [101.0]


def test_golden_reset_history_still_replays() -> None:
    """A run of examples/hello.py reset after its first step (timer and last step run
    again after the WorkflowReset event) must replay unchanged."""
    events = tether.testing.load_history(GOLDEN / "greet_reset.json")
    assert EventType.WORKFLOW_RESET in [e.type for e in events]
    tether.testing.replay(greet, events)


def test_a_reset_of_a_reset_run_reads_the_latest_reset_time() -> None:
    # Reset again at once (the first reset run issued nothing yet): its inputs after
    # the last copied command are consumed a third time, at the second reset's time.
    again = [*_prefix(), Event(6, EventType.WORKFLOW_RESET, 900.0, {"base_run_id": "r1"})]
    (second,) = _instance().activate(again).commands
    assert second.attrs["args"] == [900.0]
