"""Where a W2 run's time goes on PostgreSQL: this process's CPU and the server's functions.

Usage: python3 bench/w2_split.py [--n N] [--rounds R] [--db postgresql://USER@HOST:PORT/DB]

Runs W2 (``three_steps`` one after another, client and worker in this process) on a
fresh database of that server, dropped afterwards, and prints per round: the p50, the
user and system CPU of this process per run, its voluntary context switches per run,
and, from ``pg_stat_user_functions`` (``track_functions = all``, set on the fresh
database only), the calls per run and the time per call of each Tether function.
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

import asyncpg

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent), str(BENCH)]

from apps import app, three_steps  # noqa: E402
from tether_bench import with_database  # noqa: E402

WARMUP = 50


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
    name = f"tether_split_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await admin.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'all'")
        for r in range(rounds):
            app.use_store(url)
            async with app, app.worker():
                for i in range(WARMUP):
                    await app.client.execute(three_steps, i, id=f"warm-{r}-{i}")
            # Closed: its backends reported their counts on exit, so the reset clears
            # the warm-up's; the backends of the timed part start from zero.
            reset = await asyncpg.connect(url)
            await reset.execute("SELECT pg_stat_reset()")
            await reset.close()
            app.use_store(url)
            async with app, app.worker():
                before = resource.getrusage(resource.RUSAGE_SELF)
                latencies = []
                for i in range(n):
                    t0 = time.perf_counter()
                    await app.client.execute(three_steps, i, id=f"w2-{r}-{i}")
                    latencies.append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_SELF)
            print(
                f"round {r + 1}: p50 {statistics.median(latencies) * 1000:.2f} ms;"
                f" per run: user {(after.ru_utime - before.ru_utime) / n * 1000:.3f} ms,"
                f" system {(after.ru_stime - before.ru_stime) / n * 1000:.3f} ms,"
                f" {(after.ru_nvcsw - before.ru_nvcsw) / n:.1f} voluntary switches"
            )
            for row in await _functions(url):
                calls = row["calls"]
                print(
                    f"    {row['funcname']:28s} {calls / n:5.2f} calls/run"
                    f"  {row['total_time'] / calls * 1000:7.1f} us/call"
                    f"  ({row['self_time'] / calls * 1000:7.1f} us its own)"
                )
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
