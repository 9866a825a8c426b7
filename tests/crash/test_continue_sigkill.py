"""Continue-as-new under SIGKILL, at the two moments that matter.

A worker process kills itself (see ``continue_app.py``) when a workflow task continues
its run as new: ``before_commit``, when the code has decided but nothing is written,
and ``after_commit``, when the new run is written but its first task has not run.
Another worker takes over. Each workflow id must end with exactly one new run, which
receives the signals the old run had not taken (and one sent while no worker ran)
and completes; no step of the old run may run again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.crash import continue_app
from tests.store.helpers import eventually
from tether.history import EventType
from tether.store import RunStatus

pytestmark = pytest.mark.crash

WORKFLOWS = 3
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, moment: str, tmp: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TETHER_EFFECTS": str(tmp / "effects.txt"),
        "TETHER_CRASH_AT": moment,
        "TETHER_CRASH_MARKS": str(tmp / "marks"),
        "PYTHONPATH": str(ROOT),
    }
    with (tmp / "worker.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.continue_app", url],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


async def _died(worker: subprocess.Popen[bytes]) -> int:
    """Wait for the worker to end by itself (it kills itself at the chosen moment)."""
    return await asyncio.to_thread(worker.wait, 60)


@pytest.mark.parametrize("moment", ["before_commit", "after_commit"])
async def test_sigkill_during_continue_as_new(store_url: str, tmp_path: Path, moment: str) -> None:
    (tmp_path / "marks").mkdir()
    app = continue_app.app
    app.use_store(store_url)
    async with app:
        handles = [
            await app.client.start(continue_app.relay, f"r{i}", 0, [], id=f"r{i}")
            for i in range(WORKFLOWS)
        ]
        workers = [_spawn(store_url, moment, tmp_path)]
        try:
            for handle in handles:

                async def recorded(handle=handle) -> bool:  # type: ignore[no-untyped-def]
                    events = await handle.history()
                    return any(e.type == EventType.ACTIVITY_COMPLETED for e in events)

                await eventually(recorded, timeout=60)
            # Sent once every step's outcome is in (the first signal makes the worker
            # die): continuing as new is then the task of a signal, never of a step.
            for handle in handles:
                await handle.signal("msg", 1)
                await handle.signal("msg", 2)
            codes = [await _died(workers[0])]
            # The moment was the chosen one: look while no worker runs.
            for mark in (tmp_path / "marks").iterdir():
                page = await app.client.list(limit=100)
                mine = [r for r in page.runs if r.workflow_id == mark.name]
                if moment == "before_commit":
                    assert [r.status for r in mine] == [RunStatus.RUNNING]
                    continue
                assert sorted(r.status for r in mine) == ["continued_as_new", "running"]
                opened = next(r for r in mine if r.status == RunStatus.RUNNING)
                first = await app.store.read_history("default", opened.run_id)
                assert not any(e.is_command for e in first)  # its first task has not run
            # No worker runs now; the signal reaches whichever run of the id is open.
            for handle in handles:
                await handle.signal("msg", 3)
            # Workers die once per workflow id at most (commits that share a group
            # commit die together), so each death is met with a new worker until done.
            workers.append(_spawn(store_url, moment, tmp_path))
            results_task = asyncio.gather(*(h.result(timeout=90) for h in handles))
            while not results_task.done():
                dead = asyncio.ensure_future(asyncio.to_thread(workers[-1].wait))
                await asyncio.wait({dead, results_task}, return_when="FIRST_COMPLETED")
                if dead.done():
                    codes.append(dead.result())
                    assert len(codes) <= WORKFLOWS, codes
                    workers.append(_spawn(store_url, moment, tmp_path))
            results = await results_task
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
        runs = (await app.client.list(limit=100)).runs
        histories = {r.run_id: await app.store.read_history("default", r.run_id) for r in runs}

    assert codes == [-signal.SIGKILL] * len(codes)
    # Each death was a chosen moment of one workflow id, never twice for one.
    assert len(list((tmp_path / "marks").iterdir())) == len(codes)
    assert results == [[1, 2, 3]] * WORKFLOWS
    effects = [line.split() for line in (tmp_path / "effects.txt").read_text().splitlines()]
    ran = Counter((wid, int(generation)) for wid, generation, *_ in effects)
    for handle in handles:
        wid = handle.workflow_id
        mine = sorted((r for r in runs if r.workflow_id == wid), key=lambda r: r.created_at)
        # Exactly one new run: the old one continued as new, the new one completed.
        assert [r.status for r in mine] == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
        old, new = (histories[r.run_id] for r in mine)
        assert old[-1].type == EventType.WORKFLOW_CONTINUED_AS_NEW
        assert old[-1].attrs["new_run_id"] == mine[1].run_id
        assert old[-1].attrs["args"] == [wid, 1, [1]]
        received = [e.attrs["payload"] for e in new if e.type == EventType.SIGNAL_RECEIVED]
        assert received == [2, 3]  # the old run's pending signals, in order
        assert new[0].type == EventType.WORKFLOW_STARTED and new[-1].attrs["result"] == [1, 2, 3]
        # The old run's step ran once, never again; the new run's step ran in the new run.
        assert ran[(wid, 0)] == 1
        assert ran[(wid, 1)] >= 1
        new_steps = {run_id for w, g, run_id, *_ in effects if w == wid and g == "1"}
        assert new_steps == {mine[1].run_id}
