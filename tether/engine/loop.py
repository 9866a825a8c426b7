"""A deterministic asyncio event loop that runs one workflow's code.

Workflow code is ordinary ``async`` Python, so ``asyncio.gather``, ``asyncio.wait``,
``asyncio.Event`` and ``asyncio.sleep`` work in it. This loop never touches a clock or
a selector: it runs ready callbacks in FIFO order until none is left, and turns
``call_later`` into a durable timer request that the owning instance records. Time is
whatever the instance says it is (the timestamp of the event being applied).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar

__all__ = ["DeterministicLoop", "TimerSink"]

T = TypeVar("T")


class TimerSink(Protocol):
    def start_timer(self, delay: float, handle: DurableTimerHandle) -> None: ...
    def cancel_timer(self, handle: DurableTimerHandle) -> None: ...


class DurableTimerHandle(asyncio.TimerHandle):
    """A timer whose firing is an event in history, not a wall-clock callback."""

    __slots__ = ("_sink", "step")

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: DeterministicLoop,
        context: contextvars.Context | None,
        sink: TimerSink,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._sink = sink
        self.step = 0

    def cancel(self) -> None:
        if not self.cancelled():
            self._sink.cancel_timer(self)
        super().cancel()


class DeterministicLoop(asyncio.AbstractEventLoop):
    """Runs callbacks in a fixed order; never blocks, never reads a clock."""

    def __init__(self, sink: TimerSink) -> None:
        self._ready: deque[asyncio.Handle] = deque()
        self._sink = sink
        self._now = 0.0
        self._errors: list[BaseException] = []

    # -- driving ------------------------------------------------------------------

    def set_time(self, now: float) -> None:
        self._now = now

    def run_until_idle(self) -> None:
        """Run ready callbacks until none is left, as the running loop of this thread."""
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            asyncio.events._set_running_loop(outer)

    def take_errors(self) -> list[BaseException]:
        errors, self._errors = self._errors, []
        return errors

    # -- the parts of the asyncio loop API that workflow code reaches --------------

    def time(self) -> float:
        return self._now

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = DurableTimerHandle(self._now + delay, callback, args, self, context, self._sink)
        self._sink.start_timer(max(delay, 0.0), handle)
        return handle

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self._now, callback, *args, context=context)

    def fire(self, handle: asyncio.TimerHandle) -> None:
        if not handle.cancelled():
            self._ready.append(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self._errors.append(exc)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def close(self) -> None:
        self._ready.clear()

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass
