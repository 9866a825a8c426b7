"""The pacer: new claims wait while the event loop lags, and resume when it keeps up."""

from __future__ import annotations

import asyncio
import math
import time

from tether.worker.pacing import Pacer, TurnShare


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


async def test_a_turn_share_lets_the_loop_turn_between_shares() -> None:
    """Ten callers at once, three a turn: they go on in order, three at most between
    two turns of another task of the loop, and over several turns."""
    share = TurnShare(3)
    went: list[int] = []

    async def caller(i: int) -> None:
        await share.take()
        went.append(i)

    callers = [asyncio.ensure_future(caller(i)) for i in range(10)]
    seen: list[int] = []
    while len(went) < 10:
        await asyncio.sleep(0)
        seen.append(len(went))
    await asyncio.gather(*callers)
    assert went == list(range(10))
    steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert max(steps) <= 3 and sum(1 for s in steps if s) >= 4, seen


async def test_a_caller_cancelled_while_waiting_for_its_turn_gives_up_its_place() -> None:
    share = TurnShare(1)
    first, second, cancelled, last = (asyncio.ensure_future(share.take()) for _ in range(4))
    await first  # meanwhile the next turn's one place went to the second
    assert not cancelled.done() and not last.done()  # they wait for later turns
    cancelled.cancel()
    await asyncio.wait_for(asyncio.gather(second, last), 5)
    assert cancelled.cancelled()
