"""Visibility at scale: list queries over 1,000,000 stored runs, on SQLite and PostgreSQL.

    python bench/visibility.py                      # 1,000,000 runs, both stores
    python bench/visibility.py --n 100000 --only sqlite
    python bench/visibility.py --pg postgresql://postgres@127.0.0.1:5432/postgres

Runs and their search attributes are bulk-loaded straight into the store's tables
(the schema of the migrations, secondary indexes dropped during the load and built
after, then ANALYZE): a SQLite file in a temp dir, and a fresh PostgreSQL database that
the script creates and drops. Then each typical query runs ``--repeat`` times through
``Store.list_runs`` (the query, then the page's search attributes) with varying
parameters, and the script prints p50/p99 per query and its plan (EXPLAIN QUERY PLAN /
EXPLAIN) so one can see the index used. Last line: one JSON object with every figure.

The data: namespace ``bench`` (plus 10% of the runs in ``other``, to keep isolation
honest), 10 workflow types, 90% completed / 5% running / 3% failed / 2% canceled,
start times spread over 30 days, three attributes per run: ``customer`` (keyword, one
of 10,000), ``priority`` (int 0-9), ``amount`` (float 0-1000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tether.search_attributes import Range  # noqa: E402
from tether.store import RunFilter, RunStatus, Store  # noqa: E402
from tether.store.postgres import PostgresStore  # noqa: E402
from tether.store.postgres.queries import RUN_COLUMNS as PG_COLUMNS  # noqa: E402
from tether.store.sqlite import SqliteStore  # noqa: E402
from tether.store.sqlite.store import _RUN_COLUMNS as SQLITE_COLUMNS  # noqa: E402
from tether.store.visibility import (  # noqa: E402
    attribute_filter,
    decode_page_token,
    encode_page_token,
    list_runs_sql,
)

NS = "bench"
T0 = 1_790_000_000.0
SPAN = 30 * 86400.0
TYPES = [f"type-{i}" for i in range(10)]
CUSTOMERS = 10_000
STATUSES = ["completed"] * 90 + ["running"] * 5 + ["failed"] * 3 + ["canceled"] * 2
RUN_COLUMN_NAMES = [
    "namespace", "run_id", "workflow_id", "workflow_type", "task_queue", "status",
    "created_at", "closed_at", "last_seq",
]  # fmt: skip
SA_COLUMN_NAMES = [
    "namespace", "run_id", "name", "idx", "type", "str_value", "int_value", "float_value",
    "created_at",
]  # fmt: skip


def generate(n: int, seed: int = 7) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Rows of ``runs`` and of ``search_attributes`` for ``n`` runs, oldest first."""
    rnd = random.Random(seed)
    for i in range(n):
        namespace = "other" if i % 10 == 9 else NS
        created = T0 + SPAN * i / n
        status = rnd.choice(STATUSES)
        closed = None if status == "running" else created + rnd.uniform(1, 600)
        run_id = uuid.UUID(int=rnd.getrandbits(128), version=4).hex
        run = (namespace, run_id, f"wf-{i}", rnd.choice(TYPES), "main", status, created,
               closed, 5)  # fmt: skip
        attrs = [
            (namespace, run_id, "customer", 0, "keyword", f"cust-{rnd.randrange(CUSTOMERS)}",
             None, None, created),
            (namespace, run_id, "priority", 0, "int", None, rnd.randrange(10), None, created),
            (namespace, run_id, "amount", 0, "float", None, None,
             round(rnd.uniform(0, 1000), 2), created),
        ]  # fmt: skip
        yield run, attrs


def _chunks(n: int, size: int = 50_000) -> Iterator[tuple[list[Any], list[Any]]]:
    runs: list[Any] = []
    attrs: list[Any] = []
    for run, rows in generate(n):
        runs.append(run)
        attrs.extend(rows)
        if len(runs) >= size:
            yield runs, attrs
            runs, attrs = [], []
    if runs:
        yield runs, attrs


# -- loading ----------------------------------------------------------------------------


