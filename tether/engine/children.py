"""Child runs and continue-as-new, as workflow code sees them through ``Context``.

A child run is a command of the parent (``ChildWorkflowStarted {step}``): the store
creates the run in the transaction that records the command, and appends the child's
outcome to the parent when the child closes. Continue-as-new ends the run by raising
:class:`ContinueAsNewRequested`; the store starts the new run with the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from ..codec import check_text
from ..definitions import WorkflowDefinition, workflow_name
from ..errors import InvalidArgument
from ..search_attributes import encode
from .instance import ContinueAsNewRequested

if TYPE_CHECKING:
    from .instance import WorkflowInstance

__all__ = ["CLOSE_POLICIES", "ChildHandle", "continue_as_new", "start_child"]

T = TypeVar("T")

CLOSE_POLICIES = ("terminate", "cancel", "abandon")


class ChildHandle(Generic[T]):
    """A child run started by this workflow: await it (or :meth:`result`) for its result.

    A child that fails, is cancelled or terminated raises :class:`tether.ChildWorkflowError`
    with the cause chained. Not awaiting it is fine: with ``parent_close_policy="abandon"``
    the child outlives the parent.
    """

    def __init__(self, workflow_id: str, workflow_type: str, future: asyncio.Future[T]) -> None:
        self.workflow_id = workflow_id
        self.workflow_type = workflow_type
        self._future = future

    async def result(self) -> T:
        return await self._future

    def __await__(self) -> Generator[Any, None, T]:
        return self._future.__await__()

    def __repr__(self) -> str:
        return f"ChildHandle({self.workflow_type}, id={self.workflow_id!r})"


def start_child(
    instance: WorkflowInstance,
    workflow: Callable[..., Any] | str,
    args: tuple[Any, ...],
    *,
    id: str | None,
    task_queue: str | None,
    parent_close_policy: str,
    search_attributes: Mapping[str, Any] | None = None,
) -> ChildHandle[Any]:
    name, definition = workflow_name(workflow)
    check_text(name, "a child workflow type")
    if parent_close_policy not in CLOSE_POLICIES:
        raise InvalidArgument(
            f"parent_close_policy must be one of {', '.join(CLOSE_POLICIES)},"
            f" got {parent_close_policy!r}"
        )
    if id is not None:
        check_text(id, "a child workflow id")
    checked = definition.signature.check_args(args) if definition else list(args)
    what = f"arguments of child workflow {name}"
    plain = instance.codec.plain(checked, what=what, limit=instance.max_payload)
    queue = task_queue or (definition.task_queue if definition else None)
    queue = queue or instance.info.task_queue
    instance.check_queue(queue, f"child workflow {name}")
    attrs: dict[str, Any] = {
        "name": name,
        "workflow_id": id,
        "task_queue": queue,
        "args": plain,
        "parent_close_policy": parent_close_policy,
    }
    if search_attributes:
        attrs["search_attributes"] = encode(search_attributes)
    # A child runs in its parent's namespace, under the limits its parent started with.
    instance.inherit(attrs)
    convert = _converter(definition)
    _, future = instance.start_child(attrs, convert)
    return ChildHandle(attrs["workflow_id"], name, future)


def continue_as_new(instance: WorkflowInstance, args: tuple[Any, ...]) -> NoReturn:
    instance.refuse_in_query("continue as new")
    checked = instance.definition.signature.check_args(args)
    what = f"arguments of workflow {instance.info.workflow_type}"
    plain = instance.codec.plain(checked, what=what, limit=instance.max_payload)
    raise ContinueAsNewRequested(plain)


def _converter(definition: WorkflowDefinition | None) -> Callable[[Any], Any]:
    if definition is None:
        return lambda value: value
    return definition.signature.convert_result
