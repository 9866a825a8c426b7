"""Signals under SIGKILL: a signal recorded but not yet consumed survives the worker.

Workflows alternate a slow step with waiting for a signal and consuming it in a step.
The first signal is sent while no worker runs; later ones while the slow step runs,
and the worker is then killed before the workflows could consume them (they are only
buffered in the dead worker's memory and in history). Every signal must be consumed
exactly once, in order, by the restarted worker.
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

from tests.crash import signal_app
from tether.history import Event, EventType

pytestmark = pytest.mark.crash

WORKFLOWS = 30
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TETHER_EFFECTS": str(effects), "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.signal_app", url],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


def _effects(path: Path) -> list[tuple[str, str, int, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, wf, value, attempt, _ = line.split()
        rows.append((kind, wf, int(value), int(attempt)))
    return rows


async def _until(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling a file another process writes


def _count(events: list[Event], event_type: str, name: str | None = None) -> int:
    return sum(
        e.type == event_type and (name is None or e.attrs.get("name") == name) for e in events
    )


async def test_sigkill_between_a_signal_and_its_consumption(store_url: str, tmp_path: Path) -> None:
    effects, log = tmp_path / "effects.txt", tmp_path / "worker.log"
    app = signal_app.app
    app.use_store(store_url)
    async with app:
        handles = [
            await app.client.start(signal_app.signalled, f"s-{i}", ROUNDS, id=f"s-{i}")
            for i in range(WORKFLOWS)
        ]
        # Round 0's signal arrives while no worker runs at all.
        for h in handles:
            await h.signal("item", 0)
        worker = _spawn(store_url, effects, log)
        pending_at_kill = 0
        try:
            for round in range(1, ROUNDS):

                def slow_started(r: int = round) -> bool:
                    started = {wf for kind, wf, value, _ in _effects(effects) if value == r}
                    return len(started) >= WORKFLOWS // 2

                # Signal while (most) workflows run their slow step, then kill the
                # worker before they get to consume the signal.
                await _until(slow_started, f"round {round}")
                for h in handles:
                    await h.signal("item", round)
                await asyncio.sleep(0.1)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                for h in handles:
                    events = await h.history()
                    arrived = _count(events, EventType.SIGNAL_RECEIVED)
                    consumed = _count(events, EventType.ACTIVITY_SCHEDULED, "consume")
                    pending_at_kill += arrived > consumed
                worker = _spawn(store_url, effects, log)
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        histories = {h.workflow_id: await h.history() for h in handles}

    assert pending_at_kill > 0, "some signals were recorded but not consumed at a kill"
    assert results == [list(range(ROUNDS))] * WORKFLOWS
    runs: dict[tuple[str, int], list[int]] = defaultdict(list)
    for kind, wf, value, attempt in _effects(effects):
        if kind == "consume":
            runs[(wf, value)].append(attempt)
    for wf, events in histories.items():
        assert _count(events, EventType.SIGNAL_RECEIVED) == ROUNDS
        consume_steps = {
            e.attrs["step"]: e.attrs["args"][1]
            for e in events
            if e.type == EventType.ACTIVITY_SCHEDULED and e.attrs["name"] == "consume"
        }
        # Each signal was consumed once: one consuming step per payload, in order.
        assert list(consume_steps.values()) == list(range(ROUNDS))
        recorded = {
            consume_steps[e.attrs["step"]]: e.attrs["attempt"]
            for e in events
            if e.type == EventType.ACTIVITY_STARTED and e.attrs["step"] in consume_steps
        }
        for payload, attempt in recorded.items():
            # Once its completion was recorded, the consuming step never ran again.
            assert max(runs[(wf, payload)]) == attempt, (wf, payload, runs[(wf, payload)])
        assert _count(events, EventType.WORKFLOW_COMPLETED) == 1
