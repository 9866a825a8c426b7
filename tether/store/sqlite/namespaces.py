"""Tenancy in the SQLite store: namespaces and their settings, limits, fair claims,
retention and deletion. Write operations run in the writer's group transaction (see
``writer.py``); the logic mirrors ``store/postgres/migrations/0004_tenancy.sql``.

A namespace is deleted in bounded batches (``delete_namespace_batch``, each one op of
the writer, so other work commits between them) after being marked as being deleted
(``begin_namespace_deletion``; ``store/postgres/migrations/0012_batched_deletion.sql``
explains both). Deletion overwrites what it frees (``PRAGMA secure_delete``), and the
store then truncates the write-ahead log, so deleted payloads leave neither the
database file nor the log (see ``SqliteStore.delete_namespace_batch``). Idle fairness
flows are swept here too (``sweep_fair_flows``).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from ...errors import (
    InvalidArgument,
    NamespaceAlreadyExists,
    NamespaceNotFound,
    WorkflowNotFound,
)
from ..protocol import ClaimLimit, NamespaceRecord, NamespaceStats, QueueBacklog, SettingsChange
from .ops import _in, claimed_rows, usable

__all__ = [
    "begin_namespace_deletion",
    "claim_fair",
    "create_namespace",
    "delete_namespace_batch",
    "delete_runs",
    "deleting_namespaces",
    "get_namespace",
    "list_namespace_records",
    "namespace_stats",
    "purge_closed_runs",
    "reserve_start",
    "sweep_fair_flows",
    "update_namespace",
]


def _record(row: Sequence[Any]) -> NamespaceRecord:
    return NamespaceRecord(row[0], row[1], orjson.loads(row[2]))


# -- namespaces -----------------------------------------------------------------------


def create_namespace(
    conn: sqlite3.Connection, namespace: str, settings: dict[str, Any], now: float
) -> NamespaceRecord:
    row = conn.execute(
        "INSERT INTO namespaces (name, created_at, settings) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING name, created_at, settings",
        (namespace, now, orjson.dumps(settings).decode()),
    ).fetchone()
    if row is None:
        if _deleting(conn, namespace):
            raise NamespaceAlreadyExists(
                f"namespace {namespace!r} is being deleted; create it again once that has finished",
                namespace=namespace,
            )
        raise NamespaceAlreadyExists(namespace=namespace)
    return _record(row)


def _deleting(conn: sqlite3.Connection, namespace: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM namespaces WHERE name = ? AND deleting_since IS NOT NULL", (namespace,)
    ).fetchone()
    return row is not None


def get_namespace(conn: sqlite3.Connection, namespace: str) -> NamespaceRecord:
    row = conn.execute(
        "SELECT name, created_at, settings FROM namespaces"
        " WHERE name = ? AND deleting_since IS NULL",
        (namespace,),
    ).fetchone()
    if row is None:
        raise NamespaceNotFound(namespace=namespace)
    return _record(row)


def update_namespace(
    conn: sqlite3.Connection, namespace: str, settings: dict[str, Any] | SettingsChange
) -> NamespaceRecord:
    if callable(settings):
        # The writer runs this inside its transaction: no other write comes between.
        settings = settings(get_namespace(conn, namespace).settings)
    row = conn.execute(
        "UPDATE namespaces SET settings = ? WHERE name = ? AND deleting_since IS NULL"
        " RETURNING name, created_at, settings",
        (orjson.dumps(settings).decode(), namespace),
    ).fetchone()
    if row is None:
        raise NamespaceNotFound(namespace=namespace)
    return _record(row)


def list_namespace_records(conn: sqlite3.Connection) -> list[NamespaceRecord]:
    rows = conn.execute(
        "SELECT name, created_at, settings FROM namespaces WHERE deleting_since IS NULL"
        " ORDER BY name"
    )
    return [_record(r) for r in rows.fetchall()]


def namespace_stats(conn: sqlite3.Connection, namespace: str, now: float) -> NamespaceStats:
    get_namespace(conn, namespace)
    runs = conn.execute(
        "SELECT status, count(*) FROM runs WHERE namespace = ? GROUP BY status ORDER BY status",
        (namespace,),
    ).fetchall()
    queues = conn.execute(
        "SELECT task_queue,"
        " count(*) FILTER (WHERE kind = 'workflow' AND visible_at <= :now),"
        " count(*) FILTER (WHERE kind = 'activity' AND visible_at <= :now),"
        " count(*) FILTER (WHERE owner IS NOT NULL AND visible_at > :now),"
        " count(*) FILTER (WHERE owner IS NULL AND visible_at > :now)"
        " FROM tasks WHERE namespace = :ns GROUP BY task_queue ORDER BY task_queue",
        {"now": now, "ns": namespace},
    ).fetchall()
    waits = conn.execute(
        "SELECT kind, sum(waits) FROM namespace_limits WHERE namespace = ? GROUP BY kind",
        (namespace,),
    ).fetchall()
    return NamespaceStats(
        namespace,
        {r[0]: r[1] for r in runs},
        [QueueBacklog(*r) for r in queues],
        {r[0]: r[1] for r in waits},
    )


# -- deletion ---------------------------------------------------------------------------


def _namespaced_tables(conn: sqlite3.Connection, *, run_rows: bool) -> list[str]:
    """Tables naming a namespace (and a run, with ``run_rows``), the runs table last:
    tables added by later migrations are found as long as they name both."""
    found = []
    for (table,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if "namespace" in columns and (not run_rows or "run_id" in columns):
            found.append(table)
    return sorted(found, key=lambda t: (t == "runs", t))


@contextmanager
def _overwriting(conn: sqlite3.Connection) -> Iterator[None]:
    """Deleted content is overwritten with zeros while this is active."""
    conn.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        conn.execute("PRAGMA secure_delete = OFF")


def begin_namespace_deletion(conn: sqlite3.Connection, namespace: str, now: float) -> None:
    """Mark the namespace as being deleted (again is harmless): from this commit on it
    is invisible, refuses input, and its tasks are not claimed."""
    row = conn.execute(
        "UPDATE namespaces SET deleting_since = coalesce(deleting_since, ?) WHERE name = ?"
        " RETURNING name",
        (now, namespace),
    ).fetchone()
    if row is None:
        raise NamespaceNotFound(namespace=namespace)


def deleting_namespaces(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM namespaces WHERE deleting_since IS NOT NULL ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def _batch_tables(conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    """The tables naming a namespace, runs first, each with the columns of its key."""
    found = []
    for table in _namespaced_tables(conn, run_rows=False):
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        key = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
        found.append((table, key or ["rowid"]))
    return sorted(found, key=lambda t: (t[0] != "runs", t[0]))


def delete_namespace_batch(conn: sqlite3.Connection, namespace: str, limit: int) -> bool:
    """Remove at most ``limit`` rows of a namespace being deleted, runs first (a run's
    other rows, if any are left, can no longer be reached); when nothing is left,
    remove the namespace itself. True once it is gone."""
    row = conn.execute(
        "SELECT deleting_since FROM namespaces WHERE name = ?", (namespace,)
    ).fetchone()
    if row is None:
        return True
    if row[0] is None:
        raise InvalidArgument(f"namespace {namespace!r} is not being deleted", namespace=namespace)
    left = limit
    with _overwriting(conn):
        for table, key in _batch_tables(conn):
            if left <= 0:
                break
            cols = ", ".join(f'"{c}"' for c in key)
            left -= conn.execute(
                f'DELETE FROM "{table}" WHERE ({cols}) IN'
                f' (SELECT {cols} FROM "{table}" WHERE namespace = ? LIMIT ?)',
                (namespace, left),
            ).rowcount
        if left < limit:
            return False
        conn.execute("DELETE FROM namespaces WHERE name = ?", (namespace,))
    return True


def delete_runs(conn: sqlite3.Connection, namespace: str, run_ids: Sequence[str]) -> int:
    if not run_ids:
        return 0
    marks = _in(run_ids)
    found = conn.execute(
        f"SELECT count(*) FROM runs WHERE namespace = ? AND run_id IN ({marks})",
        (namespace, *run_ids),
    ).fetchone()[0]
    with _overwriting(conn):
        for table in _namespaced_tables(conn, run_rows=True):
            conn.execute(
                f'DELETE FROM "{table}" WHERE namespace = ? AND run_id IN ({marks})',
                (namespace, *run_ids),
            )
    return int(found)


def delete_run(conn: sqlite3.Connection, namespace: str, run_id: str) -> None:
    if not delete_runs(conn, namespace, [run_id]):
        raise WorkflowNotFound(namespace=namespace, run_id=run_id)


def purge_closed_runs(
    conn: sqlite3.Connection, namespace: str, closed_before: float, limit: int
) -> int:
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT run_id FROM runs WHERE namespace = ? AND closed_at < ?"
            " ORDER BY closed_at LIMIT ?",
            (namespace, closed_before, limit),
        ).fetchall()
    ]
    return delete_runs(conn, namespace, ids)


# -- limits and fair claims -------------------------------------------------------------


def _tokens(
    conn: sqlite3.Connection, namespace: str, kind: str, queue: str, rate: float | None, now: float
) -> float:
    """Refill a limiter's bucket (one second of tokens, at least one) and return it."""
    burst = max(rate or 1.0, 1.0)
    conn.execute(
        "INSERT INTO namespace_limits (namespace, kind, task_queue, tokens, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (namespace, kind, queue, burst, now),
    )
    (tokens,) = conn.execute(
        "UPDATE namespace_limits SET tokens = CASE WHEN :rate IS NULL THEN tokens"
        " ELSE min(:burst, tokens + max(:now - updated_at, 0) * :rate) END, updated_at = :now"
        " WHERE namespace = :ns AND kind = :kind AND task_queue = :queue RETURNING tokens",
        {"rate": rate, "burst": burst, "now": now, "ns": namespace, "kind": kind, "queue": queue},
    ).fetchone()
    return float(tokens)


