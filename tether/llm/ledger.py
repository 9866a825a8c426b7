"""The usage ledger and budgets, over the store's ``record_usage``/``usage_report``.

Each call is recorded with its key ``(namespace, run_id, step, attempt, call)``
before the step's result is reported, so:

- a crash after the call's result was recorded in history never bills it twice (the
  step is not run again, and a re-reported attempt hits the same key);
- a call made again because the worker died before the step's result was recorded
  is a new attempt with a new key, and is recorded again: it was paid for twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ..chat import Usage
from ..errors import BudgetExceeded, ModelError
from ..store import Store, UsageRecord
from .config import Budget

__all__ = ["StepInfo", "check_budget", "period_bounds", "record_call"]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """Which attempt of which LLM step is calling."""

    namespace: str
    workflow_id: str
    run_id: str
    step: int
    attempt: int


async def record_call(
    store: Store,
    step: StepInfo,
    call: int,
    provider: str,
    model: str,
    usage: Usage,
    cost_usd: float,
    latency_ms: float,
    outcome: str,
) -> bool:
    return await store.record_usage(
        UsageRecord(
            namespace=step.namespace,
            run_id=step.run_id,
            step=step.step,
            attempt=step.attempt,
            call=call,
            workflow_id=step.workflow_id,
            provider=provider,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            outcome=outcome,
            ts=time.time(),
        )
    )


def period_bounds(period: str, now: float) -> tuple[float, float | None]:
    """The start of the budget period holding ``now``, and of the next one (UTC)."""
    if period == "total":
        return 0.0, None
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.timestamp(), day.timestamp() + 86_400
    month = day.replace(day=1)
    following = (
        month.replace(year=month.year + 1, month=1)
        if month.month == 12
        else (month.replace(month=month.month + 1))
    )
    return month.timestamp(), following.timestamp()


async def check_budget(store: Store, namespace: str, budget: Budget | None) -> None:
    """Refuse a new call when the namespace's budget for the period is spent.

    The check is made before each call, so calls already in flight may overshoot the
    budget by their own cost: a soft limit.
    """
    if budget is None:
        return
    now = time.time()
    start, following = period_bounds(budget.period, now)
    rows = await store.usage_report(namespace, since=start)
    spent = rows[0].cost_usd if rows else 0.0
    if spent < budget.usd:
        return
    period = {"day": "daily", "month": "monthly"}.get(budget.period, budget.period)
    what = f"namespace {namespace!r} spent ${spent:.4f} of its {period} budget of ${budget.usd:g}"
    if budget.on_exhausted == "wait" and following is not None:
        # A durable wait until the next period: the attempt is retried then.
        raise ModelError(f"{what}; waiting for the next period", retry_after=following - now)
    raise BudgetExceeded(what, namespace=namespace)
