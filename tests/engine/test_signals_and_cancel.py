"""The engine alone: signals buffered as their events apply, cancellation, queries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tether.errors import InvalidArgument
from tether.history import Event, EventType

from .test_instance import _instance, _started


def _signal(seq: int, name: str, payload: Any) -> Event:
    return Event(seq, EventType.SIGNAL_RECEIVED, 100.0 + seq, {"name": name, "payload": payload})


async def picky(ctx: tether.Context) -> list[Any]:
    seen: list[Any] = []
    ctx.set_query_handler("seen", lambda: seen)
    seen.append(await ctx.wait_signal("b"))
    seen.append(await ctx.wait_signal(["a", "b"]))
    seen.append(await ctx.wait_signal(["a", "b"]))
    return seen


def test_signals_are_buffered_per_name_whatever_the_batching() -> None:
    history = [_started(), _signal(2, "a", 1), _signal(3, "b", 2), _signal(4, "a", 3)]
    at_once = _instance(picky).activate(history)
    one_by_one = _instance(picky)
    commands = [c for e in history for c in one_by_one.activate([e]).commands]
    expected = [2, ["a", 1], ["a", 3]]
    assert at_once.closes and at_once.commands[-1].attrs["result"] == expected
    assert [c.type for c in commands] == [c.type for c in at_once.commands]
    assert commands[-1].attrs["result"] == expected


def test_query_sees_state_and_refuses_commands() -> None:
    instance = _instance(picky)
    instance.activate([_started(), _signal(2, "b", "x")])
    assert instance.query("seen", []) == ["x"]
    with pytest.raises(InvalidArgument, match="no query 'other'"):
        instance.query("other", [])

    async def meddles(ctx: tether.Context) -> None:
        ctx.set_query_handler("sleep", lambda: ctx.activity("nap"))
        await ctx.wait_signal("never")

    meddler = _instance(meddles)
    meddler.activate([_started()])
    with pytest.raises(InvalidArgument, match="must not schedule work"):
        meddler.query("sleep", [])
    assert meddler.activate([_signal(2, "other", 1)]).commands == []


def test_cancel_request_cancels_the_main_task_and_cleanup_may_run_steps() -> None:
    async def careful(ctx: tether.Context) -> None:
        try:
            await ctx.sleep(60)
        except asyncio.CancelledError:
            await ctx.activity("cleanup")
            raise

    instance = _instance(careful)
    assert [c.type for c in instance.activate([_started()]).commands] == [EventType.TIMER_STARTED]
    requested = Event(3, EventType.WORKFLOW_CANCEL_REQUESTED, 101.0, {"reason": "bye"})
    cleanup = instance.activate([requested])
    assert [c.type for c in cleanup.commands] == [
        EventType.TIMER_CANCELED,
        EventType.ACTIVITY_SCHEDULED,
    ]
    done = Event(6, EventType.ACTIVITY_COMPLETED, 102.0, {"step": 2, "result": None})
    closed = instance.activate([done])
    assert closed.closes and closed.commands[-1].type == EventType.WORKFLOW_CANCELED
    assert closed.commands[-1].attrs["failure"]["message"] == "bye"
