"""The usage ledger and budgets, over the store's ``begin_llm_call``/``finish_llm_call``.

A call's ledger row, keyed ``(namespace, run_id, step, attempt, call)``, is written
before the call (outcome ``started``, with the cost it reserves against the budget)
and completed after it, before the step's result is reported, so:

- a call in flight when its worker dies stays in the ledger, ``abandoned`` once the
  step's next attempt begins (its usage never came back, though the provider may bill
  it);
- a crash after the call's result was recorded in history never bills it twice (the
  step is not run again, and a re-reported call finds its row finished);
- a call made again because the worker died before the step's result was recorded
  is a new attempt with a new key, and is recorded again: it was paid for twice.

Budgets are checked and reserved in the same transaction that admits a call, so
calls of every worker process together stay within the budget, counting calls in
flight at their reserved (estimated) cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ..chat import Usage
from ..errors import BudgetExceeded, ModelError, TetherError
from ..store import UsageRecord
from ..store.llm_limits import STARTED, CallBudget
from .config import Budget

__all__ = ["StepInfo", "call_budget", "over_budget", "period_bounds"]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """Which attempt of which LLM step is calling."""

    namespace: str
    workflow_id: str
    run_id: str
    step: int
    attempt: int

    def record(
        self,
        call: int,
        provider: str,
        model: str,
        usage: Usage | None = None,
        cost_usd: float = 0.0,
        latency_ms: float = 0.0,
        outcome: str = STARTED,
    ) -> UsageRecord:
        """The ledger row of this attempt's ``call``-th model call."""
        usage = usage or Usage()
        return UsageRecord(
            namespace=self.namespace,
            run_id=self.run_id,
            step=self.step,
            attempt=self.attempt,
            call=call,
            workflow_id=self.workflow_id,
            provider=provider,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            outcome=outcome,
            ts=time.time(),
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


def call_budget(budget: Budget | None, now: float) -> CallBudget | None:
    """The budget a call must fit, over the period holding ``now``."""
    if budget is None:
        return None
    return CallBudget(usd=budget.usd, since=period_bounds(budget.period, now)[0])


def over_budget(namespace: str, budget: Budget, spent: float, reserve: float) -> TetherError:
    """The error for a call the namespace's budget refused: :class:`BudgetExceeded`,
    or with ``on_exhausted="wait"`` a retryable :class:`ModelError` that waits,
    durably, for the next period."""
    now = time.time()
    following = period_bounds(budget.period, now)[1]
    period = {"day": "daily", "month": "monthly"}.get(budget.period, budget.period)
    what = f"namespace {namespace!r} spent ${spent:.4f} of its {period} budget of ${budget.usd:g}"
    if spent < budget.usd:
        what += f", too little for this call's estimated ${reserve:.4f}"
    if budget.on_exhausted == "wait":
        # A durable wait until the next period, or the next look for a raised budget:
        # the attempt is retried then.
        waits = [w for w in (following and following - now, budget.recheck) if w]
        if waits:
            until = "a raised budget or the next period" if budget.recheck else "the next period"
            return ModelError(f"{what}; waiting for {until}", retry_after=min(waits))
    return BudgetExceeded(what, namespace=namespace)
