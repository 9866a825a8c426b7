"""The usage ledger on every store: idempotent per call key, reports by group, and
budgets over a period (their enforcement in the store: tests/store/test_llm_limits.py)."""

from __future__ import annotations

import logging
import time

import pytest

import tether
from tests.conftest import AppFactory
from tests.llm.conftest import settings, until
from tether.history import EventType
from tether.llm import Budget, Price, SimServer
from tether.llm.ledger import call_budget, over_budget, period_bounds
from tether.store import UsageRecord


def _record(**changes: object) -> UsageRecord:
    base: dict[str, object] = dict(
        namespace="default",
        run_id="r1",
        step=1,
        attempt=1,
        call=0,
        workflow_id="w1",
        provider="oa",
        model="oa:m",
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.25,
        latency_ms=12.0,
        outcome="ok",
        ts=time.time(),
    )
    base.update(changes)
    return UsageRecord(**base)  # type: ignore[arg-type]


async def test_a_call_is_recorded_once_per_key(make_app: AppFactory) -> None:
    app = make_app()
    async with app:
        store = app.store
        assert await store.record_usage(_record()) is True
        assert await store.record_usage(_record()) is False, "a re-reported call"
        assert await store.record_usage(_record(attempt=2)) is True, "a call made again"
        assert await store.record_usage(_record(call=1, outcome="rate_limited", cost_usd=0.0))
        rows = await store.usage_report("default")
    assert len(rows) == 1
    total = rows[0]
    assert (total.calls, total.failed, total.input_tokens, total.output_tokens) == (3, 1, 300, 150)
    assert total.cost_usd == pytest.approx(0.5)


async def test_reports_by_group_and_namespace(make_app: AppFactory) -> None:
    app = make_app()
    day = 86_400.0
    now = time.time()
    async with app:
        await app.store.ensure_namespace("acme")
        store = app.store
        await store.record_usage(_record(ts=now - 2 * day))
        await store.record_usage(_record(run_id="r2", model="oa:big", cost_usd=1.0, ts=now))
        await store.record_usage(_record(namespace="acme", run_id="r3", ts=now))
        by_model = await app.client.usage(group_by=["model"])
        by_day = await app.client.usage(group_by=["day"])
        recent = await app.client.usage(group_by=["model"], since=now - day)
        tenants = await app.client.usage(all_namespaces=True, group_by=["namespace"])
        acme = await app.client.usage(namespace="acme", group_by=["workflow_type"])
        with pytest.raises(tether.InvalidArgument):
            await app.client.usage(group_by=["nope"])
    assert [(r.group["model"], r.calls) for r in by_model] == [("oa:big", 1), ("oa:m", 1)]
    assert len(by_day) == 2 and all(len(r.group["day"]) == 10 for r in by_day)
    assert [r.group["model"] for r in recent] == ["oa:big"]
    assert {r.group["namespace"]: r.calls for r in tenants} == {"acme": 1, "default": 2}
    # No run r3 exists: the row is still counted, with an empty workflow type.
    assert [(r.group["workflow_type"], r.calls) for r in acme] == [("", 1)]
    assert by_model[0].to_dict()["cost_usd"] == 1.0


def test_budget_refusals() -> None:
    refused = over_budget("default", Budget(usd=1.0, period="month"), 2.0, 0.1)
    assert isinstance(refused, tether.BudgetExceeded) and refused.non_retryable
    assert "monthly budget" in str(refused)
    tight = over_budget("default", Budget(usd=1.0, period="day"), 0.95, 0.1)
    assert "too little for this call's estimated $0.1000" in str(tight)
    waiting = over_budget("default", Budget(usd=1.0, on_exhausted="wait"), 2.0, 0.0)
    assert isinstance(waiting, tether.ModelError) and not waiting.non_retryable
    assert waiting.retry_after is not None and 0 < waiting.retry_after <= 31 * 86_400
    # A total budget has no next period to wait for, unless told to look again.
    total = over_budget("default", Budget(usd=1.0, period="total", on_exhausted="wait"), 2.0, 0)
    assert isinstance(total, tether.BudgetExceeded)
    again = Budget(usd=1.0, period="total", on_exhausted="wait", recheck=60)
    looking = over_budget("default", again, 2.0, 0)
    assert isinstance(looking, tether.ModelError) and looking.retry_after == 60
    assert "waiting for a raised budget" in str(looking)
    monthly = over_budget("default", Budget(usd=1.0, on_exhausted="wait", recheck=1e9), 2.0, 0)
    assert isinstance(monthly, tether.ModelError) and monthly.retry_after is not None
    assert monthly.retry_after <= 31 * 86_400, "the next period comes first"


async def test_a_step_waits_for_a_raised_budget(
    make_app: AppFactory, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether.llm")
    prices = {"oa:m": Price(input=1.0, output=1.0)}
    spent = Budget(usd=0.0, period="total", on_exhausted="wait", recheck=0.05)
    app = make_app(llm=settings(sim, prices=prices, budget=spent))

    @app.workflow
    async def ask(ctx: tether.Context) -> str:
        return (await ctx.llm("oa:m", "hello", max_tokens=10)).model

    async with app, app.worker():
        handle = await app.client.start(ask, id="raise")

        def looked_again() -> bool:
            return sum("waiting for a raised budget" in r.message for r in caplog.records) >= 2

        await until(looked_again, "the step to look at its budget again")
        assert sim.served() == 0, "no call while the budget is spent"
        app.configure_llm(settings(sim, prices=prices, budget=Budget(usd=1.0, period="total")))
        assert await handle.result(timeout=30) == "oa:m"
        history = await handle.history()
    assert sim.served("m") == 1
    [started] = [e for e in history if e.type == EventType.ACTIVITY_STARTED]
    assert started.attrs["attempt"] > 2 and "budget" in str(started.attrs["last_failure"])


def test_call_budget_covers_the_current_period() -> None:
    assert call_budget(None, 1_700_000_000.0) is None
    budget = call_budget(Budget(usd=5.0, period="day"), 1_700_000_000.0)
    assert budget is not None and (budget.usd, budget.since) == (5.0, 1_699_920_000.0)


def test_period_bounds() -> None:
    start, following = period_bounds("day", 1_700_000_000.0)  # 2023-11-14 22:13 UTC
    assert (start, following) == (1_699_920_000.0, 1_700_006_400.0)
    start, following = period_bounds("month", 1_700_000_000.0)
    assert (start, following) == (1_698_796_800.0, 1_701_388_800.0)
    assert period_bounds("total", 1.0) == (0.0, None)
