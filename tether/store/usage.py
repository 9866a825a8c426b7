"""The LLM usage ledger as the stores keep it: one row per model call.

A row is keyed by ``(namespace, run_id, step, attempt, call)``: ``call`` numbers the
calls one attempt of an LLM step made (fallbacks make several). Recording the same
key again changes nothing, so a replayed step or a re-reported attempt never counts
twice; a call made again by a new attempt (its worker died before the step's result
was recorded) has a new key and is counted, as it was paid for twice.

The router writes a call's row before the call (outcome ``started``, see
``llm_limits.py``) and completes it after; a row left ``started`` by a dead worker
becomes ``abandoned`` when the step's next attempt begins. ``started`` rows do not
count as ``failed``, ``abandoned`` ones do; neither carries tokens or cost (their
usage never came back, though the provider may bill it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument

__all__ = ["USAGE_GROUPS", "UsageRecord", "UsageRow", "check_groups"]

# What a usage report may be grouped by. ``day`` is the UTC calendar day.
USAGE_GROUPS = (
    "namespace",
    "workflow_type",
    "workflow_id",
    "run_id",
    "provider",
    "model",
    "outcome",
    "day",
)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call: who made it, what it cost, how it went."""

    namespace: str
    run_id: str
    step: int
    attempt: int
    call: int
    workflow_id: str
    provider: str
    model: str  # provider:model
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    outcome: str  # ok, rate_limited, server_error, timeout, ..., started, abandoned
    ts: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Sums over the ledger rows of one group."""

    group: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0  # mean over the calls
    # Calls whose ledger row was written before the call and not yet completed: still
    # in flight, or abandoned (their worker died; a later attempt of the step began).
    in_flight: int = 0
    abandoned: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.group,
            "calls": self.calls,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "latency_ms": round(self.latency_ms, 1),
            "in_flight": self.in_flight,
            "abandoned": self.abandoned,
        }


def check_groups(group_by: tuple[str, ...] | list[str]) -> list[str]:
    """The group names, checked against :data:`USAGE_GROUPS`."""
    unknown = [g for g in group_by if g not in USAGE_GROUPS]
    if unknown:
        raise InvalidArgument(
            f"cannot group usage by {', '.join(unknown)}; choose from {', '.join(USAGE_GROUPS)}"
        )
    return list(dict.fromkeys(group_by))
