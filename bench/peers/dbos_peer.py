"""DBOS peer for the Tether benchmark.

Usage: python3 bench/peers/dbos_peer.py WORKLOAD [--n N] [--pg URL]

Launches DBOS in this process with its SQLite system database in a temp dir
(default) or, with --pg, in a fresh database created on that PostgreSQL server
(and dropped afterwards), runs one workload and prints one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from _common import (
    DEFAULT_N,
    W3_REPEATS,
    base_parser,
    emit,
    fanout_result,
    latency_result,
    log,
    poll_until,
    recovery_result,
    round_s,
    rss_mb,
    run_main,
    throughput_result,
    w5_phase1,
    wait_for_effects,
    write_marker,
)
from _dbos_workflows import fan_out, sleep_recovery, three_steps, wait_for_go
from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandleAsync

SYSTEM = "dbos"
APP_NAME = "tether-bench"
W5_CHILD = "_w5-phase1"
#: W5 phase 2 checks for completion this often (DBOS's own get_result polls
#: every 1 s by default, too coarse to time a recovery).
W5_POLL_S = 0.05

R = TypeVar("R")


@dataclass
class SystemDb:
    url: str
    kind: str  # "sqlite" or "postgres"
    workdir: Path


@contextmanager
def system_db(pg_url: str | None) -> Iterator[SystemDb]:
    """A fresh system database: SQLite file in a temp dir, or a new PostgreSQL
    database on the server of `pg_url` (dropped on exit)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-dbos-"))
    try:
        if pg_url is None:
            yield SystemDb(f"sqlite:///{workdir / 'dbos.sqlite'}", "sqlite", workdir)
            return
        admin_url = sa.make_url(pg_url).set(drivername="postgresql+psycopg")
        db_name = f"dbos_bench_{uuid.uuid4().hex[:10]}"
        bench_url = admin_url.set(database=db_name)
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
            try:
                yield SystemDb(bench_url.render_as_string(hide_password=False), "postgres", workdir)
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        finally:
            admin.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def dbos_launched(url: str) -> Iterator[None]:
    """DBOS at its defaults, except for the system database URL."""
    config: DBOSConfig = {"name": APP_NAME, "system_database_url": url}
    DBOS(config=config)
    try:
        DBOS.launch()
        yield
    finally:
        DBOS.destroy()


async def start_with_id(
    workflow_id: str, func: Callable[..., Coroutine[Any, Any, R]], *args: Any
) -> WorkflowHandleAsync[R]:
    with SetWorkflowID(workflow_id):
        return await DBOS.start_workflow_async(func, *args)


async def await_results(handles: Sequence[WorkflowHandleAsync[Any]]) -> list[Any]:
    return await asyncio.gather(*(h.get_result() for h in handles))


def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def w1_throughput(n: int, _: SystemDb) -> dict[str, Any]:
    prefix = run_id()
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(start_with_id(f"w1-{prefix}-{i}", three_steps, i) for i in range(n))
    )
    results = await await_results(handles)
    elapsed = time.perf_counter() - t0
    assert results == [i + 3 for i in range(n)], "wrong W1 results"
    return throughput_result(SYSTEM, n, elapsed)


async def w2_latency(n: int, _: SystemDb) -> dict[str, Any]:
    prefix = run_id()
    latencies: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        handle = await start_with_id(f"w2-{prefix}-{i}", three_steps, i)
        result = await handle.get_result()
        latencies.append(time.perf_counter() - t0)
        assert result == i + 3, "wrong W2 result"
    return latency_result(SYSTEM, latencies)


async def w3_fanout(n: int, _: SystemDb) -> dict[str, Any]:
    prefix = run_id()
    runs: list[float] = []
    for r in range(W3_REPEATS):
        t0 = time.perf_counter()
        handle = await start_with_id(f"w3-{prefix}-{r}", fan_out, n)
        result = await handle.get_result()
        runs.append(time.perf_counter() - t0)
        assert result == sum(i + 1 for i in range(n)), "wrong W3 result"
    return fanout_result(SYSTEM, n, runs)


