"""Running one activity attempt: arguments, timeouts, heartbeats, and its outcome."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..codec import Codec
from ..definitions import ActivityDefinition
from ..errors import (
    ActivityError,
    ApplicationError,
    CancelledFailure,
    Failure,
    InvalidArgument,
    TimeoutFailure,
    UnknownActivityType,
    failure_to_dict,
)
from ..history import EventType
from ..policy import ActivityOptions
from ..store import ActivityOutcome, ActivityTask
from ..tenancy import NO_POLICIES, NamespacePolicies
from .activity_context import ActivityInfo, bind

__all__ = ["Attempt", "Verdict", "run_attempt"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after an attempt: finish with ``outcome``, or retry at ``retry_at``."""

    outcome: ActivityOutcome | None = None
    retry_at: float = 0.0
    failure: dict[str, Any] | None = None


@dataclass(slots=True)
class Attempt:
    task: ActivityTask
    options: ActivityOptions
    info: ActivityInfo
    # True while the activity's own code runs.
    running: bool = False
    # Set (by the worker, which then cancels the attempt's task) when the run asked its
    # activities to stop: the cancellation becomes a final, non-retryable failure.
    stopping: bool = False
    # The namespace's retry policy for activities without one, and payload limit.
    namespace: NamespacePolicies = NO_POLICIES


def _deadline(task: ActivityTask, options: ActivityOptions) -> float | None:
    if options.schedule_to_close is None:
        return None
    return task.scheduled_at + options.schedule_to_close


def _error_type(exc: BaseException) -> str:
    return exc.type if isinstance(exc, ApplicationError) else type(exc).__name__


def judge(attempt: Attempt, exc: BaseException) -> Verdict:
    """Retry per the policy, or fail for good with the error as the cause."""
    task, options = attempt.task, attempt.options
    timed_out = isinstance(exc, TimeoutFailure)
    non_retryable = (
        isinstance(exc, CancelledFailure | InvalidArgument)
        # ApplicationError, ModelError and BudgetExceeded say so themselves.
        or (isinstance(exc, Failure) and getattr(exc, "non_retryable", False) is True)
    )
    retry = options.retry or attempt.namespace.retry
    delay = retry.delay(task.attempt)
    # A failure that knows when to try again (a model provider's 429 with Retry-After)
    # sets that time: still a durable wait that holds no worker slot.
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, Failure) and isinstance(retry_after, int | float) and retry_after >= 0:
        delay = float(retry_after)
    deadline = _deadline(task, options)
    out_of_time = deadline is not None and time.time() + delay >= deadline
    if retry.gives_up(task.attempt, _error_type(exc), non_retryable) or out_of_time:
        error = ActivityError(
            f"activity {task.name} (step {task.step}) failed after {task.attempt} attempt(s)",
            activity=task.name,
            activity_id=task.step,
            attempt=task.attempt,
            cause=exc,
        )
        kind = EventType.ACTIVITY_TIMED_OUT if timed_out else EventType.ACTIVITY_FAILED
        return Verdict(ActivityOutcome(kind, failure=failure_to_dict(error)))
    return Verdict(retry_at=time.time() + delay, failure=failure_to_dict(exc))


async def run_attempt(
    attempt: Attempt,
    definition: ActivityDefinition | None,
    codec: Codec,
    threads: ThreadPoolExecutor,
    beat: Callable[[Any], None],
) -> Verdict:
    """Run the attempt to its verdict; never raises (except cancellation)."""
    task, options = attempt.task, attempt.options
    try:
        if task.previous_lost:
            # The last attempt's worker died or hung past its lease: that attempt
            # timed out, and it counts against the retry policy like any other.
            verdict = judge(
                Attempt(
                    _replace_attempt(task, task.attempt - 1),
                    options,
                    attempt.info,
                    namespace=attempt.namespace,
                ),
                TimeoutFailure(kind="start_to_close"),
            )
            if verdict.outcome is not None:
                return verdict
        if definition is None:
            raise UnknownActivityType(f"no activity named {task.name!r} on this worker")
        deadline = _deadline(task, options)
        limits = [
            t
            for t in (
                options.start_to_close,
                None if deadline is None else max(deadline - time.time(), 0.0),
            )
            if t is not None
        ]
        timeout = min(limits) if limits else None
        args = definition.signature.check_args(task.args)
        attempt.info._beat = (asyncio.get_running_loop(), beat)
        # Each attempt runs in its own asyncio task, so this binding ends with it.
        bind(attempt.info)
        if definition.is_async:
            work = definition.fn(*args)
        else:
            work = _in_thread(definition, args, threads)
        attempt.running = True
        try:
            if timeout is None and options.heartbeat is None:
                result = await work  # nothing to supervise: no task around it
            else:
                result = await _supervise(work, timeout, options.heartbeat, attempt.info)
        finally:
            attempt.running = False
        what = f"result of activity {task.name}"
        plain = codec.plain(result, what=what, limit=attempt.namespace.max_payload)
        return Verdict(ActivityOutcome(EventType.ACTIVITY_COMPLETED, result=plain))
    except asyncio.CancelledError:
        if not attempt.stopping:
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        stopped = CancelledFailure(
            "the activity was stopped: its run was asked to cancel",
            activity=task.name,
            step=task.step,
        )
        return judge(attempt, stopped)
    except BaseException as exc:
        return judge(attempt, exc)


def _replace_attempt(task: ActivityTask, attempt: int) -> ActivityTask:
    copy = ActivityTask(**{f: getattr(task, f) for f in task.__dataclass_fields__})
    copy.attempt = attempt
    return copy


def _in_thread(
    definition: ActivityDefinition, args: list[Any], threads: ThreadPoolExecutor
) -> asyncio.Future[Any]:
    """A plain function's call, on the worker's threads, in a copy of this context."""
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, definition.fn, *args)
    return asyncio.get_running_loop().run_in_executor(threads, call)


async def _supervise(
    work: Any, timeout: float | None, heartbeat: float | None, info: ActivityInfo
) -> Any:
    """Await ``work`` under the start-to-close and heartbeat timeouts."""
    task = asyncio.ensure_future(work)
    started = time.monotonic()
    try:
        while True:
            waits = []
            if timeout is not None:
                waits.append(started + timeout - time.monotonic())
            if heartbeat is not None:
                waits.append(info.last_beat + heartbeat - time.monotonic())
            wait = max(min(waits), 0.0) if waits else None
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
            now = time.monotonic()
            if timeout is not None and now >= started + timeout:
                raise TimeoutFailure(kind="start_to_close", activity=info.name, step=info.step)
            if heartbeat is not None and now >= info.last_beat + heartbeat:
                raise TimeoutFailure(kind="heartbeat", activity=info.name, step=info.step)
    finally:
        if not task.done():
            task.cancel()
