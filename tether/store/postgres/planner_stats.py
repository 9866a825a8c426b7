"""Planner statistics for a young database: the store analyzes its tables as they grow.

PostgreSQL plans with what a table's last ANALYZE recorded. A new database has nothing
recorded until autovacuum first visits it (``autovacuum_naptime``, a minute by
default), and the planner guesses meanwhile. Worse, a statement first planned while
its tables were nearly empty keeps that plan in each connection's cache until the
table is analyzed: to such a plan, finding a run by id through any index that starts
with the namespace (reading every entry of the namespace) costs what the primary key
costs. Measured on the benchmark's fresh database: the batch functions' lookups of
runs and of leased tasks went through such indexes, a sixth of PostgreSQL's time.

So the store does what autovacuum would, sooner: a table of the ``tether`` schema
that holds at least twice the pages it held at its last ANALYZE (and at least
``MIN_PAGES``; the runs first at ``FIRST_RUNS`` rows, below) is analyzed, until it held
``MAX_PAGES`` then; past that, autovacuum's own thresholds come soon enough and its
statistics hold. ANALYZE makes every cached plan of the table be planned again, in every
session. One process at a time analyzes a table (an advisory lock); one that may not
(not the table's owner) tries again only after the table doubled once more. (Analyzing
sooner than ``MIN_PAGES`` was tried: statistics of a page or two led to plans that scan
all of runs for each operation of a batch, kept until the next ANALYZE: one W1 run went
at 574 workflows/s, not 1,200.)

The tasks are a queue, and a queue's pages say little: drained, it keeps its pages, and
its last VACUUM or ANALYZE records next to no rows on them, which the planner then
scales to next to none at any size until the next one. To such statistics every index of
tasks costs the same for one task, and the planner keeps the index made last,
``tasks_due``: each activity's completion read every leased activity task of its
namespace (and each close every task of it), through the whole next burst, until
autovacuum came by. So tasks is analyzed by its live rows instead (the server's count,
``n_live_tup``), whatever its pages: once they are at least ``FIRST_TASKS`` and twice
what its statistics hold.

The checks come with this process's writes: the first write, then each time it has
written twice as many operations as at the last check, so a burst on a new database
gets its statistics as soon as its tables hold ``MIN_PAGES``, not at the timer's next
turn (which had backed off to seconds while the store was idle: a benchmark's whole
run could go on the plans made for empty tables, at half speed); and on a timer, every
half second while tables grow and less often while they do not, for the tables that
other processes' writes grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

__all__ = ["PlannerStats"]

log = logging.getLogger("tether.store.postgres")

#: Below this a table fits in a few pages and any plan is cheap.
MIN_PAGES = 16
#: An ANALYZE of runs taken during a burst can count almost none of them (seen: 1 row on
#: 42 pages, the rest written by transactions still open), and its statistics then make
#: the batches' lookups scan all of runs until the table doubles (W1 at 340-420 wf/s).
#: So while runs' statistics hold fewer than ``FIRST_RUNS`` rows, an ANALYZE that left
#: them so is tried again at the next checks, this many times at most.
EARLY_TRIES = 5
#: The runs are first analyzed sooner, once they are this many (read with a LIMIT while
#: runs has no statistics of at least as many rows). Without statistics, a run looked up
#: by its key (every step's write) ties between the primary key and each other index of
#: runs that starts with the namespace, and the tie goes to the index made last,
#: runs_by_type_status, which reads every entry of the namespace: W2's first 200 runs on
#: a new database, four alternating pairs, the server's time 0.85 ms a run with runs
#: analyzed at 64 against 0.90 ms at 16 pages. Not after a page or two (see above):
#: statistics of one or two runs make a batch's write scan all of runs once per
#: operation; from about twenty the batch looks each run up by its key.
FIRST_RUNS = 64
#: Runs whose statistics hold fewer than FIRST_RUNS rows (analyzed early, or again).
_EARLY = f"c.relname = 'runs' AND c.reltuples < {FIRST_RUNS}"
#: Live tasks (read from the server's counters) that make tasks due for an ANALYZE when
#: its statistics hold fewer than half as many. Statistics of 16 to 64 leased tasks,
#: taken by ANALYZE, already find a task by its id and a run's tasks by the run.
FIRST_TASKS = 64
#: About 100,000 short rows: autovacuum's scale factor takes over from here.
MAX_PAGES = 2_000
#: The longest wait between checks that found nothing to do, in seconds.
QUIET_INTERVAL = 8.0
#: Operations written before the second write-driven check (the first write is the first).
FIRST_WRITES = 32
#: The advisory lock one analyzing process holds (per transaction).
LOCK_KEY = 0x7E7E_A7A1

#: The tables due, each with its size by the measure of its rule (live rows for tasks,
#: pages for the others) and the row count its statistics hold.
GROWN = f"""
SELECT c.relname, format('tether.%I', c.relname),
       CASE WHEN c.relname = 'tasks' THEN s.live ELSE s.pages END AS size,
       c.reltuples, {_EARLY} AS early
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
           pg_stat_get_live_tuples(c.oid) AS live
) AS s
WHERE n.nspname = 'tether' AND c.relkind = 'r'
  AND (c.relname = 'tasks' AND s.live >= greatest(2 * c.reltuples, {FIRST_TASKS})
    OR c.relname <> 'tasks' AND c.relpages < {MAX_PAGES}
       AND (s.pages >= greatest(2 * c.relpages, {MIN_PAGES})
            OR {_EARLY}
               AND (SELECT count(*) FROM (SELECT FROM tether.runs LIMIT {FIRST_RUNS}) AS r)
                   = {FIRST_RUNS}))