async def load_sqlite(path: str, n: int) -> None:
    """A migrated SQLite store at ``path`` holding ``n`` runs."""
    store = SqliteStore(path)
    await store.open()
    await store.ensure_namespace(NS)
    await store.ensure_namespace("other")
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('runs', 'search_attributes')"
        ).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        run_marks = ",".join("?" * len(RUN_COLUMN_NAMES))
        sa_marks = ",".join("?" * len(SA_COLUMN_NAMES))
        for runs, attrs in _chunks(n):
            conn.executemany(
                f"INSERT INTO runs ({', '.join(RUN_COLUMN_NAMES)}) VALUES ({run_marks})", runs
            )
            conn.executemany(
                f"INSERT INTO search_attributes ({', '.join(SA_COLUMN_NAMES)}) VALUES ({sa_marks})",
                attrs,
            )
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def load_postgres(url: str, n: int) -> None:
    """Migrate the (empty) database at ``url`` and load ``n`` runs into it."""
    store = PostgresStore(url)
    await store.open()
    await store.ensure_namespace(NS)
    await store.ensure_namespace("other")
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'tether'"
            " AND tablename IN ('runs', 'search_attributes') AND indexname NOT LIKE '%pkey'"
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX tether."{row[0]}"')
        for runs, attrs in _chunks(n):
            await conn.copy_records_to_table(
                "runs", schema_name="tether", records=runs, columns=RUN_COLUMN_NAMES
            )
            await conn.copy_records_to_table(
                "search_attributes", schema_name="tether", records=attrs, columns=SA_COLUMN_NAMES
            )
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for row in indexes:
            await conn.execute(row[1])
        await conn.execute("VACUUM ANALYZE tether.runs")
        await conn.execute("VACUUM ANALYZE tether.search_attributes")
    finally:
        await conn.close()


# -- queries ----------------------------------------------------------------------------

Query = dict[str, Any]  # keyword arguments of Store.list_runs (``attrs`` for where)


def _deep_token(n: int) -> str:
    """The page token of a run in the middle of the namespace: a deep page."""
    for i, (run, _) in enumerate(generate(n)):
        if i >= n // 2 and run[0] == NS:
            return encode_page_token(run[6], run[1])
    raise AssertionError("no run")


def queries(n: int, rnd: random.Random) -> dict[str, Callable[[], Query]]:
    """Each typical query, as a maker of fresh parameters."""
    deep = _deep_token(n)

    def window() -> RunFilter:
        start = T0 + rnd.uniform(0, SPAN - 86400)
        return RunFilter(started_after=start, started_before=start + 3600)

    def closed_window() -> RunFilter:
        start = T0 + rnd.uniform(0, SPAN - 86400)
        return RunFilter(closed_after=start, closed_before=start + 3600)

    def attrs(**values: Any) -> RunFilter:
        return RunFilter(attributes=[attribute_filter(k, v) for k, v in values.items()])

    def amount_band() -> RunFilter:
        low = round(rnd.uniform(0, 999), 2)
        return attrs(amount=Range(low, low + 1.0))

    return {
        "newest page": lambda: {},
        "type": lambda: {"workflow_type": rnd.choice(TYPES)},
        "type + status": lambda: {
            "workflow_type": rnd.choice(TYPES),
            "status": RunStatus(rnd.choice(["running", "failed", "completed"])),
        },
        "status": lambda: {"status": RunStatus.RUNNING},
        "start-time range (1h)": lambda: {"where": window()},
        "close-time range (1h)": lambda: {"where": closed_window()},
        "attribute = keyword": lambda: {
            "where": attrs(customer=f"cust-{rnd.randrange(CUSTOMERS)}")
        },
        "attribute = int, + type": lambda: {
            "where": attrs(priority=rnd.randrange(10)),
            "workflow_type": rnd.choice(TYPES),
        },
        "attribute float range": lambda: {"where": amount_band()},
        "deep page (token)": lambda: {"cursor": deep},
    }


async def time_queries(
    store: Store, n: int, repeat: int, limit: int
) -> dict[str, dict[str, float]]:
    rnd = random.Random(11)
    out: dict[str, dict[str, float]] = {}
    for name, make in queries(n, rnd).items():
        times: list[float] = []
        rows = 0
        for _ in range(repeat):
            kwargs = make()
            started = time.perf_counter()
            page = await store.list_runs(NS, limit=limit, **kwargs)
            times.append((time.perf_counter() - started) * 1000)
            rows += len(page.runs)
        times.sort()
        out[name] = {
            "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            "avg_rows": round(rows / repeat, 1),
        }
        print(f"  {name:28} p50 {out[name]['p50_ms']:8.2f} ms   p99 {out[name]['p99_ms']:8.2f} ms"
              f"   ({out[name]['avg_rows']:.0f} rows/page)", flush=True)  # fmt: skip
    return out


