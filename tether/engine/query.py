"""Answering a query: rebuild the run from its history here, then ask its handler.

No channel leads from a worker to a client, so a query does not visit the worker that
holds the run: the caller replays the run's history against the registered workflow
code (activities are not run; their recorded results are fed back) and calls the
handler on the state that replay leaves. Nothing is written: the commands the code
issues while replaying are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..codec import Codec
from ..definitions import WorkflowDefinition
from ..history import Event
from .instance import RunInfo, WorkflowInstance

__all__ = ["answer_query"]


def answer_query(
    definition: WorkflowDefinition,
    info: RunInfo,
    codec: Codec,
    history: Sequence[Event],
    name: str,
    args: Sequence[Any],
) -> Any:
    """The plain result of query ``name`` on the state ``history`` leads to.

    Raises ``NonDeterminismError`` if the code no longer matches the history, and
    ``InvalidArgument`` for an unknown query or a handler that issues a command.
    """
    instance = WorkflowInstance(definition, info, codec)
    instance.quiet = True
    try:
        activation = instance.activate(list(history))
        if activation.nondeterminism is not None:
            raise activation.nondeterminism
        return instance.query(name, args)
    finally:
        instance.teardown()