"""


class PlannerStats:
    """Checks every ``interval`` seconds, through ``call`` (which runs an operation on a
    pooled connection), whether a table grew enough to be analyzed."""

    def __init__(
        self,
        call: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]],
        *,
        interval: float = 0.5,
    ) -> None:
        self._call = call
        self._interval = interval
        # Each table's size at this process's last ANALYZE of it and the rows its
        # statistics held right after. While they still hold those rows, the table is
        # not due here again until it doubled: an ANALYZE the server skipped (this role
        # not the owner) would otherwise be tried at every check, and so would one that
        # found the queue drained while the server's live-row count still lags (a
        # backend reports its counts a second late while busy, up to ten once idle).
        # The size is lowered to what later checks read, so a queue counted high once
        # is due again when it doubles from what it really held.
        self._held: dict[str, tuple[int, float]] = {}
        self._early_tries = 0
        self._task: asyncio.Task[None] | None = None
        # Operations this process wrote, and the count at which they call a check.
        self._writes = 0
        self._check_at = 1
        self._wake = asyncio.Event()

    def wrote(self, ops: int) -> None:
        """This process wrote ``ops`` operations: a check is due once they add up."""
        self._writes += ops
        if self._writes >= self._check_at:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tether-pg-planner-stats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> list[str]:
        """Analyze the tables that grew enough; returns the ones analyzed here."""
        rows = await self._call(lambda c: c.fetch(GROWN))
        done: list[str] = []
        for table, qualified, size, recorded, early in rows:
            held = self._held.get(table)
            if held is not None and recorded == held[1] and size < 2 * held[0]:
                if not early or self._early_tries >= EARLY_TRIES:
                    self._held[table] = (min(held[0], size), held[1])
                    continue
                self._early_tries += 1
            after = await self._call(partial(_analyze, table=qualified))
            if after is not None:
                self._held[table] = (size, after)
                done.append(table)
        return done

    async def _run(self) -> None:
        # Every ``interval`` while tables grow; a check that finds nothing to do waits
        # twice as long for the next (up to QUIET_INTERVAL): a fleet of idle workers
        # does not poll the catalog twice a second each.
        wait = self._interval
        while True:
            await self._pause(wait)
            self._wake.clear()
            self._check_at = max(2 * self._writes, FIRST_WRITES)
            try:
                analyzed = await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store being down is the other paths' news
                log.debug("planner statistics check failed: %s", exc)
                analyzed = []
            if analyzed:
                log.debug("analyzed %s", ", ".join(analyzed))
                wait = self._interval
            else:
                wait = min(wait * 2, QUIET_INTERVAL)

    async def _pause(self, seconds: float) -> None:
        """Until a write calls a check, or ``seconds`` passed. (Not ``wait_for``: on
        Python 3.11 it returns, rather than raising, when it is cancelled as the event
        is set, and a store closing right after a write would wait for this task.)"""
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({woken}, timeout=seconds)
        finally:
            woken.cancel()


async def _analyze(conn: Any, *, table: str) -> float | None:
    """ANALYZE ``table`` (schema-qualified and quoted by the catalog query); the rows its
    statistics hold after, or None if another process is analyzing."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return None  # another process is analyzing; it will do this one too
        await conn.execute(f"ANALYZE {table}")
        rows = await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table)
    return float(rows)