def plan_sql(kind: str, query: Query, limit: int = 50) -> tuple[str, list[Any]]:
    """The SQL that ``list_runs`` runs for ``query`` on store ``kind``."""
    cursor = query.get("cursor")
    return list_runs_sql(
        schema="tether." if kind == "postgres" else "",
        placeholder=(lambda i: f"${i}") if kind == "postgres" else (lambda _: "?"),
        run_columns=PG_COLUMNS if kind == "postgres" else SQLITE_COLUMNS,
        namespace=NS,
        status=None if query.get("status") is None else str(query["status"]),
        workflow_type=query.get("workflow_type"),
        where=query.get("where") or RunFilter(),
        cursor=decode_page_token(cursor) if cursor else None,
        limit=limit + 1,
    )


def explain_sqlite(conn: sqlite3.Connection, query: Query) -> str:
    sql, params = plan_sql("sqlite", query)
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return "\n".join(str(r[-1]) for r in rows)


async def explain_postgres(conn: asyncpg.Connection, query: Query, analyze: bool = False) -> str:
    sql, params = plan_sql("postgres", query)
    verb = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)" if analyze else "EXPLAIN"
    rows = await conn.fetch(f"{verb} {sql}", *params)
    return "\n".join(r[0] for r in rows)


# -- the run ----------------------------------------------------------------------------


def _db_url(admin: str, name: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


async def _timed(what: str, step: Awaitable[None]) -> float:
    started = time.perf_counter()
    await step
    took = time.perf_counter() - started
    print(f"  {what}: {took:.1f} s", flush=True)
    return took


async def bench_sqlite(n: int, repeat: int, limit: int) -> dict[str, Any]:
    print(f"SQLite, {n:,} runs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "visibility.db")
        load = await _timed("bulk load + indexes + ANALYZE", load_sqlite(path, n))
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())  # noqa: ASYNC240
        store = SqliteStore(path)
        await store.open()
        try:
            figures = await time_queries(store, n, repeat, limit)
        finally:
            await store.close()
        conn = sqlite3.connect(path)
        plans = {
            name: explain_sqlite(conn, make())
            for name, make in queries(n, random.Random(3)).items()
        }
        conn.close()
    _print_plans(plans)
    return {"load_s": round(load, 1), "bytes": size, "queries": figures, "plans": plans}


async def bench_postgres(admin: str, n: int, repeat: int, limit: int) -> dict[str, Any]:
    print(f"PostgreSQL, {n:,} runs", flush=True)
    name = f"tether_visibility_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = _db_url(admin, name)
    try:
        load = await _timed("bulk load + indexes + VACUUM ANALYZE", load_postgres(url, n))
        store = PostgresStore(url)
        await store.open()
        try:
            figures = await time_queries(store, n, repeat, limit)
        finally:
            await store.close()
        conn = await asyncpg.connect(url)
        try:
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            plans = {
                q: await explain_postgres(conn, make())
                for q, make in queries(n, random.Random(3)).items()
            }
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    _print_plans(plans)
    return {"load_s": round(load, 1), "bytes": size, "queries": figures, "plans": plans}


def _print_plans(plans: dict[str, str]) -> None:
    for name, plan in plans.items():
        print(f"  -- plan: {name}")
        for line in plan.splitlines():
            print(f"     {line}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="runs to load")
    parser.add_argument("--repeat", type=int, default=200, help="timings per query")
    parser.add_argument("--limit", type=int, default=50, help="runs per page")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    out: dict[str, Any] = {"n": args.n, "limit": args.limit, "repeat": args.repeat}
    if args.only in (None, "sqlite"):
        out["sqlite"] = await bench_sqlite(args.n, args.repeat, args.limit)
    if args.only in (None, "postgres"):
        out["postgres"] = await bench_postgres(args.pg, args.n, args.repeat, args.limit)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
