"""Pacing: how much work a worker takes on, from how late its event loop runs.

A worker's workflow tasks are CPU work on one event loop. Every task in flight adds
its step to each turn of the loop, and a task newly claimed (another tenant's, say)
waits a turn at every step: with hundreds in flight, a turn takes tens of
milliseconds and a three-step workflow hundreds. Past the point where the loop is
busy all the time, more tasks in flight add no throughput, only latency.

So the worker claims new tasks only while its loop keeps up: a probe measures how
late a short timer fires (the loop's lag), or how long store operations wait for a
connection, whichever is longer (on PostgreSQL, a step waits in the connection pool's
queue the way it waits in the loop's on SQLite); above ``target`` the budget of tasks in
flight drops to three quarters of what is in flight now, and below it the budget
grows again by an eighth. Work already claimed always goes on; only new claims wait,
and the fair scheduler still decides whose task comes next when a place frees.

Only a worker serving several namespaces paces: there, a tenant's step must not wait
behind another tenant's hundreds. A worker serving one namespace does not: its lag
comes in bursts (a batch of sixty results resolves at once), each burst cut the budget,
and on PostgreSQL that cost a sixth of its throughput (W1: ~400 -> ~470 workflows/s
with pacing off) for latency the tenant's own runs trade among themselves.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

__all__ = ["Pacer"]

PROBE = 0.005


class Pacer:
    """The number of tasks a worker may have in flight, kept so that its event loop
    lags at most about ``target`` seconds."""

    def __init__(
        self,
        in_flight: Callable[[], int],
        *,
        target: float,
        floor: int = 16,
        queue_delay: Callable[[], float] = lambda: 0.0,
        on_room: Callable[[], None] = lambda: None,
    ) -> None:
        self._in_flight = in_flight
        self._queue_delay = queue_delay
        # Called when the budget grows: a worker waiting for room claims again at once.
        self._on_room = on_room
        self.target = target
        self.floor = floor
        self.budget = math.inf
        self.lag = 0.0

    def room(self) -> float:
        """How many more tasks may be claimed now."""
        return max(self.budget - self._in_flight(), 0)

    def observe(self, lag: float) -> None:
        self.lag = lag
        busy = self._in_flight()
        if lag > self.target:
            self.budget = max(self.floor, int(busy * 0.75))
        elif self.budget != math.inf:
            grown = self.budget + max(1, int(self.budget / 8))
            # Far above what is in flight, the budget says nothing: lift it.
            self.budget = math.inf if grown > 4 * max(busy, self.floor) else grown
            self._on_room()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(PROBE)
            late = max(loop.time() - began - PROBE, 0.0)
            self.observe(max(late, self._queue_delay()))
