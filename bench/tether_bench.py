"""Tether side of the benchmark: the peers' workloads (bench/peers/README.md), on Tether.

Usage: python3 bench/tether_bench.py WORKLOAD [--n N] [--db URL] [--workers K]
                                     [--mode embedded|processes] [--durable]

Store: without ``--db``, a fresh SQLite file in a temp dir (``synchronous=NORMAL``, or
``FULL`` with ``--durable``). With ``--db postgresql://USER@HOST:PORT/DB``, a fresh
database is created on that server for the run and dropped afterwards (the database
named in the URL is only used to connect); the run then also reports the writes per
workflow (``pg_stat_database`` / ``pg_stat_user_tables`` deltas) and the CPU used by
the PostgreSQL, worker and benchmark processes.

Workers: ``embedded`` (the default for one worker) runs the client and one worker in
this process, on one event loop: the same model as DBOS. ``processes`` (the default
for ``--workers`` > 1) starts K ``tether worker bench.apps:app`` subprocesses on the
store and keeps only the client here.

Prints one JSON line on stdout as its last line, shaped like the peers' lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Appended, not prepended: a ``tether`` on PYTHONPATH (run.py's snapshot of a commit)
# must win over the working tree's.
sys.path += [str(ROOT), str(BENCH / "peers")]

from _common import (  # noqa: E402  (shared with the peers: same timing and W5 protocol)
    DEFAULT_N,
    W3_REPEATS,
    emit,
    fanout_result,
    latency_result,
    log,
    recovery_result,
    round_s,
    rss_mb,
    run_main,
    throughput_result,
    w5_phase1,
    write_marker,
)

import tether  # noqa: E402
from bench.apps import app, fan_out, sleep_recovery, three_steps, wait_for_go  # noqa: E402

SYSTEM = "tether"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
W5_CHILD = "_w5-phase1"
#: A W5 workflow that completes this long after phase 2 starts waited on something
#: (a lease of the killed worker) rather than on its own work.
W5_SLOW_S = 5.0


# -- the store under test ------------------------------------------------------------------


@dataclass
class Target:
    url: str
    kind: str  # "sqlite" or "postgres"
    workdir: Path
    durable: bool = False

    @property
    def durability(self) -> str:
        if self.kind == "sqlite":
            mode = "FULL" if self.durable else "NORMAL"
            return f"SQLite WAL, synchronous={mode}"
        return "PostgreSQL (server settings, see synchronous_commit)"

    def store(self) -> tether.Store:
        if self.kind == "sqlite":
            return tether.open_store(self.url, durable=self.durable)
        return tether.open_store(self.url)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def fresh_store(db: str | None, durable: bool) -> AsyncIterator[Target]:
    """A fresh SQLite file in a temp dir, or a fresh database on the server of ``db``."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-tether-"))
    try:
        if db is None:
            yield Target(f"sqlite:///{workdir / 'tether.db'}", "sqlite", workdir, durable)
            return
        if not db.startswith(("postgresql://", "postgres://")):
            raise SystemExit("--db must be a postgresql:// URL (SQLite uses a temp file)")
        name = f"tether_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(db)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield Target(with_database(db, name), "postgres", workdir)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- worker processes ----------------------------------------------------------------------


