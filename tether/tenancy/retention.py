"""The retention sweeper: removes what no one needs any more, in the background.

Each pass it
- finishes the deletion of every namespace marked as being deleted whose deleter died
  midway (``Store.delete_namespace_batch`` until it is gone);
- removes closed runs older than their namespace's retention, for the namespaces the
  worker serves;
- removes idle fairness flows of those namespaces (``Store.sweep_fair_flows``: a key
  with no task queued or running restarts from its queue's clock, as a new key does).

It runs inside every worker, in bounded batches with a pause between them, so live
work never waits long behind it. On PostgreSQL several workers may sweep at once: a
batch skips rows another one is removing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from ..errors import TetherError
from ..store import DELETE_BATCH
from .scheduler import Scheduler

__all__ = ["RetentionSweeper"]

log = logging.getLogger("tether.tenancy")


class RetentionSweeper:
    """Sweeps every ``interval`` seconds: ``batch`` runs or fairness flows per store
    operation, ``delete_batch`` rows per batch of an unfinished namespace deletion."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        interval: float = 60.0,
        batch: int = 200,
        delete_batch: int = DELETE_BATCH,
        pause: float = 0.01,
    ) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.batch = batch
        self.delete_batch = delete_batch
        self.pause = pause
        self.purged = 0
        self.flows_swept = 0
        self.deletions_finished = 0

    async def sweep(self) -> int:
        """One pass; return how many closed runs past retention were removed."""
        store = self.scheduler.store
        for namespace in await store.deleting_namespaces():
            while True:
                if await store.delete_namespace_batch(namespace, self.delete_batch):
                    break
                await asyncio.sleep(self.pause)  # let live work through between batches
            self.deletions_finished += 1
            log.info("retention: finished deleting namespace %s", namespace)
        await self.scheduler.refresh(force=True)
        total = 0
        for namespace, settings in list(self.scheduler.settings.items()):
            if settings.retention is not None:
                cutoff = time.time() - settings.retention.total_seconds()
                purge = partial(store.purge_closed_runs, namespace, cutoff, self.batch)
                total += await self._batches(purge)
            sweep = partial(store.sweep_fair_flows, namespace, self.batch)
            self.flows_swept += await self._batches(sweep)
        self.purged += total
        return total

    async def _batches(self, step: Callable[[], Awaitable[int]]) -> int:
        """Run ``step`` until it removes less than a full batch; return the sum."""
        total = 0
        while True:
            n = await step()
            total += n
            if n < self.batch:
                return total
            await asyncio.sleep(self.pause)  # let live work through between batches

    async def run(self) -> None:
        """Sweep forever (until cancelled)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if n := await self.sweep():
                    log.info("retention: removed %d closed runs", n)
            except TetherError as exc:
                log.warning("retention sweep failed, retrying later: %s", exc)
