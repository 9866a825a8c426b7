"""``Context``: everything workflow code may use besides plain computation.

Time, randomness and ids come from here so that replay sees the same values; I/O
happens only in activities, which the context schedules as durable steps. Signals,
cancellation and queries reach the code through it too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

import pydantic

from ..chat import ChatRequest, ChatResult, Message, Tool, ToolCall
from ..codec import check_text
from ..definitions import activity_name
from ..errors import InvalidArgument
from ..policy import ActivityOptions, Retry, seconds
from ..search_attributes import decode, encode
from .children import ChildHandle, continue_as_new, start_child
from .llm_step import run_tool, schedule_llm

if TYPE_CHECKING:
    from .instance import RunInfo, WorkflowInstance

__all__ = ["Context"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# Looked up once: getLogger takes the logging module's lock, and a Context is made per run.
_LOGGER = logging.getLogger("tether.workflow")


class _ReplayFilter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stays silent while the run is replaying history."""

    def __init__(self, instance: WorkflowInstance) -> None:
        super().__init__(_LOGGER, {})
        self._instance = instance

    def isEnabledFor(self, level: int) -> bool:
        return not self._instance.replaying and super().isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        info = self._instance.info
        return f"[{info.namespace}/{info.workflow_id}] {msg}", kwargs


