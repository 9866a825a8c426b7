"""Helpers for testing workflow code: replay stored histories to guard deploys.

    history = await handle.history()                 # or load_history("golden.json")
    tether.testing.replay(my_workflow, history)      # raises NonDeterminismError

A history saved from production and replayed in CI against the new code tells, before
the deploy, whether running workflows would still match their recorded steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from .codec import Codec
from .definitions import workflow_name
from .engine import RunInfo, WorkflowInstance
from .errors import InvalidArgument
from .history import Event, EventType

__all__ = ["dump_history", "load_history", "replay"]


def replay(workflow: Callable[..., Any], history: Iterable[Event]) -> None:
    """Run ``workflow`` against ``history``; raise NonDeterminismError on divergence.

    Activities are not run: their recorded results are fed back, as on a worker.
    """
    _, definition = workflow_name(workflow)
    assert definition is not None
    events = list(history)
    if not events or events[0].type != EventType.WORKFLOW_STARTED:
        raise InvalidArgument("a history starts with WorkflowStarted")
    started = events[0].attrs
    info = RunInfo(
        namespace="replay",
        workflow_id=started.get("workflow_id", "replay"),
        run_id="replay",
        workflow_type=definition.name,
        task_queue=started.get("task_queue", "default"),
    )
    instance = WorkflowInstance(definition, info, Codec())
    try:
        activation = instance.activate(events)
        if activation.nondeterminism is not None:
            raise activation.nondeterminism
    finally:
        instance.teardown()


def dump_history(events: Iterable[Event], path: str | Path) -> None:
    """Save a history as JSON (one object per event), e.g. as a golden file."""
    data = [e.to_dict() for e in events]
    Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


def load_history(path: str | Path) -> list[Event]:
    """Load a history saved by :func:`dump_history` or ``tether workflow history --json``."""
    data = orjson.loads(Path(path).read_bytes())
    return [Event(d["seq"], d["type"], d["ts"], d.get("attrs", {})) for d in data]
