"""Activity retries, timeouts and heartbeats; failures as typed errors with causes."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import tether
from tests.conftest import AppFactory
from tether.history import EventType

FAST = tether.Retry(initial_interval=0.01, backoff=2.0, max_interval=0.05)


async def test_retry_until_success_with_stable_idempotency_key(make_app: AppFactory) -> None:
    app = make_app()
    seen: list[tuple[int, str]] = []

    @app.activity(retry=FAST)
    async def flaky() -> str:
        info = tether.activity_info()
        seen.append((info.attempt, info.idempotency_key))
        if info.attempt < 3:
            raise ConnectionError("provider said 429")
        return "ok"

    @app.workflow
    async def wf(ctx: tether.Context) -> str:
        return await ctx.activity(flaky)

    async with app, app.worker():
        handle = await app.client.start(wf)
        assert await handle.result(timeout=30) == "ok"
        history = await handle.history()
    assert [a for a, _ in seen] == [1, 2, 3]
    assert len({key for _, key in seen}) == 1
    started = next(e for e in history if e.type == EventType.ACTIVITY_STARTED)
    assert started.attrs["attempt"] == 3
    assert started.attrs["last_failure"]["type"] == "ConnectionError"


async def test_exhausted_retries_reach_the_workflow_with_the_cause(make_app: AppFactory) -> None:
    app = make_app()

    @app.activity(retry=tether.Retry(initial_interval=0.01, max_attempts=2))
    async def broken(x: int) -> int:
        try:
            raise KeyError(x)
        except KeyError as exc:
            raise ValueError(f"bad input {x}") from exc

    @app.workflow
    async def wf(ctx: tether.Context) -> str:
        try:
            await ctx.activity(broken, 7)
        except tether.ActivityError as err:
            cause = err.__cause__
            assert isinstance(cause, tether.ApplicationError)
            assert isinstance(cause.__cause__, tether.ApplicationError)
            return f"{err.attempt}:{cause.type}:{cause.message}:{cause.__cause__.type}"
        return "unreachable"

    async with app, app.worker():
        assert await app.client.execute(wf, timeout=30) == "2:ValueError:bad input 7:KeyError"


async def test_non_retryable_errors_fail_at_once(make_app: AppFactory) -> None:
    app = make_app()
    attempts: Counter[str] = Counter()

    @app.activity(retry=tether.Retry(initial_interval=0.01, non_retryable=["PermissionError"]))
    async def listed() -> None:
        attempts["listed"] += 1
        raise PermissionError("no")

    @app.activity(retry=FAST)
    async def flagged() -> None:
        attempts["flagged"] += 1
        raise tether.ApplicationError("invalid card", {"last4": "4242"}, non_retryable=True)

    @app.workflow
    async def wf(ctx: tether.Context, which: str) -> None:
        await ctx.activity(listed if which == "listed" else flagged)

    async with app, app.worker():
        for which in ("listed", "flagged"):
            with pytest.raises(tether.WorkflowFailed) as failed:
                await app.client.execute(wf, which, timeout=30)
            activity_error = failed.value.__cause__
            assert isinstance(activity_error, tether.ActivityError)
    assert attempts == {"listed": 1, "flagged": 1}
    cause = activity_error.__cause__
    assert isinstance(cause, tether.ApplicationError) and cause.details == [{"last4": "4242"}]


async def test_start_to_close_timeout_retries_then_times_out(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.activity(retry=tether.Retry(initial_interval=0.01, max_attempts=2), start_to_close=0.1)
    async def hangs() -> None:
        attempts.append(tether.activity_info().attempt)
        await asyncio.Event().wait()

    @app.workflow
    async def wf(ctx: tether.Context) -> None:
        await ctx.activity(hangs)

    async with app, app.worker():
        handle = await app.client.start(wf)
        with pytest.raises(tether.WorkflowFailed) as failed:
            await handle.result(timeout=30)
        history = await handle.history()
    assert attempts == [1, 2]
    timeout = failed.value.__cause__.__cause__  # type: ignore[union-attr]
    assert isinstance(timeout, tether.TimeoutFailure) and timeout.kind == "start_to_close"
    assert any(e.type == EventType.ACTIVITY_TIMED_OUT for e in history)


async def test_heartbeat_timeout_and_details_for_the_next_attempt(make_app: AppFactory) -> None:
    app = make_app()
    resumed_from: list[object] = []

    @app.activity(retry=FAST, heartbeat=0.3)
    async def crawl(pages: int) -> int:
        info = tether.activity_info()
        resumed_from.append(info.heartbeat_details)
        start = info.heartbeat_details or 0
        for page in range(start, pages):
            tether.heartbeat(page)
            if info.attempt == 1 and page == 3:
                await asyncio.Event().wait()  # stalls: no more heartbeats
        return pages

    @app.workflow
    async def wf(ctx: tether.Context) -> int:
        return await ctx.activity(crawl, 6)

    async with app, app.worker():
        assert await app.client.execute(wf, timeout=30) == 6
    assert resumed_from == [None, 3]


async def test_schedule_to_close_bounds_all_attempts(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.activity(retry=tether.Retry(initial_interval=0.05, backoff=1.0), schedule_to_close=0.3)
    async def always_fails() -> None:
        attempts.append(1)
        raise RuntimeError("down")

    @app.workflow
    async def wf(ctx: tether.Context) -> None:
        await ctx.activity(always_fails)

    async with app, app.worker():
        with pytest.raises(tether.WorkflowFailed):
            await app.client.execute(wf, timeout=30)
    assert 2 <= len(attempts) <= 7


async def test_workflow_exception_fails_the_run(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def bad(ctx: tether.Context) -> None:
        raise tether.ApplicationError("cannot plan", type="PlanningError")

    async with app, app.worker():
        handle = await app.client.start(bad)
        with pytest.raises(tether.WorkflowFailed) as failed:
            await handle.result(timeout=30)
        run = await handle.describe()
    assert run.status == tether.RunStatus.FAILED
    cause = failed.value.__cause__
    assert isinstance(cause, tether.ApplicationError) and cause.type == "PlanningError"