class Context:
    """The workflow's handle on durable time, randomness, steps and logging."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self.logger: logging.LoggerAdapter = _ReplayFilter(instance)  # type: ignore[type-arg]

    @property
    def info(self) -> RunInfo:
        """Ids of this run: namespace, workflow id, run id, type, task queue."""
        return self._instance.info

    @property
    def is_replaying(self) -> bool:
        return self._instance.replaying

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked this run to cancel (``handle.cancel()``)."""
        return self._instance.cancel_requested

    # -- deterministic values -------------------------------------------------------

    def now(self) -> datetime:
        """The time of the event being processed (the same on replay)."""
        return datetime.fromtimestamp(self._instance.loop.time(), UTC)

    def random(self) -> float:
        """A float in [0, 1) from the run's seeded generator."""
        self._instance.refuse_in_query("draw a random number")
        return self._instance.random.random()

    def uuid(self) -> uuid.UUID:
        """A version-4 UUID from the run's seeded generator."""
        self._instance.refuse_in_query("draw a random uuid")
        return uuid.UUID(int=self._instance.random.getrandbits(128), version=4)

    def side_effect(self, fn: Callable[[], T], *, name: str = "side_effect") -> T:
        """Run ``fn`` once and record its value; replay returns the recorded value."""
        check_text(name, "a side effect's name")
        if name.startswith("tether."):
            # Tether's own markers (ctx.patched) are told apart by their name.
            raise InvalidArgument(f"side effect names starting 'tether.' are reserved: {name!r}")
        value: T = self._instance.record_marker(name, fn)
        return value

    def patched(self, patch_id: str) -> bool:
        """Branch on a change to the workflow's code, for runs started before it:

            if ctx.patched("vat-in-quote"):
                quote = await ctx.activity(quote_with_vat, order)   # the new code
            else:
                quote = await ctx.activity(quote_net, order)        # what runs made

        True in every run that reaches this point on this code (a marker records it);
        False where a run's history was made without the call, so it replays as it ran.
        The answer holds for the rest of the run. Once no run from before the change is
        left, replace the call by :meth:`deprecate_patch` and drop the old branch."""
        check_text(patch_id, "a patch id")
        return self._instance.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """Mark where ``patched(patch_id)`` was, once only its new path remains: runs
        that recorded the patch still replay, and no run records it any more."""
        check_text(patch_id, "a patch id")
        self._instance.patched(patch_id, deprecated=True)

    # -- steps ----------------------------------------------------------------------

    @overload
    def activity(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        task_queue: str | None = ...,
        retry: Retry | None = ...,
        schedule_to_close: timedelta | float | None = ...,
        start_to_close: timedelta | float | None = ...,
        heartbeat: timedelta | float | None = ...,
    ) -> asyncio.Future[T]: ...

    @overload
    def activity(
        self,
        fn: Callable[..., T] | str,
        *args: Any,
        task_queue: str | None = ...,
        retry: Retry | None = ...,
        schedule_to_close: timedelta | float | None = ...,
        start_to_close: timedelta | float | None = ...,
        heartbeat: timedelta | float | None = ...,
    ) -> asyncio.Future[T]: ...

    def activity(
        self,
        fn: Callable[..., Any] | str,
        *args: Any,
        task_queue: str | None = None,
        retry: Retry | None = None,
        schedule_to_close: timedelta | float | None = None,
        start_to_close: timedelta | float | None = None,
        heartbeat: timedelta | float | None = None,
    ) -> asyncio.Future[Any]:
        """Schedule an activity now; await the returned future for its result.

        ``fn`` is a function decorated with ``@app.activity`` or an activity name.
        Options given here override the activity's defaults for this call. A failure
        arrives as :class:`tether.ActivityError` with the cause chained.
        """
        name, definition = activity_name(fn)
        check_text(name, "an activity name")
        base = definition.options if definition else _NO_OPTIONS
        overrides = (task_queue, retry, schedule_to_close, start_to_close, heartbeat)
        if base.task_queue is None and all(o is None for o in overrides):
            # The common call: the activity's defaults on the workflow's own queue.
            options = _on_queue(base, self._instance.info.task_queue)
        else:
            options = base.merged(
                task_queue=task_queue,
                retry=retry,
                schedule_to_close=schedule_to_close,
                start_to_close=start_to_close,
                heartbeat=heartbeat,
            )
            if options.task_queue is None:
                options = options.merged(task_queue=self._instance.info.task_queue)
            check_text(options.task_queue, f"activity {name}: a task queue")
        if definition is not None:
            checked = definition.signature.check_args(args)
            convert: Callable[[Any], Any] = definition.signature.convert_result
        else:
            checked, convert = list(args), _identity
        instance = self._instance
        if instance.limits:
            instance.check_queue(options.task_queue or "", f"activity {name}")
        what = f"arguments of activity {name}"
        plain = instance.codec.plain(checked, what=what, limit=instance.max_payload)
        return instance.schedule_activity(name, plain, options.to_dict(), convert)

    def llm(
        self,
        model: str,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        system: str | None = None,
        tools: Sequence[Tool | dict[str, Any] | Callable[..., Any]] | None = None,
        output: type[pydantic.BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        task_queue: str | None = None,
        retry: Retry | None = None,
        start_to_close: timedelta | float | None = None,
        schedule_to_close: timedelta | float | None = None,
    ) -> asyncio.Future[ChatResult]:
        """Ask a model (``"provider:model"`` or an alias such as ``"fast"``): a durable step.

        ``prompt`` is a string or a list of messages; ``tools`` are tool schemas or
        activity functions; ``output`` a pydantic model for structured output, returned
        in ``.parsed``. The reply is recorded; replay never calls the model again.
        Routing, fallbacks, rate limits and budgets come from the app's LLM settings.
        """
        request = ChatRequest.build(
            model,
            prompt,
            system=system,
            tools=tools,
            output=output,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return schedule_llm(
            self._instance,
            request,
            output,
            task_queue=task_queue,
            retry=retry,
            start_to_close=start_to_close,
            schedule_to_close=schedule_to_close,
        )

    async def run_tool(self, call: ToolCall, tools: Sequence[Callable[..., Any]]) -> Message:
        """Run a model's tool call as the activity of that name among ``tools``, a
        durable step; return the ``tool`` message to append to the conversation."""
        return await run_tool(self.activity, call, tools)

    async def sleep(self, duration: timedelta | float) -> None:
        """A durable timer: the run wakes up after ``duration`` even across restarts."""
        delay = seconds(duration)
        if delay is None:
            raise InvalidArgument("sleep needs a duration")
        await asyncio.sleep(delay)

    async def gather(self, *aws: Awaitable[T]) -> list[T]:
        """Wait for all of ``aws`` (run concurrently); the first failure is raised."""
        return list(await asyncio.gather(*aws))

    async def wait_for(self, aw: Awaitable[T], timeout: timedelta | float) -> T:
        """Await ``aw``, raising ``TimeoutError`` after a durable ``timeout``."""
        return await asyncio.wait_for(aw, seconds(timeout))

    # -- signals and queries --------------------------------------------------------

    @overload
    async def wait_signal(self, name: str, *, timeout: timedelta | float | None = ...) -> Any: ...

    @overload
    async def wait_signal(
        self, name: Sequence[str], *, timeout: timedelta | float | None = ...
    ) -> tuple[str, Any]: ...

    async def wait_signal(
        self, name: str | Sequence[str], *, timeout: timedelta | float | None = None
    ) -> Any:
        """Wait for a signal; return its payload (``handle.signal(name, payload)``).

        Given several names, wait for the first of any of them and return
        ``(name, payload)``. Signals that arrive while nobody waits are kept, in order
        per name, until a wait takes them; each is taken once. With ``timeout`` a
        durable timer bounds the wait and ``TimeoutError`` is raised when it fires.
        """
        names = (name,) if isinstance(name, str) else tuple(name)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise InvalidArgument(f"wait_signal needs signal names, got {name!r}")
        delay = seconds(timeout)
        instance = self._instance
        future = instance.wait_signal(names)
        try:
            if future.done() or delay is None:
                signal = await future
            else:
                signal = await asyncio.wait_for(future, delay)
        except asyncio.CancelledError:
            # Cancelled after the signal was handed over but before the code saw it:
            # keep it for the next wait, so that no signal is ever lost.
            if future.done() and not future.cancelled():
                instance.return_signal(future.result())
            raise
        if isinstance(name, str):
            return signal.payload
        return signal.name, signal.payload

    def set_query_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Answer the query ``name`` with ``handler(*args)``: a plain (not async)
        function that reads the workflow's state. It may not schedule steps, sleep or
        draw random values; its result must be JSON-compatible."""
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a query name must be a non-empty string, got {name!r}")
        if not callable(handler):
            raise InvalidArgument(f"query handler for {name!r} is not callable")
        self._instance.set_query_handler(name, handler)

    def query(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`set_query_handler`: ``@ctx.query("progress")``."""

        def register(fn: F) -> F:
            self.set_query_handler(name, fn)
            return fn

        return register

    # -- updates (updates.py) ------------------------------------------------------------

    def set_update_handler(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        validator: Callable[..., Any] | None = None,
    ) -> None:
        """Answer the update ``name`` (``handle.update(name, *args)``) with
        ``handler(*args)``, plain or async: unlike a query it may change state and await
        steps, and its return value goes back to the caller.

        ``validator(*args)``, a plain function, runs first on the live state: if it
        raises, the caller gets :class:`tether.UpdateRejected` and nothing is recorded.
        Register handlers before the workflow's first ``await``: a request for a name
        not registered when a worker looks at it is rejected.
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"an update name must be a non-empty string, got {name!r}")
        if not callable(handler):
            raise InvalidArgument(f"update handler for {name!r} is not callable")
        if validator is not None and not callable(validator):
            raise InvalidArgument(f"update validator for {name!r} is not callable")
        self._instance.updates.register(name, handler, validator)

    def update(self, name: str, *, validator: Callable[..., Any] | None = None) -> Callable[[F], F]:
        """Decorator form of :meth:`set_update_handler`: ``@ctx.update("approve")``."""

        def register(fn: F) -> F:
            self.set_update_handler(name, fn, validator=validator)
            return fn

        return register

    @property
    def updates_in_flight(self) -> int:
        """Accepted updates whose handler has not returned yet. The run closes when its
        main code returns; an update still running then fails for its caller
        (:class:`tether.UpdateFailed`)."""
        return self._instance.updates.in_flight

    # -- search attributes --------------------------------------------------------------

    @property
    def search_attributes(self) -> dict[str, Any]:
        """This run's search attributes now: those it started with, updated by upserts."""
        return decode(self._instance.search_attributes)

    def upsert_search_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set (or with ``None``, remove) search attributes of this run, to list and
        filter runs by (see ``docs/visibility.md``).

        Recorded as a step in history and applied to the store's index in the same
        transaction, so a crash neither loses nor repeats it. A value of an unsupported
        type, or of another type than the attribute has in this run, raises
        :class:`tether.InvalidArgument` here.
        """
        self._instance.refuse_in_query("upsert search attributes")
        self._instance.upsert_search_attributes(encode(attributes, removals=True))

    # -- child runs and continue-as-new (children.py) ------------------------------------

    def start_child(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str | None = None,
        task_queue: str | None = None,
        parent_close_policy: str = "terminate",
        search_attributes: Mapping[str, Any] | None = None,
    ) -> ChildHandle[Any]:
        """Start a child run of ``workflow`` in this namespace; await the handle later.

        ``id`` defaults to one derived from this run and the step. When this run closes
        first, ``parent_close_policy`` applies to the child: ``"terminate"`` (default),
        ``"cancel"`` (a cancellation request) or ``"abandon"`` (it runs on). A child
        does not inherit this run's search attributes; give it its own.
        """
        return start_child(
            self._instance,
            workflow,
            args,
            id=id,
            task_queue=task_queue,
            parent_close_policy=parent_close_policy,
            search_attributes=search_attributes,
        )

    async def child(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str | None = None,
        task_queue: str | None = None,
        parent_close_policy: str = "terminate",
        search_attributes: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run a child workflow and return its result; a failed, cancelled or terminated
        child raises :class:`tether.ChildWorkflowError` with the cause chained."""
        handle = self.start_child(
            workflow,
            *args,
            id=id,
            task_queue=task_queue,
            parent_close_policy=parent_close_policy,
            search_attributes=search_attributes,
        )
        return await handle

    def continue_as_new(self, *args: Any) -> NoReturn:
        """End this run and go on as a new run of the same workflow id with ``args``, in
        one atomic step; signals not taken yet reach the new run first. Raises (a
        ``BaseException``): call it from the workflow's own code, not a task it spawned."""
        continue_as_new(self._instance, args)

    @property
    def history_length(self) -> int:
        """How many events the run's history holds at this point of the code."""
        return self._instance.history_length

    @property
    def should_continue_as_new(self) -> bool:
        """True once the history passed the worker's ``continue_as_new_after`` events:
        a hint to call :meth:`continue_as_new` at the next safe point."""
        return self._instance.history_length >= self._instance.history_limit


def _identity(value: Any) -> Any:
    return value


_NO_OPTIONS = ActivityOptions()


@functools.lru_cache(maxsize=1024)
def _on_queue(options: ActivityOptions, queue: str) -> ActivityOptions:
    return options.merged(task_queue=queue)
