"""Routing on every store: aliases and fallback chains, 429 Retry-After as a durable
wait, refusals, budgets, per-namespace settings, provider task queues, and the
Anthropic and Gemini adapters through the whole step."""

from __future__ import annotations

import time

import pydantic
import pytest

import tether
from tests.conftest import AppFactory
from tether.history import EventType
from tether.llm import Budget, NamespaceLLM, Price, ProviderConfig, SimServer

from .conftest import FAST_RETRY, llm_results, providers, settings, until


class Answer(pydantic.BaseModel):
    city: str
    days: int


@pytest.mark.parametrize("fault", ["429", "503", "timeout"])
async def test_fallback_chain_moves_on_and_records_every_call(
    make_app: AppFactory, sim: SimServer, fault: str
) -> None:
    app = make_app(
        llm=settings(sim, timeout=0.5, aliases={"fast": ["oa:primary", "an:backup"]}),
    )
    if fault == "429":
        sim.fail("primary", status=429, retry_after=30)
    elif fault == "503":
        sim.fail("primary", status=503)
    else:
        sim.slow("primary", delay=2.0)

    @app.workflow
    async def ask(ctx: tether.Context) -> dict[str, object]:
        reply = await ctx.llm("fast", "hello")
        return {"model": reply.model, "attempts": [a.outcome for a in reply.attempts]}

    async with app, app.worker():
        out = await app.client.execute(ask, timeout=30)
        rows = await app.client.usage(group_by=["model", "outcome"])
    expected = {"429": "rate_limited", "503": "server_error", "timeout": "timeout"}[fault]
    assert out == {"model": "an:backup", "attempts": [expected, "ok"]}
    by_model = {r.group["model"]: r for r in rows}
    assert by_model["oa:primary"].group["outcome"] == expected
    assert by_model["oa:primary"].cost_usd == 0 and by_model["oa:primary"].failed == 1
    assert by_model["an:backup"].calls == 1 and by_model["an:backup"].failed == 0


async def test_429_retry_after_is_a_durable_wait_that_frees_the_worker_slot(
    make_app: AppFactory, sim: SimServer
) -> None:
    app = make_app(llm=settings(sim))
    sim.fail("busy", status=429, retry_after=1.5)

    @app.activity
    async def quick() -> float:
        return time.time()

    @app.workflow
    async def ask(ctx: tether.Context) -> str:
        return (await ctx.llm("oa:busy", "hello")).model

    @app.workflow
    async def other(ctx: tether.Context) -> float:
        return await ctx.activity(quick)

    # One activity slot: the waiting LLM step must not hold it.
    async with app, app.worker(max_activities=1):
        started = time.time()
        handle = await app.client.start(ask, id="busy-1")
        await until(lambda: sim.served("busy") == 1, "the 429")
        other_done = await app.client.execute(other, timeout=30)
        assert await handle.result(timeout=30) == "oa:busy"
        history = await handle.history()
    answered = next(c for c in sim.calls if c.model == "busy" and c.status == 200)
    assert sim.served("busy") == 2 and answered
    started_event = next(e for e in history if e.type == EventType.ACTIVITY_STARTED)
    assert started_event.attrs["attempt"] == 2
    # The one slot was free while the LLM step waited out its Retry-After: the other
    # step ran before the LLM step's second attempt was recorded.
    assert other_done < started_event.ts, "another step ran while the LLM step waited"
    assert "429" in str(started_event.attrs["last_failure"])
    completed = next(e for e in history if e.type == EventType.ACTIVITY_COMPLETED)
    assert completed.ts - started >= 1.5, "the next attempt waited for Retry-After"


async def test_a_refused_request_fails_at_once(make_app: AppFactory, sim: SimServer) -> None:
    app = make_app(llm=settings(sim, aliases={"fast": ["oa:m", "an:other"]}))
    sim.fail("m", status=400, message="bad schema")

    @app.workflow
    async def ask(ctx: tether.Context) -> str:
        return (await ctx.llm("fast", "hello")).text

    async with app, app.worker():
        with pytest.raises(tether.WorkflowFailed) as caught:
            await app.client.execute(ask, timeout=30)
    activity_error = caught.value.__cause__
    assert isinstance(activity_error, tether.ActivityError)
    assert isinstance(activity_error.__cause__, tether.ModelError)
    assert "bad schema" in str(activity_error.__cause__)
    assert sim.served("m") == 1 and sim.served("other") == 0, "no retry, no fallback"


async def test_every_model_down_retries_then_fails(make_app: AppFactory, sim: SimServer) -> None:
    app = make_app(llm=settings(sim, aliases={"fast": ["oa:a", "gm:b"]}))
    app.configure_llm(app.llm.config if app.llm else settings(sim), retry=FAST_RETRY)
    sim.fail("a", status=500, times=10)
    sim.fail("b", status=503, times=10)

    @app.workflow
    async def ask(ctx: tether.Context) -> str:
        return (await ctx.llm("fast", "hello")).text

    async with app, app.worker():
        with pytest.raises(tether.WorkflowFailed) as caught:
            await app.client.execute(ask, timeout=30)
        rows = await app.client.usage(group_by=["outcome"])
    assert isinstance(caught.value.__cause__, tether.ActivityError)
    assert caught.value.__cause__.attempt == 3
    assert sim.served("a") == 3 and sim.served("b") == 3
    assert [(r.group["outcome"], r.calls) for r in rows] == [("server_error", 6)]


