"""The LLM usage ledger's SQL for the SQLite store (see ``store/usage.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..usage import UsageRecord, UsageRow, check_groups

__all__ = ["record_usage", "usage_report"]

_GROUP_SQL = {
    "namespace": "namespace",
    "workflow_type": "workflow_type",
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "provider": "provider",
    "model": "model",
    "outcome": "outcome",
    "day": "date(ts, 'unixepoch')",
}


def record_usage(conn: sqlite3.Connection, r: UsageRecord) -> bool:
    """Insert the call's row unless its key is there already; True if inserted."""
    cur = conn.execute(
        "INSERT INTO llm_usage (namespace, run_id, step, attempt, call, workflow_id,"
        " workflow_type, provider, model, input_tokens, output_tokens, cost_usd, latency_ms,"
        " outcome, ts) VALUES (?, ?, ?, ?, ?, ?, coalesce((SELECT workflow_type FROM runs"
        " WHERE namespace = ? AND run_id = ?), ''), ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (
            r.namespace,
            r.run_id,
            r.step,
            r.attempt,
            r.call,
            r.workflow_id,
            r.namespace,
            r.run_id,
            r.provider,
            r.model,
            r.input_tokens,
            r.output_tokens,
            r.cost_usd,
            r.latency_ms,
            r.outcome,
            r.ts,
        ),
    )
    return cur.rowcount == 1


def usage_report(
    conn: sqlite3.Connection,
    namespace: str | None,
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
) -> list[UsageRow]:
    groups = check_groups(list(group_by))
    where: list[str] = ["1 = 1"]
    params: list[str | float] = []
    if namespace is not None:
        where.append("namespace = ?")
        params.append(namespace)
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    keys = [f"{_GROUP_SQL[g]} AS {g}" for g in groups]
    sql = (
        f"SELECT {', '.join([*keys, ''])} count(*), sum(outcome NOT IN ('ok', 'started')),"
        " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
        " coalesce(sum(cost_usd), 0), coalesce(avg(latency_ms), 0),"
        " coalesce(sum(outcome = 'started'), 0), coalesce(sum(outcome = 'abandoned'), 0)"
        " FROM llm_usage"
        f" WHERE {' AND '.join(where)}"
    )
    if groups:
        order = ", ".join(str(i + 1) for i in range(len(groups)))
        sql += f" GROUP BY {order} ORDER BY {order}"
    rows = conn.execute(sql, params).fetchall()
    n = len(groups)
    out = []
    for row in rows:
        if not groups and row[0] == 0:
            continue
        out.append(
            UsageRow(
                group=dict(zip(groups, row[:n], strict=True)),
                calls=int(row[n]),
                failed=int(row[n + 1] or 0),
                input_tokens=int(row[n + 2]),
                output_tokens=int(row[n + 3]),
                cost_usd=float(row[n + 4]),
                latency_ms=float(row[n + 5]),
                in_flight=int(row[n + 6]),
                abandoned=int(row[n + 7]),
            )
        )
    return out