def _claim_lane(
    conn: sqlite3.Connection,
    kind: str,
    owner: str,
    namespace: str,
    queues: Sequence[str],
    limit: int,
    lease: float,
    now: float,
) -> list[tuple[Any, ...]]:
    if limit <= 0 or not queues:
        return []
    picked = conn.execute(
        f"SELECT t.id, t.owner IS NOT NULL FROM tasks t WHERE t.kind = ? AND t.namespace = ?"
        f" AND t.task_queue IN ({_in(queues)}) AND t.visible_at <= ?"
        " ORDER BY t.priority, t.pass, t.visible_at LIMIT ?",
        (kind, namespace, *queues, now, limit),
    ).fetchall()
    for task_id, lost in picked:
        conn.execute(
            "UPDATE tasks SET owner = ?, visible_at = ?, token = token + 1,"
            " dirty = CASE WHEN kind = 'workflow' THEN 0 ELSE dirty END,"
            " attempt = attempt + ? WHERE id = ?",
            (owner, now + lease, 1 if lost and kind == "activity" else 0, task_id),
        )
    return claimed_rows(conn, picked)


def _claim_namespace(
    conn: sqlite3.Connection,
    kind: str,
    owner: str,
    limit: ClaimLimit,
    queues: Sequence[str],
    want: int,
    lease: float,
    now: float,
) -> list[tuple[Any, ...]]:
    ns = limit.namespace
    n, tokens = want, 0.0
    if limit.limited:
        tokens = _tokens(conn, ns, kind, "", limit.rate, now)
    if limit.max_leased is not None:
        (leased,) = conn.execute(
            "SELECT count(*) FROM tasks WHERE namespace = ? AND kind = ? AND owner IS NOT NULL"
            " AND visible_at > ?",
            (ns, kind, now),
        ).fetchone()
        n = min(n, limit.max_leased - leased)
    if limit.rate is not None:
        n = min(n, math.floor(tokens))
    n = max(n, 0)
    held, left, out = n < want, n, []
    for queue, rate in limit.queue_rates.items():
        if queue not in queues:
            continue
        lane = min(left, math.floor(_tokens(conn, ns, kind, queue, rate, now)))
        held = held or lane < left
        got = _claim_lane(conn, kind, owner, ns, [queue], lane, lease, now)
        conn.execute(
            "UPDATE namespace_limits SET tokens = tokens - ?"
            " WHERE namespace = ? AND kind = ? AND task_queue = ?",
            (len(got), ns, kind, queue),
        )
        left -= len(got)
        out.extend(got)
    others = [q for q in queues if q not in limit.queue_rates]
    out.extend(_claim_lane(conn, kind, owner, ns, others, left, lease, now))
    if limit.limited:
        waiting = (
            held
            and conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM tasks WHERE kind = ? AND namespace = ?"
                f" AND task_queue IN ({_in(queues)}) AND visible_at <= ?)",
                (kind, ns, *queues, now),
            ).fetchone()[0]
        )
        conn.execute(
            "UPDATE namespace_limits SET tokens = tokens - ?, waits = waits + ?"
            " WHERE namespace = ? AND kind = ? AND task_queue = ''",
            (len(out) if limit.rate is not None else 0, 1 if waiting else 0, ns, kind),
        )
    return out