async def test_budget_exceeded_fails_new_calls(make_app: AppFactory, sim: SimServer) -> None:
    app = make_app(
        llm=settings(
            sim,
            prices={"oa:m": Price(input=1.0, output=1.0)},
            budget=Budget(usd=0.0001, period="day"),
        )
    )

    @app.workflow
    async def spend(ctx: tether.Context) -> str:
        # Its reservation (a few input tokens, 20 output at most) fits the budget.
        await ctx.llm("oa:m", "first call fits the budget", max_tokens=20)
        try:
            # Up to 512 output tokens could take the spending past the budget.
            await ctx.llm("oa:m", "second call does not")
        except tether.ActivityError as exc:
            assert isinstance(exc.__cause__, tether.BudgetExceeded)
            return exc.__cause__.code
        return "not refused"

    async with app, app.worker():
        assert await app.client.execute(spend, timeout=30) == "budget_exceeded"
    assert sim.served("m") == 1


async def test_settings_per_namespace(make_app: AppFactory, sim: SimServer) -> None:
    base = providers(sim)
    config = settings(
        sim,
        providers={"oa": base["oa"], "nokey": ProviderConfig(kind="anthropic", base_url=sim.url)},
        aliases={"fast": ["oa:shared-model"]},
        namespaces={
            "acme": NamespaceLLM(aliases={"fast": ["gm:acme-model"]}, providers={"gm": base["gm"]}),
        },
    )
    app = make_app(namespace="acme", llm=config)

    @app.workflow
    async def ask(ctx: tether.Context, model: str) -> str:
        return (await ctx.llm(model, "hello")).model

    async with app:
        await app.client.namespaces.create("acme")
        async with app.worker(namespaces=["acme", "default"]):
            assert await app.client.execute(ask, "fast", timeout=30) == "gm:acme-model"
            other = await app.client.start(ask, "fast", namespace="default")
            assert await other.result(timeout=30) == "oa:shared-model"
            with pytest.raises(tether.WorkflowFailed) as caught:
                await app.client.execute(ask, "nokey:m", timeout=30)
            with pytest.raises(tether.WorkflowFailed) as unknown:
                await app.client.execute(ask, "nonsense", timeout=30)
    assert "no API key" in str(caught.value.__cause__.__cause__)  # type: ignore[union-attr]
    assert "neither an alias" in str(unknown.value.__cause__.__cause__)  # type: ignore[union-attr]


async def test_a_provider_routes_its_calls_to_a_task_queue(
    make_app: AppFactory, sim: SimServer
) -> None:
    routed = providers(sim, task_queue="llm-keys")["oa"]
    app = make_app(llm=settings(sim, providers={"oa": routed}, aliases={"fast": ["oa:m"]}))

    @app.workflow
    async def ask(ctx: tether.Context) -> str:
        return (await ctx.llm("fast", "hello")).model

    async with app, app.worker():
        handle = await app.client.start(ask, id="routed")
        assert await handle.result(timeout=30) == "oa:m"
        history = await handle.history()
    scheduled = next(e for e in history if e.type == EventType.ACTIVITY_SCHEDULED)
    assert scheduled.attrs["options"]["task_queue"] == "llm-keys"


@pytest.mark.parametrize("provider", ["an", "gm"])
async def test_anthropic_and_gemini_through_the_step(
    make_app: AppFactory, sim: SimServer, provider: str
) -> None:
    app = make_app(llm=settings(sim))

    @app.activity
    async def forecast(city: str) -> str:
        """The weather forecast for a city."""
        return f"sunny in {city}"

    @app.workflow
    async def plan(ctx: tether.Context) -> dict[str, object]:
        model = f"{provider}:m-{provider}"
        messages = [tether.llm.Message.user("forecast for Paris")]
        reply = await ctx.llm(model, messages, tools=[forecast], system="Use tools.")
        messages.append(reply.message())
        for call in reply.tool_calls:
            messages.append(await ctx.run_tool(call, [forecast]))
        final = await ctx.llm(model, messages, tools=[forecast])
        shaped = await ctx.llm(model, "Paris for 3 days", output=Answer)
        return {"final": final.text, "answer": shaped.parsed.model_dump()}

    async with app, app.worker():
        handle = await app.client.start(plan, id=f"plan-{provider}")
        out = await handle.result(timeout=30)
        history = await handle.history()
    assert "sunny in forecast for Paris" in str(out["final"])
    assert set(out["answer"]) == {"city", "days"}  # type: ignore[arg-type]
    wire = {"an": "anthropic", "gm": "gemini"}[provider]
    assert {c.wire for c in sim.calls} == {wire}
    assert all(r["model"] == f"{provider}:m-{provider}" for r in llm_results(history))