class WorkerProcs:
    """K ``tether worker bench.apps:app`` subprocesses on one store."""

    def __init__(self, url: str, k: int, workdir: Path) -> None:
        self.url, self.k, self.workdir = url, k, workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._stopped = False

    def _spawn(self, i: int) -> None:
        path = self.workdir / f"worker-{i}.log"
        cmd = [sys.executable, "-m", "tether.cli", "worker", "bench.apps:app", "--db", self.url]
        cmd += ["--log-level", "WARNING", "--identity", f"bench-{i}"]
        # Run from the temp dir: with ``-m`` the working directory comes first on sys.path,
        # and the repository root would shadow the ``tether`` on PYTHONPATH.
        path_env = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
        env = {**os.environ, "PYTHONPATH": path_env}
        with open(path, "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        self.logs.append(path)

    async def start(self, timeout_s: float = 60.0) -> None:
        for i in range(self.k):
            self._spawn(i)
        deadline = time.monotonic() + timeout_s
        while not all("serving" in p.read_text(errors="replace") for p in self.logs):
            for proc, path in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited ({proc.returncode}):\n{path.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not serving after {timeout_s} s")
            await asyncio.sleep(0.05)
        log(f"{self.k} worker process(es) serving")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in self.logs:
            text = path.read_text(errors="replace")
            if "Traceback" in text or " ERROR " in text:
                log(f"{path.name} reported errors:\n{text[-3000:]}")


# -- measurements: CPU from /proc, writes from pg_stat ---------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process, with its command name."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def backends_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving ``database``."""
    return sum(
        cpu
        for pid, (comm, cpu) in _proc_cpu().items()
        if comm.startswith("postgres") and f" {database} " in _cmdline(pid)
    )


@dataclass
class CpuMeter:
    """CPU used between start() and stop(), in % of one core, per group of processes.

    PostgreSQL is reported twice: the backends serving the benchmark database, and all
    postgres processes (including the WAL writer and anyone else's backends). ``other``
    is the rest of the machine's busy time: kernel threads (loopback networking, fsync
    journaling) and any other process.
    """

    worker_pids: Sequence[int] = ()
    database: str | None = None
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._procs0 = _proc_cpu()
        self._machine0 = _machine_cpu()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        procs1, machine1 = _proc_cpu(), _machine_cpu()

        def used(pids: Sequence[int]) -> float:
            total = 0.0
            for pid in pids:
                if pid in procs1:
                    before = self._procs0.get(pid)
                    same = before is not None and before[0] == procs1[pid][0]
                    total += procs1[pid][1] - (before[1] if same and before else 0.0)
            return 100 * total / wall

        postgres = [pid for pid, (comm, _) in procs1.items() if comm.startswith("postgres")]
        mine = [pid for pid in postgres if self.database and f" {self.database} " in _cmdline(pid)]
        busy = machine1[0] - self._machine0[0]
        total = machine1[1] - self._machine0[1]
        cores = os.cpu_count() or 1
        busy_pct = 100 * busy / total if total else 0.0
        groups = {
            "postgres_all_pct_of_core": used(postgres),
            "workers_pct_of_core": used(list(self.worker_pids)),
            "bench_process_pct_of_core": used([os.getpid()]),
        }
        self.result = {
            "cores": cores,
            "machine_busy_pct": round(busy_pct, 1),
            "postgres_bench_db_pct_of_core": round(used(mine), 1),
            **{k: round(v, 1) for k, v in groups.items()},
            "other_pct_of_core": round(max(busy_pct * cores - sum(groups.values()), 0.0), 1),
        }
        return self.result


class PgStats:
    """Row and transaction counters of the benchmark database (pg_stat_*)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.before: dict[str, Any] = {}

    async def read(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.url)
        try:
            db = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            rows = await conn.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
                " WHERE schemaname = 'tether'"
            )
            sync = await conn.fetchval("SHOW synchronous_commit")
        finally:
            await conn.close()
        assert db is not None
        return {
            "xact_commit": db["xact_commit"],
            "xact_rollback": db["xact_rollback"],
            "tables": {
                r["relname"]: (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"]) for r in rows
            },
            "synchronous_commit": sync,
        }

    async def mark(self) -> None:
        await asyncio.sleep(1.2)  # idle backends flush their counters within ~1 s
        self.before = await self.read()

    async def delta(self, n: int) -> dict[str, Any]:
        """Per-workflow deltas since mark(); call after the connections were closed
        (a backend flushes its counters when it exits)."""
        await asyncio.sleep(0.5)
        after = await self.read()
        by_table: dict[str, list[float]] = {}
        totals = [0, 0, 0]
        for name, counts in after["tables"].items():
            old = self.before["tables"].get(name, (0, 0, 0))
            diff = [c - o for c, o in zip(counts, old, strict=True)]
            totals = [t + d for t, d in zip(totals, diff, strict=True)]
            if any(diff):
                by_table[name] = [round(d / n, 2) for d in diff]
        commits = after["xact_commit"] - self.before["xact_commit"]
        return {
            "synchronous_commit": after["synchronous_commit"],
            "xact_commit_per_wf": round(commits / n, 2),
            "xact_rollback": after["xact_rollback"] - self.before["xact_rollback"],
            "rows_written_per_wf": round(sum(totals) / n, 2),
            "rows_ins_upd_del_per_wf": [round(t / n, 2) for t in totals],
            "by_table_ins_upd_del_per_wf": by_table,
        }


# -- workloads -----------------------------------------------------------------------------


def prefix() -> str:
    return uuid.uuid4().hex[:8]


async def w1_throughput(client: tether.Client, n: int) -> tuple[dict[str, Any], float]:
    p = prefix()
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(client.start(three_steps, i, id=f"w1-{p}-{i}") for i in range(n))
    )
    results = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - t0
    assert results == [i + 3 for i in range(n)], "wrong W1 results"
    return throughput_result(SYSTEM, n, elapsed), elapsed


async def w2_latency(client: tether.Client, n: int) -> tuple[dict[str, Any], float]:
    p = prefix()
    latencies: list[float] = []
    t_all = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        result = await client.execute(three_steps, i, id=f"w2-{p}-{i}")
        latencies.append(time.perf_counter() - t0)
        assert result == i + 3, "wrong W2 result"
    return latency_result(SYSTEM, latencies), time.perf_counter() - t_all


async def commit_floor(url: str, runs: int = 200) -> float:
    """W2's floor on this database: the p50 of four one-row INSERTs in sequence, each
    its own transaction (a start and three steps, each durable before the next; no
    reads, no logic, one connection already open)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, k text, v int)")
        latencies = []
        for i in range(runs):
            t0 = time.perf_counter()
            for step in range(4):
                await conn.execute("INSERT INTO bench_floor (k, v) VALUES ($1, $2)", str(i), step)
            latencies.append(time.perf_counter() - t0)
        await conn.execute("DROP TABLE bench_floor")
    finally:
        await conn.close()
    return round(statistics.median(latencies) * 1000, 2)


async def w3_fanout(client: tether.Client, n: int) -> tuple[dict[str, Any], float]:
    p = prefix()
    runs: list[float] = []
    for r in range(W3_REPEATS):
        t0 = time.perf_counter()
        result = await client.execute(fan_out, n, id=f"w3-{p}-{r}")
        runs.append(time.perf_counter() - t0)
        assert result == sum(i + 1 for i in range(n)), "wrong W3 result"
    return fanout_result(SYSTEM, n, runs), sum(runs)


async def w4_signals(n: int, target: Target) -> dict[str, Any]:
    """N workflows wait for a signal; memory while they wait; then time to all done."""
    app.use_store(target.store())
    p = prefix()
    async with app:
        baseline = rss_mb()
        worker = app.worker(cache_size=max(10_000, 2 * n))
        async with worker:
            t0 = time.perf_counter()
            handles = await asyncio.gather(
                *(app.client.start(wait_for_go, i, id=f"w4-{p}-{i}") for i in range(n))
            )
            # Waiting = each run's first step is done and its instance is cached.
            while len(worker.cache) < n:  # noqa: ASYNC110 (a counter, not an event)
                await asyncio.sleep(0.05)
            start_s = time.perf_counter() - t0
            gc.collect()
            waiting = rss_mb()
            t1 = time.perf_counter()
            await asyncio.gather(*(h.signal("go", 1) for h in handles))
            results = await asyncio.gather(*(h.result() for h in handles))
            elapsed = time.perf_counter() - t1
    assert results == [1] * n, "wrong W4 results"
    return {
        "system": SYSTEM,
        "workload": "W4",
        "n": n,
        "start_until_all_waiting_s": round(start_s, 3),
        "worker_rss_mb": waiting,
        "rss_growth_mb": round(waiting - baseline, 1),
        "kb_per_waiting_workflow": round((waiting - baseline) * 1024 / n, 2),
        "signal_to_all_done_s": round(elapsed, 3),
        "store": target.kind,
        "mode": "embedded",
    }


Workload = Callable[[tether.Client, int], Awaitable[tuple[dict[str, Any], float]]]
WORKLOAD_FUNCS: dict[str, Workload] = {"W1": w1_throughput, "W2": w2_latency, "W3": w3_fanout}


async def run_simple(
    workload: str, n: int, target: Target, workers: int, mode: str
) -> dict[str, Any]:
    """W1..W3: open the app, start the workers, time the workload, measure around it."""
    app.use_store(target.store())
    pg = PgStats(target.url) if target.kind == "postgres" else None
    procs = WorkerProcs(target.url, workers, target.workdir) if mode == "processes" else None
    meter = CpuMeter(database=urlsplit(target.url).path.lstrip("/") if pg else None)
    try:
        # The app opens first: migrations and namespace before any worker starts.
        async with app, contextlib.AsyncExitStack() as stack:
            if procs is None:
                await stack.enter_async_context(app.worker())
            else:
                stack.callback(procs.stop)
                await procs.start()
                meter.worker_pids = procs.pids
            if pg is not None:
                await pg.mark()
            meter.start()
            result, _ = await WORKLOAD_FUNCS[workload](app.client, n)
            cpu = meter.stop()
        # Workers stopped and connections closed here: their counters are flushed.
        if pg is not None:
            result["pg_writes"] = await pg.delta(n)
    finally:
        if procs is not None:
            procs.stop()
    result.update(store=target.kind, durability=target.durability, workers=workers, mode=mode)
    result["cpu"] = cpu
    return result


# -- W5: recovery after SIGKILL ------------------------------------------------------------


async def w5_phase1_child(url: str, durable: bool, n: int, effects: str, marker: str) -> None:
    """Child process: start all N workflows and work on them until SIGKILLed."""
    kind = "postgres" if url.startswith("postgres") else "sqlite"
    app.use_store(Target(url, kind, Path(effects).parent, durable).store())
    async with app, app.worker():
        await asyncio.gather(
            *(app.client.start(sleep_recovery, effects, i, id=f"w5-{i}") for i in range(n))
        )
        write_marker(Path(marker))
        log("phase 1: all workflows started")
        await asyncio.Event().wait()


def sqlite_tasks(path: str) -> dict[str, int]:
    """Open tasks of a SQLite store by kind, and how many are leased (owner set and
    lease not expired): what a new worker finds after the crash."""
    now = time.time()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT kind, owner IS NOT NULL AND visible_at > ?, count(*) FROM tasks GROUP BY 1, 2",
            (now,),
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, int] = {}
    for kind, leased, count in rows:
        key = f"{kind}_leased" if leased else kind
        out[key] = out.get(key, 0) + count
    return out


