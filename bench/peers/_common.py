"""Shared helpers for the peer benchmark scripts (timing, percentiles, output)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

WORKLOADS = ("W1", "W2", "W3", "W4", "W5")

#: Default N per workload, as set by the benchmark brief.
DEFAULT_N = {"W1": 2000, "W2": 200, "W3": 100, "W4": 1000, "W5": 1000}

#: W3 runs the fan-out workflow this many times and reports the median.
W3_REPEATS = 3

#: W5 durable sleep between step1 and step2, in seconds.
W5_SLEEP_S = 2.0

#: W5 waits this long after all step1 effects are seen before the SIGKILL, so
#: the durable sleeps that follow step1 are recorded.
W5_KILL_SETTLE_S = 0.25


def log(*parts: object) -> None:
    """Log a line to stderr (stdout is reserved for the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the single JSON result line on stdout (with the event loop it ran on)."""
    if _event_loop is not None:
        result.setdefault("event_loop", _event_loop)
    print(json.dumps(result, sort_keys=False), flush=True)


#: The loop ``run_main`` ran on, for ``emit``.
_event_loop: str | None = None


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop of every system's process: the one Tether's own processes run on
    (uvloop where installed, the standard loop with TETHER_EVENT_LOOP=asyncio), so
    that no system is measured on a faster loop than another."""
    from tether.runtime import loop_factory as tethers

    return tethers()


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop of `loop_factory`, with SIGTERM cancelling
    `main` so that its `finally` blocks (stop the server, shut DBOS down, remove temp
    files) run; exits 143."""

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    global _event_loop
    factory = loop_factory()
    _event_loop = "asyncio" if factory is None else factory.__module__.split(".")[0]
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(cancellable())
    except asyncio.CancelledError:
        log("terminated by SIGTERM")
        sys.exit(143)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of a process in MiB; defaults to this process."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def record_effect(path: str, tag: str) -> None:
    """Append one line to a side-effect log (one O_APPEND write: atomic)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag}\n".encode())
    finally:
        os.close(fd)


def count_effects(path: str, tag: str) -> int:
    """Count the lines of a side-effect log equal to `tag`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for line in fh if line.rstrip("\n") == tag)
    except FileNotFoundError:
        return 0


async def poll_until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float,
    interval_s: float = 0.05,
    child: subprocess.Popen[bytes] | None = None,
) -> None:
    """Await until `check()` is true; fail on timeout or if `child` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"child process exited ({child.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s} s")
        await asyncio.sleep(interval_s)


async def wait_for_effects(
    path: str,
    tag: str,
    n: int,
    timeout_s: float,
    child: subprocess.Popen[bytes] | None = None,
) -> None:
    """Await until the side-effect log holds `n` lines `tag`."""
    await poll_until(
        lambda: count_effects(path, tag) >= n, f"{n} {tag!r} effects", timeout_s, child=child
    )


def spawn_phase1(script: str, *args: str) -> subprocess.Popen[bytes]:
    """Start the W5 phase-1 worker: `script` re-run with `args`, stdout to our stderr."""
    return subprocess.Popen([sys.executable, script, *args], stdout=sys.stderr)


def sigkill(child: subprocess.Popen[bytes]) -> None:
    child.kill()  # SIGKILL
    child.wait()


def write_marker(path: Path) -> None:
    """Write the wall-clock time now (compared across processes) to `path`."""
    path.write_text(repr(time.time()))


def read_marker(path: Path) -> float:
    return float(path.read_text())


async def w5_phase1(
    script: str, child_args: Sequence[str], workdir: Path, n: int
) -> dict[str, int]:
    """Run W5 phase 1 in a child process and SIGKILL it once all N step1 ran.

    The child (`script` with `child_args`, then the effects path and the
    marker path) starts the N workflows, writes the marker once all are
    started, and works on them. Returns once all durable sleeps are due,
    with how many step2 and step3 had already run before the kill.
    """
    effects, marker = w5_effects_path(workdir), workdir / "w5-started"
    child = spawn_phase1(script, *child_args, effects, str(marker))
    try:
        await wait_for_effects(effects, "step1", n, timeout_s=600, child=child)
        await poll_until(marker.exists, "phase-1 start marker", timeout_s=60, child=child)
        # Give the last workflows a moment to record their durable sleep.
        await asyncio.sleep(W5_KILL_SETTLE_S)
    finally:
        sigkill(child)
    killed_at = time.time()
    before_kill = {
        "step2_before_kill": count_effects(effects, "step2"),
        "step3_before_kill": count_effects(effects, "step3"),
    }
    log(f"phase 1 SIGKILLed; {before_kill}")
    due = max(read_marker(marker), killed_at) + W5_SLEEP_S + 0.1 - time.time()
    if due > 0:
        await asyncio.sleep(due)
    return before_kill


def w5_effects_path(workdir: Path) -> str:
    return str(workdir / "w5-effects.log")


def recovery_result(
    system: str, n: int, seconds: float, workdir: Path, before_kill: dict[str, int]
) -> dict[str, Any]:
    effects = w5_effects_path(workdir)
    step1 = count_effects(effects, "step1")
    return {
        "system": system,
        "workload": "W5",
        "n": n,
        "recovery_s": round_s(seconds),
        "step1_executions": step1,
        "step1_ran_once_each": step1 == n,
        "step2_executions": count_effects(effects, "step2"),
        "step3_executions": count_effects(effects, "step3"),
        **before_kill,
    }


def round_s(seconds: float) -> float:
    return round(seconds, 3)


def round_ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--n", type=int, default=None, help="override N")
    return parser


def throughput_result(system: str, n: int, seconds: float) -> dict[str, Any]:
    return {
        "system": system,
        "workload": "W1",
        "n": n,
        "seconds": round_s(seconds),
        "workflows_per_s": round(n / seconds, 1),
    }


def latency_result(system: str, latencies_s: Sequence[float]) -> dict[str, Any]:
    return {
        "system": system,
        "workload": "W2",
        "n": len(latencies_s),
        "p50_ms": round_ms(percentile(latencies_s, 50)),
        "p99_ms": round_ms(percentile(latencies_s, 99)),
        "mean_ms": round_ms(statistics.fmean(latencies_s)),
    }


def fanout_result(system: str, n: int, runs_s: Sequence[float]) -> dict[str, Any]:
    return {
        "system": system,
        "workload": "W3",
        "n": n,
        "median_ms": round_ms(median(runs_s)),
        "runs_ms": [round_ms(s) for s in runs_s],
    }
