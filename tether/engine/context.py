"""``Context``: everything workflow code may use besides plain computation.

Time, randomness and ids come from here so that replay sees the same values; I/O
happens only in activities, which the context schedules as durable steps.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..definitions import activity_name
from ..errors import InvalidArgument
from ..policy import ActivityOptions, Retry, seconds

if TYPE_CHECKING:
    from .instance import RunInfo, WorkflowInstance

__all__ = ["Context"]

T = TypeVar("T")


class _ReplayFilter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stays silent while the run is replaying history."""

    def __init__(self, instance: WorkflowInstance) -> None:
        super().__init__(logging.getLogger("tether.workflow"), {})
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

    # -- deterministic values -------------------------------------------------------

    def now(self) -> datetime:
        """The time of the event being processed (the same on replay)."""
        return datetime.fromtimestamp(self._instance.loop.time(), UTC)

    def random(self) -> float:
        """A float in [0, 1) from the run's seeded generator."""
        return self._instance.random.random()

    def uuid(self) -> uuid.UUID:
        """A version-4 UUID from the run's seeded generator."""
        return uuid.UUID(int=self._instance.random.getrandbits(128), version=4)

    def side_effect(self, fn: Callable[[], T], *, name: str = "side_effect") -> T:
        """Run ``fn`` once and record its value; replay returns the recorded value."""
        value: T = self._instance.record_marker(name, fn)
        return value

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
        base = definition.options if definition else ActivityOptions()
        options = base.merged(
            task_queue=task_queue,
            retry=retry,
            schedule_to_close=schedule_to_close,
            start_to_close=start_to_close,
            heartbeat=heartbeat,
        )
        if options.task_queue is None:
            options = options.merged(task_queue=self._instance.info.task_queue)
        if definition is not None:
            checked = definition.signature.check_args(args)
            convert: Callable[[Any], Any] = definition.signature.convert_result
        else:
            checked, convert = list(args), _identity
        plain = self._instance.codec.plain(checked, what=f"arguments of activity {name}")
        return self._instance.schedule_activity(name, plain, options.to_dict(), convert)

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


def _identity(value: Any) -> Any:
    return value
