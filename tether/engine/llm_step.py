"""The LLM step as workflow code sees it: ``ctx.llm`` and ``ctx.run_tool``.

``ctx.llm`` schedules the built-in activity ``tether.llm`` like any other step: its
argument is a :class:`tether.chat.ChatRequest` and its recorded result a
:class:`tether.chat.ChatResult`, so replay hands back the recorded reply and never
calls a model again. Which provider answers, with which credentials, and how rate
limits, fallbacks and budgets apply is decided in the activity (``tether.llm``), from
the app's configuration: only the request and the model (or alias) name cross the
durable boundary.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pydantic

from ..chat import LLM_STEP, ChatRequest, ChatResult, Message, ToolCall
from ..codec import check_text
from ..definitions import ActivityDefinition, activity_name
from ..errors import ActivityError, InvalidArgument
from ..policy import ActivityOptions, Retry

if TYPE_CHECKING:
    from .instance import WorkflowInstance

__all__ = ["DEFAULT_LLM_OPTIONS", "run_tool", "schedule_llm"]

# A model call may take minutes; provider outages are retried with backoff (a 429's
# Retry-After replaces the backoff). A spent budget is never retried.
DEFAULT_LLM_OPTIONS = ActivityOptions(
    retry=Retry(initial_interval=1.0, backoff=2.0, max_interval=60.0, max_attempts=8),
    start_to_close=300.0,
)
_NEVER_RETRY = ("BudgetExceeded",)


def schedule_llm(
    instance: WorkflowInstance,
    request: ChatRequest,
    output: type[pydantic.BaseModel] | None,
    *,
    task_queue: str | None = None,
    retry: Retry | None = None,
    start_to_close: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
) -> asyncio.Future[ChatResult]:
    """Schedule the LLM step for ``request`` (built by ``ChatRequest.build``); the
    reply's ``parsed`` is validated as ``output``, the model the request was built for."""
    # The ledger keys its rows by the model's name: text every store can hold.
    model = check_text(request.model, "a model name")
    definition = instance.definition.activities.get(LLM_STEP)
    base = definition.options if definition is not None else DEFAULT_LLM_OPTIONS
    options = base.merged(
        retry=retry, start_to_close=start_to_close, schedule_to_close=schedule_to_close
    )
    chosen = options.retry or DEFAULT_LLM_OPTIONS.retry or Retry()
    missing = tuple(n for n in _NEVER_RETRY if n not in chosen.non_retryable)
    if missing or chosen is not options.retry:
        never = (*chosen.non_retryable, *missing)
        options = options.merged(retry=replace(chosen, non_retryable=never))
    queue = task_queue or _routed_queue(definition, instance.info.namespace, model)
    options = options.merged(task_queue=queue or options.task_queue or instance.info.task_queue)
    args = instance.codec.plain(
        [request.model_dump(mode="json", exclude_defaults=True)], what=f"request to {model}"
    )
    convert = functools.partial(_result, output)
    future: asyncio.Future[ChatResult] = instance.schedule_activity(
        LLM_STEP, args, options.to_dict(), convert
    )
    return future


def _routed_queue(definition: ActivityDefinition | None, namespace: str, model: str) -> str | None:
    """The task queue the app's configuration routes this model's provider to."""
    route = getattr(definition.fn, "queue_for", None) if definition is not None else None
    return route(namespace, model) if callable(route) else None


def _result(output: type[pydantic.BaseModel] | None, value: Any) -> ChatResult:
    try:
        result = ChatResult.model_validate(value)
        if output is not None and result.parsed is not None:
            result.parsed = output.model_validate(result.parsed)
    except pydantic.ValidationError as exc:
        raise InvalidArgument(f"the model's reply does not fit: {exc}") from None
    return result


async def run_tool(
    schedule: Callable[..., asyncio.Future[Any]],
    call: ToolCall,
    tools: Sequence[Callable[..., Any]],
) -> Message:
    """Run the activity named by a model's tool call; return the ``tool`` message.

    A call the activity cannot take (unknown name, bad arguments) or that fails for
    good is answered with the error, for the model to see and correct.
    """
    by_name: dict[str, Callable[..., Any]] = {}
    for fn in tools:
        name, _ = activity_name(fn)
        by_name[name] = fn
    chosen = by_name.get(call.name)
    if chosen is None:
        return Message.tool_result(call, f"error: there is no tool named {call.name!r}")
    fn = chosen
    _, definition = activity_name(fn)
    try:
        args = _ordered(definition, call)
        result = await schedule(fn, *args)
    except (InvalidArgument, ActivityError) as exc:
        return Message.tool_result(call, f"error: {exc}")
    text = result if isinstance(result, str) else orjson.dumps(result, default=_dump).decode()
    return Message.tool_result(call, text)


def _ordered(definition: ActivityDefinition | None, call: ToolCall) -> list[Any]:
    """Keyword arguments from the model, as the activity's positional arguments."""
    if definition is None:
        return list(call.arguments.values())
    params = definition.signature.params
    names = {p[0] for p in params}
    unknown = sorted(set(call.arguments) - names)
    if unknown:
        raise InvalidArgument(f"{call.name} has no parameter(s) {', '.join(unknown)}")
    given = [i for i, p in enumerate(params) if p[0] in call.arguments]
    out: list[Any] = []
    for name, _, default in params[: (max(given) + 1) if given else 0]:
        if name in call.arguments:
            out.append(call.arguments[name])
        elif default is inspect.Parameter.empty:
            raise InvalidArgument(f"{call.name} needs the argument {name!r}")
        else:
            out.append(default)
    return out


def _dump(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")