def _has_due(
    conn: sqlite3.Connection, kind: str, namespace: str, queues: Sequence[str], now: float
) -> bool:
    """Whether a task of this kind is due in these queues (a search of tasks_due)."""
    marks = ", ".join("?" * len(queues))
    row = conn.execute(
        f"SELECT 1 FROM tasks WHERE namespace = ? AND task_queue IN ({marks}) AND kind = ?"
        " AND visible_at <= ? LIMIT 1",
        (namespace, *queues, kind, now),
    ).fetchone()
    return row is not None


def claim_fair(
    conn: sqlite3.Connection,
    kind: str,
    owner: str,
    limits: Sequence[ClaimLimit],
    queues: Sequence[str],
    total: int,
    lease: float,
    now: float,
) -> list[tuple[Any, ...]]:
    """Each namespace takes up to its share, in order; then what is left of ``total``
    goes to those that used all of theirs. Rows as ``CLAIMED_COLUMNS`` + ``lost``."""
    live = set(usable(conn, [limit.namespace for limit in limits]))
    # Only the namespaces with a task due are visited (0034 on PostgreSQL explains it).
    limits = [
        limit
        for limit in limits
        if limit.namespace in live and _has_due(conn, kind, limit.namespace, queues, now)
    ]
    left, full, out = total, [False] * len(limits), []
    for first in (True, False):
        for i, limit in enumerate(limits):
            if left <= 0:
                break
            if first:
                want = min(limit.share, left)
            elif full[i]:
                want = left
            else:
                continue
            if want <= 0:
                continue
            got = _claim_namespace(conn, kind, owner, limit, queues, want, lease, now)
            full[i] = len(got) == want
            left -= len(got)
            out.extend(got)
    return out


