"""Provider limits, concurrency slots, budgets and in-flight ledger rows shared through
the store: two store objects on one location stand for two worker processes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from tether.store import Store, UsageRecord
from tether.store.llm_limits import Admission, CallBudget, CallLimits, CallStart

from .conftest import Harness
from .helpers import NS

NO_LIMITS = CallLimits()


def _record(call: int = 0, *, attempt: int = 1, step: int = 1, **changes: object) -> UsageRecord:
    base: dict[str, object] = dict(
        namespace=NS,
        run_id="r1",
        step=step,
        attempt=attempt,
        call=call,
        workflow_id="w1",
        provider="oa",
        model="oa:m",
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        latency_ms=0.0,
        outcome="started",
        ts=time.time(),
    )
    base.update(changes)
    return UsageRecord(**base)  # type: ignore[arg-type]


def _start(
    call: int = 0,
    *,
    limits: CallLimits = NO_LIMITS,
    estimate: int = 10,
    reserve: float = 0.0,
    budget: CallBudget | None = None,
    **changes: object,
) -> CallStart:
    return CallStart(_record(call, **changes), estimate, reserve, limits, budget)


def _done(
    start: CallStart, tokens: int = 10, cost: float = 0.0, outcome: str = "ok"
) -> UsageRecord:
    return replace(
        start.record, output_tokens=tokens, cost_usd=cost, outcome=outcome, latency_ms=5.0
    )


async def _pair(harness: Harness) -> tuple[Store, Store]:
    return await harness.open(), await harness.open()


async def test_requests_per_minute_are_shared(harness: Harness) -> None:
    a, b = await _pair(harness)
    limits = CallLimits(requests_per_minute=60, burst=4)
    for call in range(4):  # the burst, taken by both "processes"
        admission = await (a if call % 2 else b).begin_llm_call(_start(call, limits=limits))
        assert admission.admitted, admission
    refused = await a.begin_llm_call(_start(4, limits=limits))
    assert refused.kind == "requests" and 0.5 < refused.wait <= 1.0, refused
    again = await b.begin_llm_call(_start(4, limits=limits))
    assert again.kind == "requests", "the other process sees the same bucket"


async def test_tokens_are_reserved_then_charged_for_real(store: Store) -> None:
    limits = CallLimits(tokens_per_minute=1000)
    first = _start(0, limits=limits, estimate=100)
    assert (await store.begin_llm_call(first)).admitted
    # The call used far more than estimated: the difference is charged after it.
    assert await store.finish_llm_call(_done(first, tokens=990), estimate=100)
    refused = await store.begin_llm_call(_start(1, limits=limits, estimate=100))
    assert refused.kind == "tokens" and refused.wait > 4, refused


async def test_a_call_using_fewer_tokens_gives_the_rest_back(store: Store) -> None:
    limits = CallLimits(tokens_per_minute=1000)
    first = _start(0, limits=limits, estimate=900)
    assert (await store.begin_llm_call(first)).admitted
    assert (await store.begin_llm_call(_start(1, limits=limits, estimate=900))).kind == "tokens"
    assert await store.finish_llm_call(_done(first, tokens=50), estimate=900)
    assert (await store.begin_llm_call(_start(1, limits=limits, estimate=900))).admitted


async def test_concurrency_cap_is_atomic_across_processes(harness: Harness) -> None:
    a, b = await _pair(harness)
    limits = CallLimits(concurrency=3)
    starts = [_start(call, limits=limits) for call in range(10)]
    answers = await asyncio.gather(
        *((a if i % 2 else b).begin_llm_call(s) for i, s in enumerate(starts))
    )
    admitted = [s for s, answer in zip(starts, answers, strict=True) if answer.admitted]
    assert len(admitted) == 3
    refused = [x for x in answers if not x.admitted]
    assert {x.kind for x in refused} == {"concurrency"}
    assert all(0 < x.wait <= 1.0 for x in refused)
    await a.finish_llm_call(_done(admitted[0]), estimate=10)
    waiting = [s for s, answer in zip(starts, answers, strict=True) if not answer.admitted]
    assert (await b.begin_llm_call(waiting[0])).admitted, "a finished call frees its slot"
    assert (await a.begin_llm_call(waiting[1])).kind == "concurrency"


async def test_a_dead_workers_slot_expires(store: Store) -> None:
    limits = CallLimits(concurrency=1, slot_lease=0.3)
    assert (await store.begin_llm_call(_start(0, limits=limits, run_id="dead"))).admitted
    other = _start(0, limits=limits, run_id="other")
    assert (await store.begin_llm_call(other)).kind == "concurrency"
    deadline = time.monotonic() + 10
    answer = Admission("concurrency")
    while not answer.admitted and time.monotonic() < deadline:
        await asyncio.sleep(answer.wait)
        answer = await store.begin_llm_call(other)
    assert answer.admitted, "the slot of a worker that never finished came back"


async def test_the_next_attempt_abandons_a_call_left_in_flight(store: Store) -> None:
    limits = CallLimits(concurrency=1)
    lost = _start(0, limits=limits, attempt=1)
    assert (await store.begin_llm_call(lost)).admitted
    rows = await store.usage_report(NS, group_by=["outcome"])
    assert [(r.group["outcome"], r.in_flight, r.failed) for r in rows] == [("started", 1, 0)]
    retry = _start(0, limits=limits, attempt=2)
    assert (await store.begin_llm_call(retry)).admitted, "its slot was freed"
    assert await store.finish_llm_call(_done(retry, cost=0.5), estimate=10)
    rows = await store.usage_report(NS, group_by=["outcome"])
    assert [(r.group["outcome"], r.calls, r.failed, r.abandoned) for r in rows] == [
        ("abandoned", 1, 1, 1),
        ("ok", 1, 0, 0),
    ]
    assert sum(r.cost_usd for r in rows) == pytest.approx(0.5)


async def test_a_finished_call_is_never_billed_twice(store: Store) -> None:
    start = _start(0)
    assert (await store.begin_llm_call(start)).admitted
    assert await store.finish_llm_call(_done(start, cost=0.25), estimate=10) is True
    assert await store.finish_llm_call(_done(start, cost=0.25), estimate=10) is False
    assert (await store.begin_llm_call(start)).admitted  # the row is kept as it was
    [total] = await store.usage_report(NS)
    assert (total.calls, total.cost_usd, total.in_flight) == (1, pytest.approx(0.25), 0)


async def test_a_late_finish_of_an_abandoned_call_is_recorded(store: Store) -> None:
    slow = _start(0, attempt=1)
    assert (await store.begin_llm_call(slow)).admitted
    assert (await store.begin_llm_call(_start(0, attempt=2))).admitted
    # The first worker was only slow, not dead: its call came back and was paid.
    assert await store.finish_llm_call(_done(slow, cost=0.1), estimate=10)
    rows = await store.usage_report(NS, group_by=["outcome"])
    assert {r.group["outcome"]: r.calls for r in rows} == {"ok": 1, "started": 1}


async def test_a_429_blocks_every_process(harness: Harness) -> None:
    a, b = await _pair(harness)
    first = _start(0)
    assert (await a.begin_llm_call(first)).admitted
    await a.finish_llm_call(
        _done(first, tokens=0, outcome="rate_limited"), estimate=10, block_for=5
    )
    refused = await b.begin_llm_call(_start(1))
    assert refused.kind == "blocked" and 4 < refused.wait <= 5, refused
    assert (await b.begin_llm_call(_start(1, provider="other"))).admitted


async def test_budget_is_checked_and_reserved_atomically(harness: Harness) -> None:
    a, b = await _pair(harness)
    budget = CallBudget(usd=1.0, since=0.0)
    starts = [_start(call, reserve=0.3, budget=budget) for call in range(6)]
    answers = await asyncio.gather(
        *((a if i % 2 else b).begin_llm_call(s) for i, s in enumerate(starts))
    )
    assert sum(x.admitted for x in answers) == 3, "three reservations of $0.30 fit in $1"
    refused = next(x for x in answers if not x.admitted)
    assert refused.kind == "budget" and refused.spent_usd == pytest.approx(0.9)
    admitted = [s for s, x in zip(starts, answers, strict=True) if x.admitted]
    # The calls cost less than reserved: room for one more.
    for done in admitted:
        await a.finish_llm_call(_done(done, cost=0.1), estimate=10)
    assert (await b.begin_llm_call(_start(10, reserve=0.3, budget=budget))).admitted
    spent = await a.begin_llm_call(_start(11, reserve=0.5, budget=budget))
    assert spent.kind == "budget" and spent.spent_usd == pytest.approx(0.6)
    # Spending before the period does not count.
    later = CallBudget(usd=1.0, since=time.time() + 60)
    assert (await a.begin_llm_call(_start(11, reserve=0.5, budget=later))).admitted


async def test_deleting_a_namespace_deletes_its_limits(store: Store) -> None:
    await store.create_namespace("gone", {})
    limits = CallLimits(concurrency=1, requests_per_minute=1)
    held = _start(0, limits=limits, namespace="gone")
    assert (await store.begin_llm_call(held)).admitted
    await store.finish_llm_call(_done(held, outcome="rate_limited"), estimate=10, block_for=3600)
    assert (await store.begin_llm_call(_start(1, limits=limits, namespace="gone"))).kind in (
        "blocked",
        "requests",
    )
    await store.delete_namespace("gone")
    await store.create_namespace("gone", {})
    assert await store.usage_report("gone") == []
    again = await store.begin_llm_call(_start(1, limits=limits, namespace="gone"))
    assert again.admitted, "no bucket, slot or block of the deleted namespace is left"


async def test_the_state_of_the_limits(harness: Harness) -> None:
    a, b = await _pair(harness)
    await a.create_namespace("acme", {})
    limits = CallLimits(concurrency=5, requests_per_minute=60, tokens_per_minute=1000)
    held = _start(0, limits=limits, estimate=100)
    assert (await a.begin_llm_call(held)).admitted
    limited = _start(1, provider="an", estimate=100)
    assert (await a.begin_llm_call(limited)).admitted
    await a.finish_llm_call(_done(limited, outcome="rate_limited"), estimate=100, block_for=30)
    assert (await b.begin_llm_call(_start(0, namespace="acme"))).admitted
    [an, oa] = await b.llm_limit_states(NS)
    assert (an.provider, an.in_flight, an.requests, an.tokens) == ("an", 0, None, None)
    assert 25 < an.to_dict()["blocked_for"] <= 30
    assert (oa.provider, oa.in_flight, oa.blocked_until) == ("oa", 1, 0.0)
    assert oa.requests == pytest.approx(59) and oa.tokens == pytest.approx(900)
    assert oa.to_dict()["blocked_for"] == 0 and oa.to_dict()["tokens_left"] == 900
    everyone = await b.llm_limit_states(None)
    assert [(s.namespace, s.provider) for s in everyone] == [
        ("acme", "oa"),
        (NS, "an"),
        (NS, "oa"),
    ]
