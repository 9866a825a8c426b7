"""Where a W2 run's time goes on PostgreSQL: this process's CPU and the server's functions.

Usage: python3 bench/w2_split.py [--n N] [--rounds R] [--db postgresql://USER@HOST:PORT/DB]

Runs W2 (``three_steps`` one after another, client and worker in this process) on a
fresh database of that server, dropped afterwards, and prints per round: the p50, the
user and system CPU of this process per run, its voluntary context switches per run,
the CPU of the database's backends per run (from ``/proc``: the server must be on this
machine); the time per run inside asyncpg's ``_do_execute`` (entered when a statement
is sent, left when its answer is decoded), wall and this thread's CPU, and the same
outside it (the run's Python between statements; approximate: the store's background
statements overlap the run's, and what other tasks of the event loop do while a
statement waits counts as inside); and, from ``pg_stat_user_functions``
(``track_functions = all``, set on the fresh database only), the calls per run and the
time per call of each Tether function.

On a server that preloads ``pg_stat_statements`` (``track = all``), it also prints the
statements inside those functions by their time per run. The machine's shared server
does not; a private one does (``initdb`` into a temp folder, then ``pg_ctl -D DIR -o
"-p 5544 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
start``, and ``--db postgresql://postgres@127.0.0.1:5544/postgres``). Its times leave
out each statement's executor start and end (opening the indexes of the table written:
most of what a function's call takes beyond its statements).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import asyncpg.connection

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent), str(BENCH)]

from apps import app, three_steps  # noqa: E402
from tether_bench import backends_cpu, with_database  # noqa: E402

WARMUP = 50
#: Statements shown per round (by their time per run).
TOP_STATEMENTS = 15


class InStatements:
    """Wall time and this thread's CPU spent inside asyncpg's ``_do_execute``, summed
    (every statement of the store goes through it; diagnostics only: it wraps a
    private method)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        inner = asyncpg.connection.Connection._do_execute

        async def timed(conn: Any, *args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return await inner(conn, *args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.thread_time() - cpu

        asyncpg.connection.Connection._do_execute = timed  # type: ignore[method-assign]


async def _statements_loaded(conn: asyncpg.Connection) -> bool:
    libraries = await conn.fetchval("SHOW shared_preload_libraries")
    return "pg_stat_statements" in libraries


async def _statements(url: str, n: int) -> None:
    """The slowest statements of the timed part (per run), from pg_stat_statements."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT $1",
            TOP_STATEMENTS,
        )
    finally:
        await conn.close()
    for row in rows:
        query = " ".join(row["query"].split())
        print(
            f"    {row['total_exec_time'] / n * 1000:7.1f} us/run"
            f"  {row['calls'] / n:5.2f} calls/run"
            f"  {row['total_exec_time'] / row['calls'] * 1000:6.1f} us/call  {query[:90]}"
        )


async def _functions(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        # The statistics reach the view when the backends report them (at the latest
        # when they exit): the store is closed by now, its backends may still be ending.
        for _ in range(50):
            rows = await conn.fetch(
                "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
                " WHERE schemaname = 'tether' ORDER BY total_time DESC"
            )
            if rows:
                return rows
            await asyncio.sleep(0.1)
        return []
    finally:
        await conn.close()


async def split(server: str, n: int, rounds: int) -> None:
    inside = InStatements()
    name = f"tether_split_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await admin.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'all'")
        statements = await _statements_loaded(admin)
        if statements:
            conn = await asyncpg.connect(url)
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.close()
        for r in range(rounds):
            app.use_store(url)
            async with app, app.worker():
                for i in range(WARMUP):
                    await app.client.execute(three_steps, i, id=f"warm-{r}-{i}")
            # Closed: its backends reported their counts on exit, so the reset clears
            # the warm-up's; the backends of the timed part start from zero.
            reset = await asyncpg.connect(url)
            await reset.execute("SELECT pg_stat_reset()")
            if statements:
                await reset.execute("SELECT pg_stat_statements_reset()")
            await reset.close()
            app.use_store(url)
            async with app, app.worker():
                before = resource.getrusage(resource.RUSAGE_SELF)
                backends = backends_cpu(name)
                inside.wall = inside.cpu = 0.0
                wall0, cpu0 = time.perf_counter(), time.thread_time()
                latencies = []
                for i in range(n):
                    t0 = time.perf_counter()
                    await app.client.execute(three_steps, i, id=f"w2-{r}-{i}")
                    latencies.append(time.perf_counter() - t0)
                wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
                after = resource.getrusage(resource.RUSAGE_SELF)
                backends = backends_cpu(name) - backends
            print(
                f"round {r + 1}: p50 {statistics.median(latencies) * 1000:.2f} ms;"
                f" per run: user {(after.ru_utime - before.ru_utime) / n * 1000:.3f} ms,"
                f" system {(after.ru_stime - before.ru_stime) / n * 1000:.3f} ms,"
                f" {(after.ru_nvcsw - before.ru_nvcsw) / n:.1f} voluntary switches;"
                f" PostgreSQL backends {backends / n * 1000:.3f} ms"
            )
            print(
                f"    in statements {inside.wall / n * 1000:.3f} ms"
                f" (this thread's CPU {inside.cpu / n * 1000:.3f});"
                f" outside {(wall - inside.wall) / n * 1000:.3f} ms"
                f" (CPU {(cpu - inside.cpu) / n * 1000:.3f})"
            )
            for row in await _functions(url):
                calls = row["calls"]
                print(
                    f"    {row['funcname']:28s} {calls / n:5.2f} calls/run"
                    f"  {row['total_time'] / calls * 1000:7.1f} us/call"
                    f"  ({row['self_time'] / calls * 1000:7.1f} us its own)"
                )
            if statements:
                print("  statements (pg_stat_statements, executor run only):")
                await _statements(url, n)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    asyncio.run(split(args.db, args.n, args.rounds))


if __name__ == "__main__":
    main()