def reserve_start(
    conn: sqlite3.Connection,
    namespace: str,
    queue: str,
    rate: float | None,
    queue_rate: float | None,
    now: float,
) -> float:
    """GCRA: ``next_at`` is when the bucket is empty again; a start may begin up to one
    second's worth of starts before it. Returns the seconds the caller must wait."""
    buckets = [(q, r) for q, r in (("", rate), (queue, queue_rate)) if r is not None]
    at = now
    for q, r in buckets:
        conn.execute(
            "INSERT INTO namespace_limits (namespace, kind, task_queue) VALUES (?, 'start', ?)"
            " ON CONFLICT DO NOTHING",
            (namespace, q),
        )
        (next_at,) = conn.execute(
            "SELECT next_at FROM namespace_limits"
            " WHERE namespace = ? AND kind = 'start' AND task_queue = ?",
            (namespace, q),
        ).fetchone()
        at = max(at, next_at - (max(r, 1.0) - 1) / r)
    for q, r in buckets:
        conn.execute(
            "UPDATE namespace_limits SET next_at = max(next_at, ?) + ?, waits = waits + ?"
            " WHERE namespace = ? AND kind = 'start' AND task_queue = ?",
            (at, 1 / r, 1 if at > now else 0, namespace, q),
        )
    return at - now


# -- sweeps -----------------------------------------------------------------------------


def sweep_fair_flows(conn: sqlite3.Connection, namespace: str, limit: int) -> int:
    """Remove at most ``limit`` idle rows of ``fair_flows`` (see
    ``store/postgres/migrations/0012_batched_deletion.sql``): keys with no workflow or
    activity task of their (queue, kind, priority), then queue clocks with no key and
    no keyed task left. Returns how many."""
    busy = (
        "SELECT DISTINCT t.task_queue, t.kind, t.priority, f.fairness_key FROM tasks t"
        " JOIN run_fairness f ON f.namespace = t.namespace AND f.run_id = t.run_id"
        " WHERE t.namespace = :ns AND t.kind <> 'timer' AND f.fairness_key IS NOT NULL"
    )
    # rowcount does not count what a statement starting with WITH changed: total_changes does.
    changes = conn.total_changes
    conn.execute(
        f"WITH busy AS MATERIALIZED ({busy})"
        " DELETE FROM fair_flows WHERE (namespace, task_queue, kind, priority, fairness_key) IN ("
        " SELECT k.namespace, k.task_queue, k.kind, k.priority, k.fairness_key FROM fair_flows k"
        " WHERE k.namespace = :ns AND k.fairness_key <> '' AND NOT EXISTS (SELECT 1 FROM busy b"
        " WHERE b.task_queue = k.task_queue AND b.kind = k.kind AND b.priority = k.priority"
        " AND b.fairness_key = k.fairness_key) LIMIT :limit)",
        {"ns": namespace, "limit": limit},
    )
    keys = conn.total_changes - changes
    clocks = conn.execute(
        "DELETE FROM fair_flows WHERE (namespace, task_queue, kind, priority, fairness_key) IN ("
        " SELECT c.namespace, c.task_queue, c.kind, c.priority, c.fairness_key FROM fair_flows c"
        " WHERE c.namespace = :ns AND c.fairness_key = '' AND NOT EXISTS (SELECT 1 FROM"
        " fair_flows k WHERE k.namespace = c.namespace AND k.task_queue = c.task_queue"
        " AND k.kind = c.kind AND k.priority = c.priority AND k.fairness_key <> '')"
        " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.kind = c.kind"
        " AND t.namespace = c.namespace AND t.task_queue = c.task_queue"
        " AND t.priority = c.priority AND t.pass > 0) LIMIT :limit)",
        {"ns": namespace, "limit": max(limit - keys, 0)},
    ).rowcount
    return int(keys + clocks)
