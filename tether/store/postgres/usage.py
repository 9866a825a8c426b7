"""The LLM usage ledger's SQL for the PostgreSQL store (see ``store/usage.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..llm_limits import CallStart
from ..usage import UsageRecord, UsageRow, check_groups

__all__ = [
    "BEGIN_CALL",
    "FINISH_CALL",
    "LIMIT_STATES",
    "RECORD_USAGE",
    "begin_args",
    "finish_args",
    "record_args",
    "report_query",
    "usage_row",
]

# One round trip each (see tether/store/llm_limits.py and migration 0008).
BEGIN_CALL = """
SELECT o_kind, o_wait, o_spent FROM tether.llm_begin($1, $2, $3, $4, $5, $6, $7, $8, $9,
    $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""

LIMIT_STATES = """
SELECT l.namespace, l.provider,
    (SELECT count(*) FROM tether.llm_slots s WHERE s.namespace = l.namespace
        AND s.provider = l.provider AND s.expires_at > tether.epoch()),
    l.blocked_until, l.requests, l.tokens, l.updated_at, tether.epoch()
FROM tether.llm_limits l
WHERE l.provider <> '' AND ($1::text IS NULL OR l.namespace = $1)
ORDER BY l.namespace, l.provider
"""

FINISH_CALL = "SELECT tether.llm_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"

RECORD_USAGE = """
INSERT INTO tether.llm_usage (namespace, run_id, step, attempt, call, workflow_id,
    workflow_type, provider, model, input_tokens, output_tokens, cost_usd, latency_ms,
    outcome, ts)
VALUES ($1, $2, $3, $4, $5, $6,
    coalesce((SELECT workflow_type FROM tether.runs WHERE namespace = $1 AND run_id = $2), ''),
    $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT DO NOTHING
RETURNING 1
"""

_GROUP_SQL = {
    "namespace": "namespace",
    "workflow_type": "workflow_type",
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "provider": "provider",
    "model": "model",
    "outcome": "outcome",
    "day": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def record_args(r: UsageRecord) -> tuple[Any, ...]:
    return (
        r.namespace,
        r.run_id,
        r.step,
        r.attempt,
        r.call,
        r.workflow_id,
        r.provider,
        r.model,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd,
        r.latency_ms,
        r.outcome,
        r.ts,
    )


def begin_args(start: CallStart) -> tuple[Any, ...]:
    r, limits, budget = start.record, start.limits, start.budget
    return (
        r.namespace,
        r.run_id,
        r.step,
        r.attempt,
        r.call,
        r.workflow_id,
        r.provider,
        r.model,
        r.ts,
        start.estimate,
        start.reserve_usd,
        limits.requests_per_minute,
        limits.burst,
        limits.tokens_per_minute,
        limits.concurrency,
        limits.slot_lease,
        budget.usd if budget is not None else None,
        budget.since if budget is not None else 0.0,
    )


def finish_args(r: UsageRecord, estimate: int, block_for: float | None) -> tuple[Any, ...]:
    return (
        r.namespace,
        r.run_id,
        r.step,
        r.attempt,
        r.call,
        r.provider,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd,
        r.latency_ms,
        r.outcome,
        estimate,
        block_for,
    )


def report_query(
    namespace: str | None, group_by: Sequence[str], since: float | None, until: float | None
) -> tuple[str, list[str], list[Any]]:
    """The report's SQL, its group names and its parameters."""
    groups = check_groups(list(group_by))
    where, params = ["true"], []
    for clause, value in (("namespace = ", namespace), ("ts >= ", since), ("ts < ", until)):
        if value is not None:
            params.append(value)
            where.append(f"{clause}${len(params)}")
    keys = [f"{_GROUP_SQL[g]} AS {g}" for g in groups]
    sql = (
        f"SELECT {', '.join([*keys, ''])} count(*),"
        " count(*) FILTER (WHERE outcome NOT IN ('ok', 'started')),"
        " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
        " coalesce(sum(cost_usd), 0), coalesce(avg(latency_ms), 0),"
        " count(*) FILTER (WHERE outcome = 'started'),"
        " count(*) FILTER (WHERE outcome = 'abandoned') FROM tether.llm_usage"
        f" WHERE {' AND '.join(where)}"
    )
    if groups:
        order = ", ".join(str(i + 1) for i in range(len(groups)))
        sql += f" GROUP BY {order} ORDER BY {order}"
    return sql, groups, params


def usage_row(groups: list[str], row: asyncpg.Record) -> UsageRow | None:
    n = len(groups)
    if not groups and row[0] == 0:
        return None
    return UsageRow(
        group=dict(zip(groups, list(row)[:n], strict=True)),
        calls=int(row[n]),
        failed=int(row[n + 1] or 0),
        input_tokens=int(row[n + 2]),
        output_tokens=int(row[n + 3]),
        cost_usd=float(row[n + 4]),
        latency_ms=float(row[n + 5]),
        in_flight=int(row[n + 6]),
        abandoned=int(row[n + 7]),
    )
