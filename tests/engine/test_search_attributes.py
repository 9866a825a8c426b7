"""Search attributes in the engine: upserts are command events that replay, and the
run's attributes are rebuilt from history and carried over by continue-as-new."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.testing
from examples.visibility import order
from tether.codec import Codec
from tether.definitions import WorkflowDefinition
from tether.engine import RunInfo, WorkflowInstance
from tether.history import Event, EventType, describe_event
from tether.search_attributes import encode

GOLDEN = Path(__file__).parent / "golden"
INFO = RunInfo("default", "wf", "run", "flow", "default")


def _instance(fn: Any) -> WorkflowInstance:
    return WorkflowInstance(WorkflowDefinition.create(fn, None, "default"), INFO, Codec())


def _started(attrs: dict[str, Any] | None = None) -> Event:
    started: dict[str, Any] = {"args": [], "seed": 7}
    if attrs is not None:
        started["search_attributes"] = encode(attrs)
    return Event(1, EventType.WORKFLOW_STARTED, 100.0, started)


def test_golden_history_with_an_upsert_replays() -> None:
    """A run of examples/visibility.py recorded with its upsert must replay unchanged."""
    history = tether.testing.load_history(GOLDEN / "order_upsert.json")
    assert any(e.type == EventType.SEARCH_ATTRIBUTES_UPSERTED for e in history)
    tether.testing.replay(order, history)


def test_a_workflow_that_no_longer_upserts_is_caught() -> None:
    app = tether.App(":unused:")

    @app.workflow(name="order")
    async def order_v2(ctx: tether.Context, order_id: str) -> str:
        return str(await ctx.activity("ship", order_id))

    history = tether.testing.load_history(GOLDEN / "order_upsert.json")
    with pytest.raises(tether.NonDeterminismError, match="SearchAttributesUpserted for step 2"):
        tether.testing.replay(order_v2, history)


def test_attributes_are_rebuilt_and_upserts_become_commands() -> None:
    seen: list[dict[str, Any]] = []

    async def flow(ctx: tether.Context) -> None:
        seen.append(ctx.search_attributes)
        ctx.upsert_search_attributes({"stage": "paid", "priority": None})
        seen.append(ctx.search_attributes)

    activation = _instance(flow).activate([_started({"stage": "new", "priority": 2})])
    assert seen == [{"stage": "new", "priority": 2}, {"stage": "paid"}]
    upsert, done = activation.commands
    assert upsert.type == EventType.SEARCH_ATTRIBUTES_UPSERTED
    assert upsert.attrs["search_attributes"] == {
        "stage": {"type": "keyword", "values": ["paid"]},
        "priority": None,
    }
    assert done.type == EventType.WORKFLOW_COMPLETED
    event = Event(2, upsert.type, 100.0, upsert.attrs)
    assert describe_event(event) == "step 1: {'stage': ['paid'], 'priority': None}"


def test_an_upsert_of_another_type_raises_in_the_workflow() -> None:
    errors: list[str] = []

    async def flow(ctx: tether.Context) -> None:
        for bad in ({"priority": "high"}, {"when": datetime(2026, 1, 1)}, {"x": object()},
                    {"1st": 1}, {"big": 2**70}):  # fmt: skip
            try:
                ctx.upsert_search_attributes(bad)
            except tether.InvalidArgument as exc:
                errors.append(str(exc))
        ctx.upsert_search_attributes({"priority": 3, "when": datetime(2026, 1, 1, tzinfo=UTC)})

    activation = _instance(flow).activate([_started({"priority": 2})])
    assert len(errors) == 5
    assert "has type int in this run" in errors[0] and "timezone-aware" in errors[1]
    # Refused upserts issue nothing: the one good upsert is step 1.
    assert [c.attrs.get("step") for c in activation.commands] == [1, None]


def test_continue_as_new_carries_the_attributes() -> None:
    async def flow(ctx: tether.Context) -> None:
        ctx.upsert_search_attributes({"round": 2})
        ctx.continue_as_new()

    activation = _instance(flow).activate([_started({"customer": "acme", "round": 1})])
    closing = activation.commands[-1]
    assert closing.type == EventType.WORKFLOW_CONTINUED_AS_NEW
    assert closing.attrs["search_attributes"] == encode({"customer": "acme", "round": 2})
