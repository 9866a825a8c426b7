"""Child runs and continue-as-new under SIGKILL.

Workflows fan out child runs, gather their results and continue as new, generation
after generation, while the worker is killed at moments spread over the whole run.
Every chain must end with the right total, each child must exist exactly once and
close once, each workflow id must have exactly one run per generation, and a child's
step whose completion was recorded must never have run again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.crash import children_app
from tests.store.helpers import eventually
from tether.history import EventType
from tether.store import RunStatus

pytestmark = pytest.mark.crash

WORKFLOWS = 20
LAST = 3  # generations 0..LAST
KILLS = 4
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TETHER_EFFECTS": str(effects), "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.children_app", url],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


def _attempts(path: Path) -> dict[str, list[int]]:
    runs: dict[str, list[int]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            _, child_id, _, attempt, _ = line.split()
            runs[child_id].append(int(attempt))
    return runs


async def test_sigkill_during_children_and_continue_as_new(store_url: str, tmp_path: Path) -> None:
    effects, log = tmp_path / "effects.txt", tmp_path / "worker.log"
    app = children_app.app
    app.use_store(store_url)
    async with app:
        handles = [
            await app.client.start(children_app.chain, f"w{i}", 0, LAST, 0, id=f"w{i}")
            for i in range(WORKFLOWS)
        ]
        worker = _spawn(store_url, effects, log)
        children = WORKFLOWS * (LAST + 1) * children_app.CHILDREN
        try:
            for kill in range(KILLS):
                # Kill at points spread over the whole run, by the children whose step
                # began: the newest of them is still in its step (it lasts 0.2 s).
                target = children * (kill + 1) // (KILLS + 1)

                async def reached(target: int = target) -> bool:
                    return len(_attempts(effects)) >= target

                await eventually(reached, timeout=60)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                worker = _spawn(store_url, effects, log)
            started = time.monotonic()
            results = await asyncio.gather(*(h.result(timeout=180) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        runs = []
        cursor = None
        while True:
            page = await app.client.list(limit=1000, cursor=cursor)
            runs.extend(page.runs)
            if (cursor := page.next_cursor) is None:
                break
        histories = {r.run_id: await app.store.read_history("default", r.run_id) for r in runs}

    assert results == [children_app.expected(LAST)] * WORKFLOWS, time.monotonic() - started
    chains = [r for r in runs if r.workflow_type == "chain"]
    leaves = [r for r in runs if r.workflow_type == "leaf"]
    # One run per generation of each chain; the last completed, the others continued.
    per_chain: dict[str, list[str]] = defaultdict(list)
    for r in chains:
        per_chain[r.workflow_id].append(r.status)
    assert len(per_chain) == WORKFLOWS
    for statuses in per_chain.values():
        assert sorted(statuses) == [RunStatus.COMPLETED] + [RunStatus.CONTINUED_AS_NEW] * LAST
    for r in chains:
        kinds = [e.type for e in histories[r.run_id]]
        assert kinds.count(EventType.CHILD_WORKFLOW_STARTED) == children_app.CHILDREN
        assert kinds.count(EventType.CHILD_WORKFLOW_COMPLETED) == children_app.CHILDREN
    # Each child exactly once, completed; its recorded step never ran after that.
    assert len(leaves) == children
    assert len({r.workflow_id for r in leaves}) == children
    assert all(r.status == RunStatus.COMPLETED for r in leaves)
    attempts = _attempts(effects)
    assert any(max(a) > 1 for a in attempts.values()), "no kill interrupted a running step"
    for r in leaves:
        events = histories[r.run_id]
        recorded = [e.attrs["attempt"] for e in events if e.type == EventType.ACTIVITY_STARTED]
        assert len(recorded) == 1
        assert max(attempts[r.workflow_id]) == recorded[0], (r.workflow_id, attempts)
