"""Where tenant B's time goes under tenant A's flood: a timeline of every B run.

Runs the "flood, fair" phase of ``noisy_neighbour.py`` (A floods N runs from another
process; B starts one run every 50 ms beside the worker) with the PostgreSQL store's
calls for namespace ``b`` timestamped: start sent/done, workflow task claimed/sent/
done, activity claimed/begun, advance or finish sent/done, result. Prints the paths
B's runs took and, for each step to the next, p50/p90/p99/mean in ms.

    python bench/noisy_trace.py --db postgresql://postgres@127.0.0.1:5432/tether_nn [--flood 10000]

A diagnostic, not a benchmark: the wrappers cost a little, and it prints no peers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import noisy_neighbour as nn

import tether
from tether.store.postgres.store import PostgresStore
from tether.worker.worker import Worker

NS = "b"
Marks = dict[str, float]
TIMES: dict[str, Marks] = collections.defaultdict(dict)


def mark(run_id: str, what: str) -> None:
    TIMES[run_id].setdefault(what, time.perf_counter())


def traced(name: str, before: str, after: str) -> None:
    """Mark B's runs around ``PostgresStore.<name>`` (first argument: a run or task)."""
    original: Callable[..., Awaitable[Any]] = getattr(PostgresStore, name)

    async def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        subject = args[0] if args else None
        ours = getattr(subject, "namespace", None) == NS
        if ours:
            mark(subject.run_id, before)  # type: ignore[union-attr]
        result = await original(self, *args, **kwargs)
        if ours:
            mark(subject.run_id, after)  # type: ignore[union-attr]
        return result

    setattr(PostgresStore, name, wrapper)


def traced_claim(name: str, what: str) -> None:
    original: Callable[..., Awaitable[Any]] = getattr(PostgresStore, name)

    async def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        tasks = await original(self, *args, **kwargs)
        for task in tasks:
            if task.namespace == NS:
                mark(task.run_id, what)
        return tasks

    setattr(PostgresStore, name, wrapper)


def instrument() -> None:
    traced("start_run", "start sent", "start done")
    traced("start_run_executed", "start sent", "start done")
    traced("complete_workflow_task", "wft sent", "wft done")
    traced("advance_after_activity", "advance sent", "advance done")
    traced("finish_activity", "finish sent", "finish done")
    traced_claim("claim_workflow_tasks_fair", "wft claimed")
    traced_claim("claim_activity_tasks_fair", "activity claimed")
    run_activity = Worker._activity

    async def activity(self: Worker, task: Any) -> None:
        if task.namespace == NS:
            mark(task.run_id, "activity begun")
        await run_activity(self, task)

    Worker._activity = activity  # type: ignore[method-assign]

    # B's own start and result, around noisy_neighbour's ticker (which starts B's runs).
    start = tether.Client.start
    result = tether.WorkflowHandle.result

    async def started(self: tether.Client, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        handle = await start(self, *args, **kwargs)
        if handle.namespace == NS and handle.run_id is not None:
            TIMES[handle.run_id]["began"] = began
        return handle

    async def resulted(self: tether.WorkflowHandle[Any], *args: Any, **kwargs: Any) -> Any:
        value = await result(self, *args, **kwargs)
        if self.namespace == NS and self.run_id is not None:
            mark(self.run_id, "result")
        return value

    tether.Client.start = started  # type: ignore[method-assign]
    tether.WorkflowHandle.result = resulted  # type: ignore[method-assign]


def report() -> None:
    steps: dict[str, list[float]] = collections.defaultdict(list)
    paths: collections.Counter[str] = collections.Counter()
    for marks in TIMES.values():
        if "result" not in marks:
            continue
        ordered = sorted((at, what) for what, at in marks.items())
        paths[" > ".join(what for _, what in ordered)] += 1
        for (t0, a), (t1, b) in itertools.pairwise(ordered):
            steps[f"{a} -> {b}"].append((t1 - t0) * 1000)
    print("paths B's runs took:")
    for path, count in paths.most_common(5):
        print(f"  {count:4d}  {path}")
    print("step to next step, ms:")
    for step, ms in sorted(steps.items(), key=lambda kv: -statistics.fmean(kv[1])):
        ms.sort()
        p50, p90, p99 = (ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.5, 0.9, 0.99))
        print(f"  {step:34s} n={len(ms):4d} p50={p50:7.1f} p90={p90:7.1f}"
              f" p99={p99:7.1f} mean={statistics.fmean(ms):7.1f}")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", required=True, help="postgresql://... (its tether schema is dropped)"
    )
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--b-runs", type=int, default=400)
    args = parser.parse_args()
    instrument()
    out = await nn.phase(
        args.db, n_flood=args.flood, b_runs=args.b_runs, interval=0.05, fair=True,
        slots=200, concurrency=200, pace=None,
    )  # fmt: skip
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()})
    report()


if __name__ == "__main__":
    asyncio.run(main())
