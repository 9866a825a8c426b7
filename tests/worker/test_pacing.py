"""The pacer: new claims wait while the event loop lags, and resume when it keeps up."""

from __future__ import annotations

import asyncio
import math
import time

from tether.worker.pacing import Pacer


def test_budget_follows_the_lag() -> None:
    busy = [100]
    pacer = Pacer(lambda: busy[0], target=0.01)
    assert pacer.room() == math.inf  # nothing measured yet: no limit
    pacer.observe(0.05)
    assert pacer.budget == 75 and pacer.room() == 0
    busy[0] = 60
    assert pacer.room() == 15
    pacer.observe(0.05)  # still late: three quarters of what is in flight now
    assert pacer.budget == 45
    busy[0] = 40
    pacer.observe(0.001)
    assert pacer.budget == 50  # grows by an eighth while the loop keeps up
    busy[0] = 0
    for _ in range(40):
        pacer.observe(0.001)
    assert pacer.budget == math.inf  # far above what is in flight: lifted


def test_a_floor_keeps_work_going() -> None:
    pacer = Pacer(lambda: 4, target=0.01, floor=16)
    pacer.observe(1.0)
    assert pacer.budget == 16 and pacer.room() == 12


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # a callback that does CPU work this long, as a busy step would


async def test_the_probe_sees_a_blocked_loop() -> None:
    pacer = Pacer(lambda: 100, target=0.01)
    late = asyncio.Event()
    observe = pacer.observe

    def noted(lag: float) -> None:
        observe(lag)
        if lag > pacer.target:
            late.set()

    pacer.observe = noted  # type: ignore[method-assign]
    probe = asyncio.create_task(pacer.run())
    await asyncio.sleep(0)  # the probe's timer is set
    asyncio.get_running_loop().call_soon(_hold_the_loop, 0.05)
    await asyncio.wait_for(late.wait(), 5)
    probe.cancel()
    assert pacer.lag >= 0.04 and pacer.budget == 75
