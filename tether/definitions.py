"""What ``@app.workflow`` and ``@app.activity`` register: a name, a function, defaults."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import Signature
from .errors import InvalidArgument
from .policy import ActivityOptions

__all__ = [
    "ActivityDefinition",
    "Registry",
    "WorkflowDefinition",
    "activity_name",
    "workflow_name",
]

_ATTR = "__tether_definition__"


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Any]
    signature: Signature
    task_queue: str
    # The activities of the registry the workflow belongs to (a live view), so that
    # the built-in steps (``ctx.llm``) find the defaults their app configured.
    activities: Mapping[str, ActivityDefinition] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def create(
        cls,
        fn: Callable[..., Any],
        name: str | None,
        task_queue: str,
        activities: Mapping[str, ActivityDefinition] | None = None,
    ) -> WorkflowDefinition:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidArgument(f"workflow {fn.__qualname__} must be an async def function")
        if not inspect.signature(fn).parameters:
            raise InvalidArgument(f"workflow {fn.__qualname__} must take a Context first")
        name = name or fn.__name__
        signature = Signature(fn, name=name, skip_first=True)
        defn = cls(name, fn, signature, task_queue, {} if activities is None else activities)
        setattr(fn, _ATTR, defn)
        return defn


@dataclass(frozen=True)
class ActivityDefinition:
    name: str
    fn: Callable[..., Any]
    signature: Signature
    options: ActivityOptions
    is_async: bool

    @classmethod
    def create(
        cls, fn: Callable[..., Any], name: str | None, options: ActivityOptions
    ) -> ActivityDefinition:
        is_async = inspect.iscoroutinefunction(fn)
        name = name or fn.__name__
        defn = cls(name, fn, Signature(fn, name=name), options, is_async)
        setattr(fn, _ATTR, defn)
        return defn


def _definition(target: Any) -> Any:
    return getattr(target, _ATTR, None)


def activity_name(target: Any) -> tuple[str, ActivityDefinition | None]:
    """The registered name of an activity given as a function or a name."""
    if isinstance(target, str):
        return target, None
    defn = _definition(target)
    if not isinstance(defn, ActivityDefinition):
        raise InvalidArgument(f"{target!r} is not an activity; decorate it with @app.activity")
    return defn.name, defn


def workflow_name(target: Any) -> tuple[str, WorkflowDefinition | None]:
    """The registered name of a workflow given as a function or a name."""
    if isinstance(target, str):
        return target, None
    defn = _definition(target)
    if not isinstance(defn, WorkflowDefinition):
        raise InvalidArgument(f"{target!r} is not a workflow; decorate it with @app.workflow")
    return defn.name, defn


class Registry:
    """The workflows and activities an ``App`` knows, by name."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowDefinition] = {}
        self.activities: dict[str, ActivityDefinition] = {}

    def add_workflow(self, defn: WorkflowDefinition) -> None:
        if defn.name in self.workflows and self.workflows[defn.name].fn is not defn.fn:
            raise InvalidArgument(f"a workflow named {defn.name!r} is already registered")
        self.workflows[defn.name] = defn

    def add_activity(self, defn: ActivityDefinition) -> None:
        if defn.name in self.activities and self.activities[defn.name].fn is not defn.fn:
            raise InvalidArgument(f"an activity named {defn.name!r} is already registered")
        self.activities[defn.name] = defn
