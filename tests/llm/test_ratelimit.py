"""Rate limits of ours, kept in the store: short waits happen in place, a wait past
the inline limit becomes a durable wait (on every store). The limits themselves are
tested in tests/store/test_llm_limits.py, across processes in
tests/scaleout/test_llm_limits.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest

import tether
from tests.conftest import AppFactory
from tether.history import EventType
from tether.llm import Limits, LLMConfig, SimServer, StepInfo
from tether.llm.ratelimit import Throttled, admit
from tether.store.llm_limits import CallLimits, CallStart

from .conftest import providers, settings


def _start(call: int, limits: CallLimits, estimate: int = 10) -> CallStart:
    step = StepInfo("default", "w1", "r1", step=1, attempt=1)
    return CallStart(step.record(call, "oa", "oa:m"), estimate, 0.0, limits)


async def test_short_waits_happen_in_place(make_app: AppFactory) -> None:
    limits = CallLimits(requests_per_minute=600, burst=1)  # one call every 0.1 s
    async with make_app() as app:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for call in range(3):
            assert (await admit(app.store, _start(call, limits), 1.0)).admitted
        waited = loop.time() - started
    assert 0.15 < waited < 1.0, "two waits of 0.1 s, in place"


async def test_long_waits_are_throttled(make_app: AppFactory) -> None:
    limits = CallLimits(requests_per_minute=60, burst=1)
    async with make_app() as app:
        assert (await admit(app.store, _start(0, limits), 0.0)).admitted
        with pytest.raises(Throttled) as caught:
            await admit(app.store, _start(1, limits), 0.0)
    assert 0.9 < caught.value.retry_after <= 1.0 and "requests per minute" in caught.value.why


async def test_a_full_concurrency_cap_is_polled_then_throttled(make_app: AppFactory) -> None:
    limits = CallLimits(concurrency=1)
    async with make_app() as app:
        held = _start(0, limits)
        assert (await admit(app.store, held, 0.0)).admitted
        with pytest.raises(Throttled) as caught:
            await admit(app.store, _start(1, limits), 0.1)
        assert caught.value.why == "1 call(s) in flight"
        assert 0 < caught.value.retry_after <= 1.5
        waiting = asyncio.create_task(admit(app.store, _start(1, limits), 10.0))
        await app.store.finish_llm_call(held.record, estimate=10)
        assert (await waiting).admitted, "the waiting call took the freed slot in place"


@pytest.mark.parametrize(
    "bad",
    [
        {"requests_per_minute": 0},
        {"tokens_per_minute": -5},
        {"concurrency": 0},
        {"burst": 0.5},
        {"max_inline_wait": -1},
    ],
)
def test_limits_that_could_never_admit_a_call_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Limits(**bad)
    assert next(iter(bad)) in str(caught.value)


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


async def test_a_full_concurrency_cap_waits_durably(make_app: AppFactory, sim: SimServer) -> None:
    limited = providers(sim, limits=Limits(concurrency=1, max_inline_wait=0))
    app = make_app(llm=settings(sim, providers=limited, aliases={"fast": ["oa:m"]}))

    @app.workflow
    async def both(ctx: tether.Context) -> list[str]:
        replies = await ctx.gather(ctx.llm("fast", "one"), ctx.llm("fast", "two"))
        return [r.model for r in replies]

    sim.slow("m", delay=0.3, times=2)
    async with app, app.worker():
        handle = await app.client.start(both, id="rl-2")
        assert await handle.result(timeout=30) == ["oa:m", "oa:m"]
        history = await handle.history()
    retried = [
        e.attrs for e in history if e.type == EventType.ACTIVITY_STARTED and e.attrs["attempt"] > 1
    ]
    assert retried, "one call found the slot taken and came back later"
    assert "call(s) in flight" in str(retried[0]["last_failure"])
    assert sim.served("m") == 2


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"providers": {"oa:1": {"kind": "sim"}}}, "must not contain ':'"),
        ({"providers": {"oa\x00": {"kind": "sim"}}}, "provider's name must not contain the NUL"),
        ({"providers": {"oa": {"kind": "sim", "task_queue": ""}}}, "task queue of provider"),
        ({"providers": {"oa": {"kind": "sim"}}, "aliases": {"f" * 1001: ["oa:m"]}}, "1000 bytes"),
        ({"providers": {"oa": {"kind": "sim"}}, "aliases": {"f": ["oa:m\x00"]}}, "alias 'f'"),
        ({"prices": {"m\x00": {"input": 1, "output": 1}}}, "priced model"),
        ({"task_queue": "llm\x00"}, "LLM steps' task queue"),
        ({"namespaces": {"t": {"providers": {"a:b": {"kind": "sim"}}}}}, "must not contain ':'"),
    ],
)
def test_names_in_the_llm_config_are_text_every_store_can_hold(
    config: dict[str, Any], names: str
) -> None:
    """Provider, alias, model and queue names key the usage ledger and task rows."""
    with pytest.raises(pydantic.ValidationError, match=names):
        LLMConfig(**config)
