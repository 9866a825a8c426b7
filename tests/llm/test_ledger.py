"""The usage ledger on every store: idempotent per call key, reports by group, and
budgets over a period."""

from __future__ import annotations

import time

import pytest

import tether
from tests.conftest import AppFactory
from tether.llm import Budget
from tether.llm.ledger import check_budget, period_bounds
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


async def test_budgets(make_app: AppFactory) -> None:
    app = make_app()
    async with app:
        await app.store.record_usage(_record(cost_usd=2.0))
        await check_budget(app.store, "default", Budget(usd=5.0, period="day"))
        await check_budget(app.store, "other", Budget(usd=1.0, period="day"))
        with pytest.raises(tether.BudgetExceeded) as refused:
            await check_budget(app.store, "default", Budget(usd=1.0, period="month"))
        with pytest.raises(tether.ModelError) as waiting:
            await check_budget(app.store, "default", Budget(usd=1.0, on_exhausted="wait"))
    assert refused.value.non_retryable and "monthly budget" in str(refused.value)
    assert waiting.value.retry_after is not None and 0 < waiting.value.retry_after <= 31 * 86_400


def test_period_bounds() -> None:
    start, following = period_bounds("day", 1_700_000_000.0)  # 2023-11-14 22:13 UTC
    assert (start, following) == (1_699_920_000.0, 1_700_006_400.0)
    start, following = period_bounds("month", 1_700_000_000.0)
    assert (start, following) == (1_698_796_800.0, 1_701_388_800.0)
    assert period_bounds("total", 1.0) == (0.0, None)
