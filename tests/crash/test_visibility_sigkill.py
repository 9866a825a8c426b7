"""Search attribute upserts under SIGKILL: workers are killed while runs step and
upsert their progress; every upsert is in history exactly once, and the index holds
exactly what the history says, for every run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.crash import visibility_app
from tests.store.helpers import eventually
from tether.history import EventType
from tether.search_attributes import decode, merge

pytestmark = pytest.mark.crash

WORKFLOWS = 12
KILLS = 3
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.visibility_app", url],
            env=env, stdout=out, stderr=out, cwd=ROOT,
        )  # fmt: skip


async def test_sigkill_never_loses_or_repeats_an_upsert(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    app = visibility_app.app
    app.use_store(store_url)
    steps = visibility_app.STEPS
    async with app:
        handles = [
            await app.client.start(visibility_app.progress, id=f"p{i}",
                                   search_attributes={"batch": "crash", "progress": 0})
            for i in range(WORKFLOWS)
        ]  # fmt: skip
        worker = _spawn(store_url, log)
        try:
            for kill in range(KILLS):
                # Kill at points spread over the runs, by the progress they upserted;
                # most runs are in their next step (0.3 s long) when it is seen.
                target = WORKFLOWS * steps * (kill + 1) // (KILLS + 1)

                async def reached(target: int = target) -> bool:
                    page = await app.client.list(search_attributes={"batch": "crash"})
                    upserted: int = sum(r.search_attributes["progress"] for r in page.runs)
                    return upserted >= target

                await eventually(reached, timeout=60)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                worker = _spawn(store_url, log)
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        done = [f"s{i}" for i in range(steps)]
        retried = 0
        assert results == [done] * WORKFLOWS
        listed = await app.client.list(search_attributes={"batch": "crash", "progress": steps})
        assert sorted(r.workflow_id for r in listed.runs) == sorted(h.workflow_id for h in handles)
        for handle in handles:
            run = await handle.describe()
            history = await handle.history()
            upserts = [e for e in history if e.type == EventType.SEARCH_ATTRIBUTES_UPSERTED]
            retried += sum(
                e.attrs["attempt"] > 1 for e in history if e.type == EventType.ACTIVITY_STARTED
            )
            assert [e.attrs["search_attributes"]["progress"]["values"] for e in upserts] == [
                [i + 1] for i in range(steps)
            ]
            # The index holds what history says: the start's attributes, then each upsert.
            state = {k: v for k, v in history[0].attrs["search_attributes"].items() if v}
            for e in upserts:
                state = merge(state, e.attrs["search_attributes"])
            assert run.search_attributes == decode(state)
            assert run.search_attributes["done"] == done
        assert (await app.client.list(search_attributes={"progress": 0})).runs == []
        assert retried, "no kill interrupted a running step"
