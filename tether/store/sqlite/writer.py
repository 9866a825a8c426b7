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
one write lock for every process on the file, and a waiting process only polls for it
(after 1, 2, 5, 10... ms): a long group would hold the lock, and stall the loop, for
tens of milliseconds, where short ones let a worker's writes through between a busy
client's.

Why not a writer thread: with the GIL, a thread buys no parallelism for this work,
and each hand-off (queue, self-pipe, future) cost more CPU than the SQL it carried.
Statements here are short (WAL, no fsync at ``synchronous=NORMAL``), so running them
inline blocks the loop less than the hand-offs did.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ...errors import StoreUnavailable, TetherError

__all__ = ["Noted", "Writer"]

T = TypeVar("T")

MAX_GROUP = 64


class Noted(Generic[T]):
    """An op's result together with a note for the after-commit hook."""

    __slots__ = ("note", "value")

    def __init__(self, value: T, note: Any) -> None:
        self.value = value
        self.note = note


class Writer:
    def __init__(self, conn: sqlite3.Connection, after_commit: Callable[[list[Any]], None]) -> None:
        self._conn = conn
        self._after_commit = after_commit
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self.commits = 0
        self.ops = 0

    def submit(self, op: Callable[[sqlite3.Connection], T | Noted[T]]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((op, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False
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
        for future, result, failure in outcomes:
            if future.done():
                continue
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(result)

    def _run(
        self,
        batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
        *,
        isolate: bool,
    ) -> tuple[list[tuple[asyncio.Future[Any], Any, BaseException | None]] | None, list[Any]]:
        """One transaction for the batch; None if it must be run again with ``isolate``.

        Most failures (a lost lease, a duplicate id) are found before an op writes
        anything; ``total_changes`` tells those apart, and they need no savepoint.
        """
        conn = self._conn
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        notes: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
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


def _unavailable(exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"SQLite write failed: {exc}")
    err.__cause__ = exc
    return err
