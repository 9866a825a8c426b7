"""Group commit on the event loop: every write of one loop turn shares a transaction.

SQLite allows one writer at a time, so all of this process's writes go through one
connection. An operation submitted during a turn of the event loop is queued; at the
end of the turn the whole queue runs as one transaction (group commit), so the cost
of a commit is shared by every workflow that had something to write. An operation
that fails is rolled back alone and its caller gets the error; the others still
commit (a group in which an operation failed after writing is run again with a
savepoint around each). Callers are resolved only after COMMIT returns, so no result
is visible before it is durable.

A group holds at most ``MAX_GROUP`` operations; more wait for the next turn. SQLite has
one write lock for every process on the file, and a long group would hold it for tens
of milliseconds, where short ones let a worker's writes through between a busy
client's.

Waiting for that lock. SQLite's own busy handler sleeps inside the call, after 1, 2,
5, 10... up to 100 ms between tries: the event loop stood still meanwhile, and against
a process that writes without pause (a client flooding starts) the growing sleeps
almost never landed in the short gaps between its transactions, so a worker could
wait hundreds of milliseconds. The writer's connection has no busy timeout instead:
a group that finds the lock taken is tried again every ``BUSY_POLL`` seconds from the
event loop (which serves everything else meanwhile), for at most ``LOCK_WAIT``.

Fair across namespaces. Writes queue in one lane per namespace (and one for writes of
no namespace, such as claims), and a group takes one operation from each lane in
turn: a tenant with hundreds of writes waiting (a flood of starts and their steps)
does not put another tenant's next step behind all of them. Within a lane, writes
keep their order.

Why not a writer thread: with the GIL, a thread buys no parallelism for this work,
and each hand-off (queue, self-pipe, future) cost more CPU than the SQL it carried.
Statements here are short (WAL, no fsync at ``synchronous=NORMAL``), so running them
inline blocks the loop less than the hand-offs did.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ...errors import StoreUnavailable, TetherError
from ..lanes import take_in_turn

__all__ = ["Noted", "Writer"]

T = TypeVar("T")

MAX_GROUP = 64
BUSY_POLL = 0.0005
LOCK_WAIT = 30.0


Op = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


class Noted(Generic[T]):
    """An op's result together with a note for the after-commit hook."""

    __slots__ = ("note", "value")

    def __init__(self, value: T, note: Any) -> None:
        self.value = value
        self.note = note


class Writer:
    def __init__(self, conn: sqlite3.Connection, after_commit: Callable[[list[Any]], None]) -> None:
        self._conn = conn
        conn.execute("PRAGMA busy_timeout = 0")  # the lock is waited for here, see above
        self._after_commit = after_commit
        self._lanes: dict[str | None, deque[Op]] = {}
        self._scheduled = False
        self._busy_since: float | None = None
        self.commits = 0
        self.ops = 0

    def submit(
        self, op: Callable[[sqlite3.Connection], T | Noted[T]], lane: str | None = None
    ) -> asyncio.Future[T]:
        """Queue ``op`` in ``lane`` (its namespace); the future resolves once its
        transaction has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = deque()
        queue.append((op, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        failure: StoreUnavailable | None = None
        try:
            locked = self._begin()
        except sqlite3.Error as exc:
            locked, failure = False, _unavailable(exc)
        if not locked and failure is None:
            waited = loop.time() - (self._busy_since or loop.time())
            if self._busy_since is None:
                self._busy_since = loop.time()
            if waited < LOCK_WAIT:
                loop.call_later(BUSY_POLL, self._flush)  # still scheduled
                return
            failure = StoreUnavailable(f"SQLite write lock busy for {LOCK_WAIT:.0f} s")
        self._busy_since = None
        batch = take_in_turn(self._lanes, MAX_GROUP)
        if self._lanes:
            loop.call_soon(self._flush)
        else:
            self._scheduled = False
        if failure is not None:
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        outcomes, notes = self._run(batch, isolate=False)
        if outcomes is None:
            # An op failed after writing: run the group again, each op in a savepoint,
            # so that only the failing op is rolled back.
            outcomes, notes = self._run(batch, isolate=True)
        assert outcomes is not None
        self.commits += 1
        self.ops += len(batch)
        if notes:
            self._after_commit(notes)
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _begin(self) -> bool:
        """Take the write lock (BEGIN IMMEDIATE); False if another connection holds it."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return False
            raise
        return True

    def _run(
        self,
        batch: list[Op],
        *,
        isolate: bool,
    ) -> tuple[list[tuple[asyncio.Future[Any], Any, BaseException | None]] | None, list[Any]]:
        """One transaction for the batch (begun already, or begun here when run again);
        None if it must be run again with ``isolate``.

        Most failures (a lost lease, a duplicate id) are found before an op writes
        anything; ``total_changes`` tells those apart, and they need no savepoint.
        """
        conn = self._conn
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        notes: list[Any] = []
        try:
            if not conn.in_transaction:
                # Run again after a rollback (rare): wait for the lock right here.
                deadline = time.monotonic() + LOCK_WAIT
                while not self._begin():
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError("database is locked")
                    time.sleep(BUSY_POLL)
            for op, future in batch:
                if isolate:
                    conn.execute("SAVEPOINT op")
                changes = conn.total_changes
                try:
                    result = op(conn)
                except Exception as exc:
                    if isolate:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    elif conn.total_changes != changes:
                        conn.rollback()
                        return None, []
                    error = exc if isinstance(exc, TetherError) else _unavailable(exc)
                    outcomes.append((future, None, error))
                    continue
                if isolate:
                    conn.execute("RELEASE op")
                if isinstance(result, Noted):
                    notes.append(result.note)
                    result = result.value
                outcomes.append((future, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            error = _unavailable(exc)
            return [(future, None, error) for _, future in batch], []
        return outcomes, notes


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"SQLite write failed: {exc}")
    err.__cause__ = exc
    return err
