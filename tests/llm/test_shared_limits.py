"""Shared provider limits, with real worker processes: three processes serve one
namespace against one simulated provider; the provider counts the calls it held at
once and the calls per time window, and the caps hold for all of them together
(on every store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm import limits_app
from tests.llm.conftest import until
from tether.llm import SimServer

pytestmark = pytest.mark.crash  # real worker processes
ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
CALLS = 12


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


def _spawn(url: str, sim: SimServer, folder: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TETHER_SIM_URL": sim.url,
        "TETHER_READY_DIR": str(folder),
    }
    with (folder / "workers.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.llm.limits_app", url],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


async def test_limits_hold_across_worker_processes(
    store_url: str, sim: SimServer, tmp_path: Path
) -> None:
    app = limits_app.app
    app.use_store(store_url)
    sim.slow("m", delay=1.0, times=CALLS)  # each call takes a second: the cap binds
    workers = [_spawn(store_url, sim, tmp_path) for _ in range(WORKERS)]
    try:
        await until(
            lambda: len(list(tmp_path.glob("[0-9]*"))) == WORKERS, "the workers to serve", 60
        )
        async with app:
            handles = [await app.client.start(limits_app.ask, n) for n in range(CALLS)]
            for handle in handles:
                assert await handle.result(timeout=120) == "oa:m"
            rows = await app.client.usage(group_by=["outcome"])
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        await app.close()
    log = (tmp_path / "workers.log").read_text()
    assert sim.served("m", ok=True) == CALLS, log[-3000:]
    assert [(r.group["outcome"], r.calls) for r in rows] == [("ok", CALLS)]
    assert len({c.key for c in sim.calls}) > 1, "more than one process made calls"
    # Two calls in flight at most, for all the processes together (each alone would
    # allow two), and the cap was reached.
    assert sim.peak_in_flight == 2
    # Three requests a second after a burst of two. A request reaches the provider a
    # moment after the store admitted it, so arrivals may bunch by one.
    rate = limits_app.LIMITS.requests_per_minute
    assert rate is not None
    for window in (0.5, 1.0, 2.0, 3.0):
        allowed = 2 + window * rate / 60 + 1
        assert sim.busiest(window) <= allowed, (window, sim.busiest(window), sorted(sim.arrivals))
