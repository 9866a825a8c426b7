"""A burst after the queue drained: W1 twice on one PostgreSQL database.

Usage: python3 bench/drained_queue.py [--db postgresql://USER@HOST:PORT/DB] [--n N]
                                      [--rounds R]

A queue table's statistics say what it held when VACUUM or ANALYZE last looked. In
production that is often a drained queue: its pages kept (one long timer near the end
of the table is enough to stop VACUUM from truncating them) and next to no rows on
them. Plans made on such statistics take the table as empty whatever it holds later, so
the next burst runs on them until something analyzes the table again.

Each round, on a fresh database of the server (dropped afterwards): a burst of ``N``
``three_steps`` workflows (as W1), then one far timer task, then ``VACUUM tether.tasks``
(as autovacuum would), then a second burst of ``N`` from a newly opened app. Prints the
throughput of both bursts and the statistics of ``tether.tasks`` (pages, rows) after the
VACUUM and after the second burst: rows that grew there are the store's own ANALYZE
(``planner_stats.py``). The second burst is slower than the first anyway (its tables
are larger); what to compare is the second burst across versions of the store. The last
line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import asyncpg

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent), str(BENCH)]

from apps import app  # noqa: E402
from tether_bench import fresh_store, w1_throughput  # noqa: E402

import tether.runtime  # noqa: E402

FAR_TIMER = """
INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at, owner,
                          token, scheduled_at, name, priority)
VALUES ('default', 'far-timer', 'timer', 'default', 1, 4e9, NULL, 0, 0, 'timer', 2)
"""
TASKS_STATS = "SELECT relpages, reltuples FROM pg_class WHERE oid = 'tether.tasks'::regclass"


async def burst(n: int) -> float:
    """One W1 burst, as ``tether_bench.py W1`` runs it, from a newly opened app."""
    async with app, app.worker():
        _, elapsed = await w1_throughput(app.client, n)
    return n / elapsed


async def one_round(db: str, n: int) -> tuple[float, float]:
    async with fresh_store(db, False) as target:
        app.use_store(target.store())
        first = await burst(n)
        conn = await asyncpg.connect(target.url)
        try:
            await conn.execute(FAR_TIMER)
            await conn.execute("VACUUM tether.tasks")
            drained = tuple(await conn.fetchrow(TASKS_STATS))
            second = await burst(n)
            after = tuple(await conn.fetchrow(TASKS_STATS))
        finally:
            await conn.close()
    print(
        f"first burst {first:,.0f} wf/s; tasks (pages, rows) after VACUUM {drained}; "
        f"second burst {second:,.0f} wf/s; tasks after it {after}",
        flush=True,
    )
    return first, second


async def main(args: argparse.Namespace) -> None:
    rounds = [await one_round(args.db, args.n) for _ in range(args.rounds)]
    firsts, seconds = zip(*rounds, strict=True)
    print(
        f"medians over {args.rounds} rounds of {args.n:,}: first burst "
        f"{statistics.median(firsts):,.0f} wf/s, second burst "
        f"{statistics.median(seconds):,.0f} wf/s"
    )
    figures = {
        "system": "tether",
        "workload": "drained_queue",
        "n": args.n,
        "first_burst_wf_s": [round(x, 1) for x in firsts],
        "second_burst_wf_s": [round(x, 1) for x in seconds],
        "second_burst_median_wf_s": round(statistics.median(seconds), 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    tether.runtime.run(main(parser.parse_args()))
