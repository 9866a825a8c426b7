"""Provider rate limits, concurrency slots and budgets shared by every worker process
through the store: what ``begin_llm_call`` and ``finish_llm_call`` exchange.

A model call pays one store round trip before it (``begin_llm_call``) and one after
(``finish_llm_call``). The first, in one transaction:

1. marks the ledger rows of earlier attempts of the same step that are still
   ``started`` as ``abandoned`` (their worker died with the call in flight) and frees
   their concurrency slots;
2. with a budget, sums the namespace's spending over the period, counting calls in
   flight at their reserved cost, and refuses the call if its own reservation would
   take the sum past the budget;
3. refills the (namespace, provider) token buckets (requests and tokens per minute)
   and counts the unexpired concurrency slots; a provider's recent 429 blocks too;
4. when nothing refuses: takes one request and the estimated tokens, holds a slot
   until ``slot_lease`` from now (so a killed worker's slot comes back), and writes
   the call's ledger row with the outcome ``started`` and its reserved cost.

The second writes the call's real usage into its ledger row (only if it is still
``started`` or ``abandoned``: a finished row is never billed twice), frees the slot,
charges the tokens used beyond the estimate (or gives back the rest), and after a 429
with Retry-After blocks the (namespace, provider) until then.

Buckets refill at ``rate / 60`` per second up to their size (``burst`` for requests,
else a minute's worth); the limits in force are the caller's, so processes with
other settings share the same levels. Rows are deleted with their namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .usage import UsageRecord

__all__ = [
    "STARTED",
    "Admission",
    "CallBudget",
    "CallLimits",
    "CallStart",
    "LimitState",
    "RefusalKind",
    "bucket_wait",
    "refill",
]

# The ledger outcome of a call in flight; ``abandoned`` once a later attempt of the
# same step began without it having finished.
STARTED = "started"
ABANDONED = "abandoned"

RefusalKind = Literal["", "budget", "blocked", "requests", "tokens", "concurrency"]


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The limits of one (namespace, provider); ``None`` is no limit."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    concurrency: int | None = None
    burst: float | None = None
    # How long a concurrency slot is held at most: past it, a worker that died with
    # the call in flight no longer holds the slot.
    slot_lease: float = 300.0


@dataclass(frozen=True, slots=True)
class CallBudget:
    """A namespace's budget: ``usd`` over the period that began at ``since``."""

    usd: float
    since: float


@dataclass(frozen=True, slots=True)
class CallStart:
    """A model call about to be made: its ledger row (outcome ``started``), the tokens
    and dollars it reserves, and the limits and budget it must fit."""

    record: UsageRecord
    estimate: int
    reserve_usd: float
    limits: CallLimits
    budget: CallBudget | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer to :class:`CallStart`: admitted (``kind == ""``) or refused
    for ``kind``, with the seconds after which a limit may admit it (``wait``) and
    the namespace's spending over the budget period (when a budget was given)."""

    kind: RefusalKind = ""
    wait: float = 0.0
    spent_usd: float = 0.0

    @property
    def admitted(self) -> bool:
        return self.kind == ""


@dataclass(frozen=True, slots=True)
class LimitState:
    """What the store holds for one (namespace, provider), as of ``as_of`` (the
    store's clock): calls in flight (unexpired slots), a 429's block, and the bucket
    levels left at the last call (``None``: never limited), before refilling."""

    namespace: str
    provider: str
    in_flight: int
    blocked_until: float
    requests: float | None
    tokens: float | None
    updated_at: float
    as_of: float

    @classmethod
    def from_row(cls, row: Sequence[Any], as_of: float) -> LimitState:
        """From ``(namespace, provider, in_flight, blocked_until, requests, tokens,
        updated_at)`` as both stores select them."""
        requests, tokens = row[4], row[5]
        return cls(
            namespace=row[0],
            provider=row[1],
            in_flight=int(row[2]),
            blocked_until=float(row[3]),
            requests=None if requests is None else float(requests),
            tokens=None if tokens is None else float(tokens),
            updated_at=float(row[6]),
            as_of=as_of,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "provider": self.provider,
            "in_flight": self.in_flight,
            "blocked_for": round(max(self.blocked_until - self.as_of, 0.0), 3),
            "requests_left": None if self.requests is None else round(self.requests, 2),
            "tokens_left": None if self.tokens is None else round(self.tokens),
            "last_call_ago": round(max(self.as_of - self.updated_at, 0.0), 3),
        }


def refill(level: float | None, size: float, rate: float, elapsed: float) -> float:
    """A bucket's level after ``elapsed`` seconds (``None``: new, so full)."""
    if level is None:
        return size
    return min(size, level + max(elapsed, 0.0) * rate / 60)


def bucket_wait(level: float, size: float, rate: float, amount: float) -> float:
    """Seconds until ``amount`` (at most the bucket's size) is available."""
    amount = min(amount, size)
    return 0.0 if level >= amount else (amount - level) * 60 / rate
