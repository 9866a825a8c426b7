"""Shared provider limits and in-flight ledger rows for the SQLite store (see
``store/llm_limits.py``). Every operation runs in the one writer's transaction, so
the check and the take of a limit are atomic across processes."""

from __future__ import annotations

import sqlite3

from ..llm_limits import (
    ABANDONED,
    STARTED,
    Admission,
    CallStart,
    LimitState,
    bucket_wait,
    refill,
)
from ..usage import UsageRecord

__all__ = ["begin_llm_call", "finish_llm_call", "limit_states"]


def _abandon_earlier(conn: sqlite3.Connection, r: UsageRecord) -> None:
    conn.execute(
        "UPDATE llm_usage SET outcome = ?, reserved_usd = 0 WHERE namespace = ?"
        " AND run_id = ? AND step = ? AND attempt < ? AND outcome = ?",
        (ABANDONED, r.namespace, r.run_id, r.step, r.attempt, STARTED),
    )
    conn.execute(
        "DELETE FROM llm_slots WHERE namespace = ? AND run_id = ? AND step = ? AND attempt < ?",
        (r.namespace, r.run_id, r.step, r.attempt),
    )


def _spent(conn: sqlite3.Connection, namespace: str, since: float) -> float:
    (spent,) = conn.execute(
        "SELECT coalesce(sum(CASE WHEN outcome = ? THEN reserved_usd ELSE cost_usd END), 0)"
        " FROM llm_usage WHERE namespace = ? AND ts >= ?",
        (STARTED, namespace, since),
    ).fetchone()
    return float(spent)


def begin_llm_call(conn: sqlite3.Connection, start: CallStart, now: float) -> Admission:
    r, limits = start.record, start.limits
    _abandon_earlier(conn, r)
    spent = 0.0
    if start.budget is not None:
        spent = _spent(conn, r.namespace, start.budget.since)
        if spent >= start.budget.usd or spent + start.reserve_usd > start.budget.usd:
            return Admission("budget", 0.0, spent)
    conn.execute(
        "INSERT INTO llm_limits (namespace, provider, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (r.namespace, r.provider, now),
    )
    requests, tokens, updated_at, blocked_until = conn.execute(
        "SELECT requests, tokens, updated_at, blocked_until FROM llm_limits"
        " WHERE namespace = ? AND provider = ?",
        (r.namespace, r.provider),
    ).fetchone()
    waits: list[tuple[float, str]] = [(blocked_until - now, "blocked")]
    elapsed = now - updated_at
    rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
    if rpm:
        size = limits.burst or rpm
        requests = refill(requests, size, rpm, elapsed)
        waits.append((bucket_wait(requests, size, rpm, 1), "requests"))
    if tpm:
        tokens = refill(tokens, tpm, tpm, elapsed)
        waits.append((bucket_wait(tokens, tpm, tpm, start.estimate), "tokens"))
    if limits.concurrency is not None:
        conn.execute(
            "DELETE FROM llm_slots WHERE namespace = ? AND provider = ? AND expires_at <= ?",
            (r.namespace, r.provider, now),
        )
        held, first_expiry = conn.execute(
            "SELECT count(*), min(expires_at) FROM llm_slots WHERE namespace = ? AND provider = ?",
            (r.namespace, r.provider),
        ).fetchone()
        if held >= limits.concurrency:
            # No one knows when a call ends: look again soon (at most when a slot expires).
            waits.append((min(max(first_expiry - now, 0.05), 1.0), "concurrency"))
    wait, kind = max(waits)
    if wait > 0:
        return Admission(kind, wait, spent)  # type: ignore[arg-type]
    conn.execute(
        "UPDATE llm_limits SET requests = ?, tokens = ?, updated_at = ?"
        " WHERE namespace = ? AND provider = ?",
        (
            requests - 1 if rpm else requests,
            tokens - start.estimate if tpm else tokens,
            now,
            r.namespace,
            r.provider,
        ),
    )
    if limits.concurrency is not None:
        conn.execute(
            "INSERT OR REPLACE INTO llm_slots"
            " (namespace, provider, run_id, step, attempt, call, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.namespace, r.provider, r.run_id, r.step, r.attempt, r.call, now + limits.slot_lease),
        )
    conn.execute(
        "INSERT INTO llm_usage (namespace, run_id, step, attempt, call, workflow_id,"
        " workflow_type, provider, model, input_tokens, output_tokens, cost_usd, latency_ms,"
        " outcome, ts, reserved_usd) VALUES (?, ?, ?, ?, ?, ?, coalesce((SELECT workflow_type"
        " FROM runs WHERE namespace = ? AND run_id = ?), ''), ?, ?, 0, 0, 0, 0, ?, ?, ?)"
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
            STARTED,
            r.ts,
            start.reserve_usd,
        ),
    )
    return Admission("", 0.0, spent)


def finish_llm_call(
    conn: sqlite3.Connection,
    r: UsageRecord,
    estimate: int,
    block_for: float | None,
    now: float,
) -> bool:
    key = (r.namespace, r.run_id, r.step, r.attempt, r.call)
    done = conn.execute(
        "UPDATE llm_usage SET input_tokens = ?, output_tokens = ?, cost_usd = ?,"
        " latency_ms = ?, outcome = ?, reserved_usd = 0 WHERE namespace = ? AND run_id = ?"
        " AND step = ? AND attempt = ? AND call = ? AND outcome IN (?, ?)",
        (
            r.input_tokens,
            r.output_tokens,
            r.cost_usd,
            r.latency_ms,
            r.outcome,
            *key,
            STARTED,
            ABANDONED,
        ),
    ).rowcount
    conn.execute(
        "DELETE FROM llm_slots WHERE namespace = ? AND run_id = ? AND step = ?"
        " AND attempt = ? AND call = ? AND provider = ?",
        (*key, r.provider),
    )
    if done:
        # The tokens bucket was charged the estimate: charge the difference (a level
        # below zero delays the next calls until it has refilled).
        conn.execute(
            "UPDATE llm_limits SET tokens = tokens - ?, blocked_until = max(blocked_until, ?)"
            " WHERE namespace = ? AND provider = ? AND (tokens IS NOT NULL OR ?)",
            (
                r.input_tokens + r.output_tokens - estimate,
                now + (block_for or 0.0),
                r.namespace,
                r.provider,
                block_for is not None,
            ),
        )
    return done == 1


def limit_states(conn: sqlite3.Connection, namespace: str | None, now: float) -> list[LimitState]:
    where, params = ("AND l.namespace = ?", [namespace]) if namespace is not None else ("", [])
    rows = conn.execute(
        "SELECT l.namespace, l.provider, (SELECT count(*) FROM llm_slots s"
        " WHERE s.namespace = l.namespace AND s.provider = l.provider AND s.expires_at > ?),"
        " l.blocked_until, l.requests, l.tokens, l.updated_at FROM llm_limits l"
        f" WHERE l.provider <> '' {where} ORDER BY l.namespace, l.provider",
        [now, *params],
    ).fetchall()
    return [LimitState.from_row(row, now) for row in rows]