async def w5_recovery(n: int, target: Target) -> dict[str, Any]:
    child = [W5_CHILD, target.url, "1" if target.durable else "0", str(n)]
    before_kill = await w5_phase1(__file__, child, target.workdir, n)
    tasks = sqlite_tasks(target.url.removeprefix("sqlite:///")) if target.kind == "sqlite" else None
    app.use_store(target.store())
    done_at: list[float] = []
    t0 = time.perf_counter()
    async with app, app.worker():

        async def finish(i: int) -> int:
            value: int = await app.client.get_handle(f"w5-{i}").result()
            done_at.append(time.perf_counter() - t0)
            return value

        results = await asyncio.gather(*(finish(i) for i in range(n)))
        elapsed = time.perf_counter() - t0
    assert results == [i + 3 for i in range(n)], "wrong W5 results"
    result = recovery_result(SYSTEM, n, elapsed, target.workdir, before_kill)
    done_at.sort()
    result.update(
        first_done_s=round_s(done_at[0]),
        median_done_s=round_s(done_at[len(done_at) // 2]),
        done_after_5s=sum(1 for t in done_at if t > W5_SLOW_S),
        tasks_at_restart=tasks,
        store=target.kind,
        durability=target.durability,
        workers=1,
        mode="embedded",
    )
    return result


# -- entry point ---------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.n or DEFAULT_N[args.workload]
    mode = args.mode or ("embedded" if args.workers == 1 else "processes")
    if mode == "embedded" and args.workers != 1:
        raise SystemExit("--mode embedded runs exactly one worker")
    source = os.path.dirname(tether.__file__)
    async with fresh_store(args.db, args.durable) as target, asyncio.timeout(args.timeout):
        log(f"tether from {source}; store {target.kind} ({target.durability})")
        log(f"{args.workload} n={n}, {args.workers} worker(s), {mode}")
        if args.workload == "W5":
            result = await w5_recovery(n, target)
        elif args.workload == "W4":
            result = await w4_signals(n, target)
        else:
            result = await run_simple(args.workload, n, target, args.workers, mode)
            if args.workload == "W2" and target.kind == "postgres":
                result["commit_floor_p50_ms"] = await commit_floor(target.url)
    result["tether_source"] = source
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--n", type=int, default=None, help="override N")
    p.add_argument("--db", default=None, help="PostgreSQL server URL (default: SQLite temp file)")
    p.add_argument("--workers", type=int, default=1, help="worker count (default 1)")
    p.add_argument("--mode", choices=("embedded", "processes"), default=None)
    p.add_argument("--durable", action="store_true", help="SQLite synchronous=FULL")
    p.add_argument("--timeout", type=float, default=600.0, help="fail after this many seconds")
    return p


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == W5_CHILD:
        url, durable, count, effects, marker = sys.argv[2:7]
        run_main(w5_phase1_child(url, durable == "1", int(count), effects, marker))
        return
    args = parser().parse_args()
    emit(run_main(run(args)))


if __name__ == "__main__":
    main()
