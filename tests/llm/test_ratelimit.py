"""Rate limits of ours: requests and tokens per minute, calls in flight; a wait past
the inline limit becomes a durable wait (on every store)."""

from __future__ import annotations

import asyncio

import pytest

import tether
from tests.conftest import AppFactory
from tether.history import EventType
from tether.llm import Limits, SimServer
from tether.llm.ratelimit import Limiter, Throttled

from .conftest import providers, settings


async def test_requests_per_minute() -> None:
    limiter = Limiter(Limits(requests_per_minute=60, max_inline_wait=0))
    for _ in range(60):  # a minute's worth at once, then one a second
        (await limiter.acquire(10)).settle(10)
    with pytest.raises(Throttled) as caught:
        await limiter.acquire(10)
    assert 0.9 < caught.value.retry_after <= 1.0 and "requests per minute" in caught.value.why


async def test_short_waits_happen_in_place() -> None:
    limiter = Limiter(Limits(requests_per_minute=600, max_inline_wait=1.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        (await limiter.acquire(1)).release()
    # The bucket starts full (600); no wait at all here.
    assert loop.time() - started < 0.5


async def test_tokens_per_minute_charge_the_real_count() -> None:
    limiter = Limiter(Limits(tokens_per_minute=1000, max_inline_wait=0))
    (await limiter.acquire(100)).settle(990)  # the call used far more than estimated
    with pytest.raises(Throttled) as caught:
        await limiter.acquire(100)
    assert "tokens per minute" in caught.value.why


async def test_concurrency_cap() -> None:
    limiter = Limiter(Limits(concurrency=1, max_inline_wait=0.05))
    held = await limiter.acquire(1)
    with pytest.raises(Throttled):
        await limiter.acquire(1)
    held.release()
    (await limiter.acquire(1)).release()


async def test_a_providers_429_holds_its_other_calls() -> None:
    limiter = Limiter(Limits(max_inline_wait=0))
    limiter.block(5.0)
    with pytest.raises(Throttled) as caught:
        await limiter.acquire(1)
    assert caught.value.retry_after > 4


async def test_over_the_limit_a_step_waits_durably(make_app: AppFactory, sim: SimServer) -> None:
    limits = Limits(requests_per_minute=60, burst=1, max_inline_wait=0)
    limited = providers(sim, limits=limits)
    app = make_app(llm=settings(sim, providers=limited, aliases={"fast": ["oa:m"]}))

    @app.workflow
    async def twice(ctx: tether.Context) -> list[str]:
        return [(await ctx.llm("fast", f"call {i}")).model for i in range(2)]

    async with app, app.worker():
        handle = await app.client.start(twice, id="rl-1")
        assert await handle.result(timeout=30) == ["oa:m", "oa:m"]
        history = await handle.history()
    attempts = [e.attrs["attempt"] for e in history if e.type == EventType.ACTIVITY_STARTED]
    assert attempts == [1, 2], "the second call was throttled once, then retried"
    second = [e for e in history if e.type == EventType.ACTIVITY_STARTED][1]
    assert "requests per minute" in str(second.attrs["last_failure"])
    assert sim.served("m") == 2, "a throttled call never reached the provider"
