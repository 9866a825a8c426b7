"""A worker renews the leases of its running attempts. An attempt whose code is done
is no longer renewed nor stopped for a lost lease: its outcome is being written, and
that write, when it lands, deletes the attempt's task and leases the run's next step
to this worker. A renewal that found the task gone used to stop the attempt midway
through that write, so the next step, leased to the worker, never started until its
lease ran out (and the slot reserved for it was never given back)."""

from __future__ import annotations

import asyncio
from typing import Any

import tether
from tests.conftest import AppFactory


async def test_a_renewal_during_an_outcome_write_does_not_stop_the_next_step(
    make_app: AppFactory,
) -> None:
    app = make_app()
    attempts: dict[str, int] = {}
    release = asyncio.Event()

    @app.activity
    async def hold() -> str:
        # A long attempt: the worker renews leases as long as one runs.
        await release.wait()
        return "held"

    @app.activity
    async def step(name: str) -> str:
        attempts[name] = tether.activity_info().attempt
        if name == "b":
            release.set()
        return name

    @app.workflow
    async def holding(ctx: tether.Context) -> str:
        return str(await ctx.activity(hold))

    @app.workflow
    async def two_steps(ctx: tether.Context) -> list[str]:
        return [await ctx.activity(step, "a"), await ctx.activity(step, "b")]

    store = app.store
    real_advance, real_extend = store.advance_after_activity, store.extend_leases
    written, renewed_after = asyncio.Event(), asyncio.Event()

    async def advance(task: Any, outcome: Any, **options: Any) -> Any:
        result = await real_advance(task, outcome, **options)
        if task.name == "step" and task.args == ["a"]:
            # Step a's outcome is written and step b leased to this worker; hold the
            # write's caller until a renewal begun after it has come back.
            written.set()
            await renewed_after.wait()
        return result

    async def extend(tasks: Any, lease: float) -> list[int]:
        after = written.is_set()
        lost = await real_extend(tasks, lease)
        if after:
            renewed_after.set()
        return lost

    store.advance_after_activity = advance  # type: ignore[method-assign]
    store.extend_leases = extend  # type: ignore[method-assign]
    # Renewals every 0.1 s; a step leased and never started would wait out 0.3 s.
    async with app, app.worker(activity_lease=0.3):
        held = await app.client.start(holding)
        result = await asyncio.wait_for(app.client.execute(two_steps), 30)
        assert await asyncio.wait_for(held.result(), 30) == "held"
    assert result == ["a", "b"]
    assert renewed_after.is_set()
    # Started when its lease was written, not taken again after the lease ran out.
    assert attempts == {"a": 1, "b": 1}
