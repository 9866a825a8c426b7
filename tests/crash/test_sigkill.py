"""Guarantees under SIGKILL: a real worker process killed at random moments, restarted.

200 workflows of 5 steps with durable timers between some steps. Every workflow ends
with the right result; no activity whose completion was recorded ran again; timers
fired at their time; nothing is left claimed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.crash import crash_app
from tether.history import EventType

pytestmark = pytest.mark.crash

WORKFLOWS = 200
KILLS = 4
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, effects: Path, log: Path, *, cli: bool = False) -> subprocess.Popen[bytes]:
    """A worker process: the module's own runner (short leases), or ``tether worker``."""
    env = {**os.environ, "TETHER_EFFECTS": str(effects), "PYTHONPATH": str(ROOT)}
    if cli:
        command = ["-m", "tether.cli", "worker", "tests.crash.crash_app:app", "--db", url]
        command += ["--pace", "0.005"]  # the option reaches the worker
    else:
        command = ["-m", "tests.crash.crash_app", url]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *command], env=env, stdout=out, stderr=out, cwd=ROOT
        )


def _effects(path: Path) -> list[tuple[str, int, int, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        wf, number, attempt, pid = line.split()
        rows.append((wf, int(number), int(attempt), int(pid)))
    return rows


async def _until(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling a file another process writes


async def test_sigkill_loses_nothing_and_repeats_no_recorded_step(
    store_url: str, tmp_path: Path
) -> None:
    effects, log = tmp_path / "effects.txt", tmp_path / "worker.log"
    rng = random.Random(20261125)
    client_app = crash_app.app
    client_app.use_store(store_url)
    async with client_app:
        handles = await asyncio.gather(
            *(
                client_app.client.start(crash_app.five_steps, f"wf-{i}", id=f"wf-{i}")
                for i in range(WORKFLOWS)
            )
        )
        worker = _spawn(store_url, effects, log)
        kills = 0
        try:
            for _ in range(KILLS):
                target = len(_effects(effects)) + rng.randint(40, 160)
                await _until(lambda t=target: len(_effects(effects)) >= t, "progress")  # type: ignore[misc]
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                kills += 1
                worker = _spawn(store_url, effects, log)
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        histories = {h.workflow_id: await h.history() for h in handles}
        leftover = await client_app.store.next_due(["default"], ["default"])

    assert kills == KILLS
    assert all(r["total"] == 15 for r in results), results[:3]
    assert all(len(r["slept"]) == 2 and min(r["slept"]) >= 0.3 for r in results)

    executed: dict[tuple[str, int], list[int]] = defaultdict(list)
    pids = set()
    for wf, number, attempt, pid in _effects(effects):
        executed[(wf, number)].append(attempt)
        pids.add(pid)
    assert len(pids) > KILLS, "work was done by every incarnation of the worker"
    for wf, events in histories.items():
        recorded = {
            e.attrs["step"]: e.attrs["attempt"]
            for e in events
            if e.type == EventType.ACTIVITY_STARTED
        }
        # Steps are numbered by the engine: activities are steps 1, 2, 4, 5, 7.
        assert len(recorded) == 5
        for number, step in zip(range(1, 6), sorted(recorded), strict=True):
            attempts = executed[(wf, number)]
            # Every execution belongs to an attempt up to the recorded one: once a
            # completion is recorded, the step never runs again.
            assert max(attempts) == recorded[step], (wf, number, attempts, recorded[step])
            assert attempts.count(recorded[step]) == 1
        timers = {e.attrs["step"]: e for e in events if e.type == EventType.TIMER_STARTED}
        for fired in (e for e in events if e.type == EventType.TIMER_FIRED):
            assert fired.ts >= timers[fired.attrs["step"]].attrs["fire_at"]
        assert sum(e.type == EventType.WORKFLOW_COMPLETED for e in events) == 1
    assert leftover is None, "no task or timer is left claimed or pending"


async def test_sigterm_finishes_in_flight_work(store_url: str, tmp_path: Path) -> None:
    effects, log = tmp_path / "effects.txt", tmp_path / "worker.log"
    app = crash_app.app
    app.use_store(store_url)
    async with app:
        handles = [
            await app.client.start(crash_app.five_steps, f"t-{i}", id=f"t-{i}") for i in range(20)
        ]
        worker = _spawn(store_url, effects, log, cli=True)
        await _until(lambda: len(_effects(effects)) >= 10, "progress")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert b"stopping" in log.read_bytes()
        # The command runs on uvloop (a dependency on Linux), signal handlers and all.
        assert b"(event loop: uvloop)" in log.read_bytes()
        # A graceful stop leaves nothing leased: a new worker finishes well before
        # the first lease of the old one (10 s for workflow tasks) could expire.
        worker = _spawn(store_url, effects, log, cli=True)
        try:
            results = await asyncio.gather(*(h.result(timeout=8) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert [r["total"] for r in results] == [15] * 20
