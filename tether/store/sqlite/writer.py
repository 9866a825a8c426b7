"""One writer thread per SQLite file, fed by a queue, committing in groups.

SQLite allows one writer at a time, so every write goes through this thread. While a
transaction commits, new operations queue up; the next transaction takes all of them
at once (group commit), so the cost of a commit is shared by every workflow that had
something to write. Each operation runs in its own savepoint: one that fails is rolled
back alone and its caller gets the error; the others still commit. Callers are resolved
only after COMMIT returns, so no result is visible before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ...errors import StoreUnavailable, TetherError

__all__ = ["Writer"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_STOP = object()
OTHER_WRITER = "other-writer"  # note: another process committed
MAX_GROUP = 1024


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        after_commit: Callable[[list[Any]], None],
        poll_interval: float,
    ) -> None:
        self._connect = connect
        self._after_commit = after_commit
        self._poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._data_version = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tether-sqlite-writer", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.commits = 0
        self.ops = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def submit(self, op: Callable[[sqlite3.Connection], T | Noted[T]]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction has committed.

        An op returns its result, or a ``(result, note)`` pair via :class:`Noted` to
        pass a note to ``after_commit`` (run on the caller's loop after the commit).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._thread.is_alive():
            future.set_exception(StoreUnavailable("the SQLite writer is not running"))
            return future
        self._queue.put((op, future, loop))
        return future

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                try:
                    first = self._queue.get(timeout=self._poll_interval)
                except queue.Empty:
                    self._notice_other_writers(conn)
                    continue
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
                self._notice_other_writers(conn)
                if stop:
                    return
        finally:
            conn.close()

    def _notice_other_writers(self, conn: sqlite3.Connection) -> None:
        # data_version of this connection changes only when another connection (another
        # process) commits, so it tells apart writes this process has already announced.
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._after_commit, [OTHER_WRITER])

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, Any]] = []
        notes: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, future, loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = op(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    if not isinstance(exc, TetherError):
                        exc = _unavailable(exc)
                    outcomes.append((future, loop, None, exc))
                else:
                    conn.execute("RELEASE op")
                    if isinstance(result, Noted):
                        notes.append(result.note)
                        result = result.value
                    outcomes.append((future, loop, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            error = _unavailable(exc)
            outcomes = [(future, loop, None, error) for _, future, loop in batch]
            notes = []
        self.commits += 1
        self.ops += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[1], []).append(outcome)
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, items, notes, self._after_commit)


class Noted(Generic[T]):
    """An op's result together with a note for the after-commit hook."""

    __slots__ = ("note", "value")

    def __init__(self, value: T, note: Any) -> None:
        self.value = value
        self.note = note


def _unavailable(exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"SQLite write failed: {exc}")
    err.__cause__ = exc
    return err


def _resolve(items: list[Any], notes: list[Any], after_commit: Callable[[list[Any]], None]) -> None:
    if notes:
        after_commit(notes)
    for future, _, result, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