async def w4_signals(n: int, db: SystemDb) -> dict[str, Any]:
    prefix = run_id()
    effects = str(db.workdir / "w4-effects.log")
    t_start = time.perf_counter()
    handles = await asyncio.gather(
        *(start_with_id(f"w4-{prefix}-{i}", wait_for_go, effects, i) for i in range(n))
    )
    await wait_for_effects(effects, "ready", n, timeout_s=300)
    start_s = time.perf_counter() - t_start
    await asyncio.sleep(1.0)  # let the last workflows settle into recv
    worker_rss = rss_mb()
    t0 = time.perf_counter()
    await asyncio.gather(*(DBOS.send_async(h.get_workflow_id(), 1, topic="go") for h in handles))
    results = await await_results(handles)
    elapsed = time.perf_counter() - t0
    assert results == [1] * n, "wrong W4 results"
    return {
        "system": SYSTEM,
        "workload": "W4",
        "n": n,
        "start_until_all_waiting_s": round_s(start_s),
        "worker_rss_mb": worker_rss,
        "signal_to_all_done_s": round_s(elapsed),
    }


async def w5_phase1_child(url: str, n: int, effects: str, marker: str) -> None:
    """Child process: start all N workflows and run them until SIGKILLed."""
    with dbos_launched(url):
        await asyncio.gather(
            *(start_with_id(f"w5-{i}", sleep_recovery, effects, i) for i in range(n))
        )
        write_marker(Path(marker))
        log("phase 1: all workflows started")
        await asyncio.Event().wait()


async def count_succeeded() -> int:
    done = await DBOS.list_workflows_async(
        workflow_id_prefix="w5-", status="SUCCESS", load_input=False, load_output=False
    )
    return len(done)


async def all_succeeded(n: int) -> bool:
    return await count_succeeded() >= n


async def w5_recovery(n: int, db: SystemDb) -> dict[str, Any]:
    before_kill = await w5_phase1(__file__, [W5_CHILD, db.url, str(n)], db.workdir, n)
    t0 = time.perf_counter()
    with dbos_launched(db.url):  # launch recovers this executor's pending workflows
        await poll_until(
            lambda: all_succeeded(n), "all W5 workflows done", timeout_s=600, interval_s=W5_POLL_S
        )
        elapsed = time.perf_counter() - t0
        results: list[int] = [
            await (await DBOS.retrieve_workflow_async(f"w5-{i}")).get_result() for i in range(n)
        ]
    assert results == [i + 3 for i in range(n)], "wrong W5 results"
    return recovery_result(SYSTEM, n, elapsed, db.workdir, before_kill)


WORKLOAD_FUNCS: dict[str, Callable[[int, SystemDb], Awaitable[dict[str, Any]]]] = {
    "W1": w1_throughput,
    "W2": w2_latency,
    "W3": w3_fanout,
    "W4": w4_signals,
    "W5": w5_recovery,
}


async def run(workload: str, n: int, pg_url: str | None) -> dict[str, Any]:
    with system_db(pg_url) as db:
        log(f"system database: {db.kind}; running {workload} n={n}")
        if workload == "W5":  # launches DBOS itself, twice (child, then here)
            result = await WORKLOAD_FUNCS[workload](n, db)
        else:
            with dbos_launched(db.url):
                result = await WORKLOAD_FUNCS[workload](n, db)
        result["system_db"] = db.kind
        return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == W5_CHILD:
        url, count, effects, marker = sys.argv[2:6]
        run_main(w5_phase1_child(url, int(count), effects, marker))
        return
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--pg",
        metavar="URL",
        default=None,
        help="PostgreSQL server URL; a fresh database is created on it for the run",
    )
    args = parser.parse_args()
    n = args.n or DEFAULT_N[args.workload]
    emit(run_main(run(args.workload, n, args.pg)))


if __name__ == "__main__":
    main()
