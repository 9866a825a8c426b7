"""LLM steps under SIGKILL: a call in flight (its ledger row stays, abandoned), a
call completed before the workflow advanced, and a call billed whose result was never
reported. A completed call is never billed twice; a call really made twice is
recorded twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash import llm_app
from tests.llm.conftest import llm_results, until
from tether.history import EventType
from tether.llm import SimServer

pytestmark = pytest.mark.crash
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


def _spawn(
    url: str, sim: SimServer, log: Path, queues: str = "default,llm", **env: str
) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "TETHER_SIM_URL": sim.url, **env}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.llm_app", url, queues],
            env=environ,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


def _kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait()


async def test_killed_while_the_call_is_in_flight(
    store_url: str, sim: SimServer, tmp_path: Path
) -> None:
    app = llm_app.app
    app.use_store(store_url)
    sim.slow("m", delay=3.0)
    async with app:
        handle = await app.client.start(llm_app.ask, "in flight", id="k1")
        worker = _spawn(store_url, sim, tmp_path / "w.log")
        try:
            await until(lambda: len(sim.received) == 1, "the call to reach the provider")
            _kill(worker)
            # The call's ledger row was written before the call: it shows in flight.
            [dead] = await app.client.usage(group_by=["outcome"])
            assert (dead.group["outcome"], dead.in_flight, dead.cost_usd) == ("started", 1, 0)
            worker = _spawn(store_url, sim, tmp_path / "w.log")
            result = await handle.result(timeout=60)
        finally:
            _kill(worker)
        history = await handle.history()
        rows = await app.client.usage(group_by=["model"])
        by_attempt = await app.client.usage(group_by=["outcome"])
    await app.close()
    assert result["model"] == "oa:m"
    # The killed attempt's call reached the provider, but its reply never came back:
    # the next attempt called again, and only that call's usage is known. The first
    # call is in the ledger all the same, abandoned, with no tokens and no cost.
    assert len(sim.received) == 2
    started = next(e for e in history if e.type == EventType.ACTIVITY_STARTED)
    assert started.attrs["attempt"] == 2, started.attrs
    assert [(r.calls, r.failed, r.abandoned, r.in_flight) for r in rows] == [(2, 1, 1, 0)]
    outcomes = {r.group["outcome"]: r for r in by_attempt}
    assert set(outcomes) == {"abandoned", "ok"}
    assert outcomes["abandoned"].cost_usd == 0 and outcomes["abandoned"].input_tokens == 0
    assert outcomes["ok"].cost_usd == rows[0].cost_usd > 0


async def test_killed_after_the_call_completed_before_the_workflow_advanced(
    store_url: str, sim: SimServer, tmp_path: Path
) -> None:
    app = llm_app.app
    app.use_store(store_url)
    sim.slow("m", delay=1.0)
    log = tmp_path / "w.log"
    async with app:
        handle = await app.client.start(llm_app.ask, "completed", id="k2")
        # The workflow and the LLM step run in different processes (task queues).
        flows = _spawn(store_url, sim, log, queues="default")
        calls = _spawn(store_url, sim, log, queues="llm")
        try:
            await until(lambda: len(sim.received) == 1, "the call to reach the provider")
            _kill(flows)  # nobody is left to advance the workflow

            async def recorded() -> bool:
                return len(llm_results(await handle.history())) == 1

            await until(recorded, "the step's result to be recorded")
            _kill(calls)
            worker = _spawn(store_url, sim, log)
            try:
                result = await handle.result(timeout=60)
            finally:
                _kill(worker)
        finally:
            for process in (flows, calls):
                if process.poll() is None:
                    _kill(process)
        history = await handle.history()
        rows = await app.client.usage(group_by=["model"])
    await app.close()
    assert result["model"] == "oa:m"
    assert len(sim.received) == 1, "the recorded reply was replayed, not asked again"
    assert [(r.calls, r.failed) for r in rows] == [(1, 0)], "billed exactly once"
    assert rows[0].cost_usd > 0
    assert sum(e.type == EventType.WORKFLOW_COMPLETED for e in history) == 1


async def test_a_call_billed_but_never_reported_is_billed_again_when_repeated(
    store_url: str, sim: SimServer, tmp_path: Path
) -> None:
    app = llm_app.app
    app.use_store(store_url)
    log = tmp_path / "w.log"
    async with app:
        handle = await app.client.start(llm_app.ask, "billed", id="k3")
        dying = _spawn(store_url, sim, log, TETHER_DIE_AFTER_BILLING="1")
        assert dying.wait(timeout=60) == -signal.SIGKILL
        worker = _spawn(store_url, sim, log)
        try:
            result = await handle.result(timeout=60)
        finally:
            _kill(worker)
        rows = await app.client.usage(group_by=["model"])
        report = await app.store.usage_report("default", group_by=["run_id"])
    await app.close()
    assert result["model"] == "oa:m"
    assert len(sim.received) == 2, "the call was made twice"
    # Paid twice, so recorded twice: once per attempt, never more.
    assert [(r.calls, r.failed) for r in rows] == [(2, 0)]
    assert len(report) == 1


async def test_a_killed_workers_concurrency_slot_comes_back(
    store_url: str, sim: SimServer, tmp_path: Path
) -> None:
    app = llm_app.app
    app.use_store(store_url)
    sim.slow("m", delay=3.0)  # the first call only
    log = tmp_path / "w.log"
    async with app:
        first = await app.client.start(llm_app.ask, "holds the only slot", id="k4")
        worker = _spawn(store_url, sim, log, TETHER_LLM_CONCURRENCY="1")
        try:
            await until(lambda: len(sim.received) == 1, "the call to reach the provider")
            _kill(worker)
            second = await app.client.start(llm_app.ask, "needs the slot", id="k5")
            worker = _spawn(store_url, sim, log, TETHER_LLM_CONCURRENCY="1")
            # The dead worker's slot would expire only after the provider's timeout
            # (60 s) and a margin: the step's next attempt frees it long before.
            assert (await first.result(timeout=30))["model"] == "oa:m"
            assert (await second.result(timeout=30))["model"] == "oa:m"
        finally:
            _kill(worker)
        rows = await app.client.usage(group_by=["outcome"])
        limits = await app.client.llm_limits()
    await app.close()
    assert [(r.group["outcome"], r.calls) for r in rows] == [("abandoned", 1), ("ok", 2)]
    assert [(s.provider, s.in_flight) for s in limits] == [("oa", 0)]
