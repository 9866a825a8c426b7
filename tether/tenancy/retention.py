"""The retention sweeper: removes closed runs older than their namespace's retention.

It runs inside every worker, for the namespaces the worker serves, in bounded batches
with a pause between them, so live work never waits long behind it. On PostgreSQL
several workers may sweep at once: a batch skips runs another one is removing.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import TetherError
from .scheduler import Scheduler

__all__ = ["RetentionSweeper"]

log = logging.getLogger("tether.tenancy")


class RetentionSweeper:
    """Sweeps every ``interval`` seconds, ``batch`` runs per store operation."""

    def __init__(
        self, scheduler: Scheduler, *, interval: float = 60.0, batch: int = 200, pause: float = 0.01
    ) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.purged = 0

    async def sweep(self) -> int:
        """One pass over every served namespace; return how many runs were removed."""
        await self.scheduler.refresh(force=True)
        total = 0
        for namespace, settings in list(self.scheduler.settings.items()):
            if settings.retention is None:
                continue
            cutoff = time.time() - settings.retention.total_seconds()
            while True:
                n = await self.scheduler.store.purge_closed_runs(namespace, cutoff, self.batch)
                total += n
                if n < self.batch:
                    break
                await asyncio.sleep(self.pause)  # let live work through between batches
        self.purged += total
        return total

    async def run(self) -> None:
        """Sweep forever (until cancelled)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if n := await self.sweep():
                    log.info("retention: removed %d closed runs", n)
            except TetherError as exc:
                log.warning("retention sweep failed, retrying later: %s", exc)
