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
from collections import deque
from collections.abc import Callable

__all__ = ["Pacer", "TurnShare"]

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


class TurnShare:
    """About ``per_turn`` callers of :meth:`take` go on in one turn of the event loop
    (a turn may run the last share released and a few new callers); the others wait, in
    order, for a later turn.

    For a burst of work that all becomes ready in one turn: two thousand starts
    gathered at once each run their first workflow task before their write. Run in one
    turn, that is a quarter of a second in which the loop reads no socket: the first
    batch of writes leaves only after the last start's task, and no batch that came back
    is taken up meanwhile, so the database waits on the loop (W1 on PostgreSQL: the
    first batch left 300 ms into a 1.8 s run). A few batches' worth a turn lets the
    writes go and come back between them."""

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self._taken = 0
        self._turning = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        if not self._turning:
            # The first taker of a turn: the share starts over at the next one.
            self._turning = True
            self._taken = 0
            asyncio.get_running_loop().call_soon(self._next_turn)
        if self._taken < self.per_turn and not self._waiting:
            self._taken += 1
            return
        waiting = asyncio.get_running_loop().create_future()
        self._waiting.append(waiting)
        await waiting

    def _next_turn(self) -> None:
        self._taken = 0
        while self._waiting and self._taken < self.per_turn:
            waiting = self._waiting.popleft()
            if not waiting.done():  # a caller cancelled while waiting gave up its place
                self._taken += 1
                waiting.set_result(None)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._next_turn)
        else:
            self._turning = False
