"""Updates under SIGKILL: an update accepted but not completed survives the worker.

Callers in this process wait for updates whose handlers run a step that blocks; the
worker is killed while every update is accepted (in history) and none is completed.
A new worker replays the runs, finishes each update exactly once, and the callers,
still waiting on the store's wake-ups, get the results.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.crash import update_app
from tests.crash.test_signal_sigkill import _until
from tether.history import EventType

pytestmark = pytest.mark.crash

WORKFLOWS = 8
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, effects: Path, release: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TETHER_EFFECTS": str(effects),
        "TETHER_RELEASE": str(release),
        "PYTHONPATH": str(ROOT),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.update_app", url],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


def _stamps(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(line.split()[1], int(line.split()[3])) for line in path.read_text().splitlines()]


async def test_sigkill_between_accepting_and_completing_an_update(
    store_url: str, tmp_path: Path
) -> None:
    effects, release, log = tmp_path / "effects.txt", tmp_path / "release", tmp_path / "w.log"
    app = update_app.app
    app.use_store(store_url)
    async with app:
        handles = [
            await app.client.start(update_app.approver, f"u-{i}", id=f"u-{i}")
            for i in range(WORKFLOWS)
        ]
        worker = _spawn(store_url, effects, release, log)
        try:
            callers = [
                asyncio.ensure_future(h.update("approve", i, update_id=f"approve-{i}", timeout=120))
                for i, h in enumerate(handles)
            ]
            await _until(
                lambda: len({wf for wf, _ in _stamps(effects)}) == WORKFLOWS,
                "every update handler to run its step",
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            for h in handles:
                events = await h.history()
                assert [e.type for e in events].count(EventType.UPDATE_ACCEPTED) == 1
                assert EventType.UPDATE_COMPLETED not in [e.type for e in events]
            assert not any(c.done() for c in callers)
            release.touch()
            worker = _spawn(store_url, effects, release, log)
            results = await asyncio.wait_for(asyncio.gather(*callers), 120)
            # Asked again with the same id: the recorded outcome, nothing re-run.
            again = await handles[0].update("approve", 99, update_id="approve-0", timeout=30)
            for h in handles:
                await h.signal("finish")
            finals = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        histories = [await h.history() for h in handles]

    assert results == [i * 10 + 1 for i in range(WORKFLOWS)]
    assert again == 1
    assert finals == [{"approvals": 1, "stamped": i * 10} for i in range(WORKFLOWS)]
    for events in histories:
        types = [e.type for e in events]
        assert types.count(EventType.UPDATE_ACCEPTED) == 1
        assert types.count(EventType.UPDATE_COMPLETED) == 1
        assert types.count(EventType.ACTIVITY_SCHEDULED) == 1  # the step was not re-issued
    # The killed attempts ran again (activities run at least once), and only those.
    attempts: dict[str, list[int]] = {}
    for wf, attempt in _stamps(effects):
        attempts.setdefault(wf, []).append(attempt)
    assert all(sorted(a) == [1, 2] for a in attempts.values()), attempts
