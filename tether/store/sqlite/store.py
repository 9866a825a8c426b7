"""The embedded store: one SQLite file in WAL mode.

Writes go through one connection with group commit (``writer.py``); reads use a
connection of their own, which WAL lets read while another process writes.

Durability. By default the file uses ``synchronous=NORMAL``: a committed result
survives the crash of any process (SIGKILL included), but the last transactions
before a power loss or OS crash may be lost (never corrupted). ``durable=True``
selects ``synchronous=FULL``: every commit is fsynced before it is acknowledged, so
it survives power loss too, at the price of one fsync per group commit.

Wake-ups. Work written by this process wakes its workers at once. Work written by
another process (a CLI starting a run) is noticed through ``PRAGMA data_version``,
checked every ``poll_interval`` seconds while someone waits: a read of a counter in
shared memory, not a query.

One process should run the workers of a SQLite file; other processes (the CLI, a
server) may read it and start runs. Many worker processes belong on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ...errors import IncompatibleStore, StoreUnavailable, WorkflowNotFound
from ...history import Event
from ..deletion import delete_namespace
from ..llm_limits import Admission, CallStart, LimitState
from ..protocol import (
    DELETE_BATCH,
    ActivityOutcome,
    ActivityTask,
    ClaimLimit,
    CommitResult,
    NamespaceRecord,
    NamespaceStats,
    NewRun,
    RunPage,
    RunRecord,
    RunStatus,
    SchemaStatus,
    SettingsChange,
    TaskRead,
    WorkflowCommit,
    WorkflowTask,
)
from ..reset import ResetRun
from ..updates import UpdateRecord
from ..usage import UsageRecord, UsageRow
from ..visibility import (
    RunFilter,
    decode_page_token,
    encode_page_token,
    list_runs_sql,
    search_attribute_rows,
)
from ..waiters import wait_closed, wait_update
from . import llm_limits as limitops
from . import namespaces as nsops
from . import ops, updates, usage
from .columns import activity_task, events_after, loads_or_none
from .reset import reset_run
from .writer import Noted, Writer

__all__ = ["SqliteStore"]

OTHER_WRITER = "other-writer"  # note: another process committed

T = TypeVar("T")
APPLICATION_ID = 0x54455452  # "TETR": marks a file as a Tether store
_NEXT_DUE = "SELECT min(visible_at) FROM tasks WHERE namespace = ? AND task_queue = ? AND kind = ?"
_KINDS = ("workflow", "activity", "timer")

_RUN_COLUMNS = (
    "r.namespace, r.workflow_id, r.run_id, r.workflow_type, r.task_queue, r.status, r.created_at,"
    " r.closed_at, r.result, r.failure, r.last_seq,"
    " (SELECT error FROM tasks t WHERE t.namespace = r.namespace AND t.run_id = r.run_id"
    " AND t.kind = 'workflow')"
)


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, one at a time: a trigger's body holds semicolons,
    so statements end where SQLite's own tokenizer says they are complete."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in pending.splitlines()
    ):
        raise ValueError(f"incomplete statement at the end of a migration: {pending!r}")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def _search_attributes(
    conn: sqlite3.Connection, namespace: str, run_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    if not run_ids:
        return {}
    marks = ",".join("?" * len(run_ids))
    rows = conn.execute(
        "SELECT run_id, name, idx, type, str_value, int_value, float_value"
        f" FROM search_attributes WHERE namespace = ? AND run_id IN ({marks})"
        " ORDER BY run_id, name, idx",
        (namespace, *run_ids),
    )
    return search_attribute_rows(rows)


def _run_record(row: Sequence[Any], attrs: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord(
        namespace=row[0],
        workflow_id=row[1],
        run_id=row[2],
        workflow_type=row[3],
        task_queue=row[4],
        status=RunStatus(row[5]),
        created_at=row[6],
        closed_at=row[7],
        result=loads_or_none(row[8]),
        failure=loads_or_none(row[9]),
        history_length=row[10],
        stuck=row[11],
        search_attributes=attrs or {},
    )


class SqliteStore:
    """A Tether store in one SQLite file (``:memory:`` is not supported: use a temp file)."""

    def __init__(
        self,
        path: str | Path,
        *,
        durable: bool = False,
        poll_interval: float = 0.05,
        busy_timeout: float = 30.0,
    ):
        self.path = Path(path)
        # How long a connection waits for another process's lock before giving up.
        self.busy_timeout = busy_timeout
        self.url = f"sqlite:///{self.path}"
        self.durable = durable
        self.poll_interval = poll_interval
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._watch: asyncio.Task[None] | None = None
        self._connections: list[sqlite3.Connection] = []
        self._work_waiters: set[asyncio.Future[None]] = set()
        self._close_waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}

    # -- connections ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Several processes may open a new file at once; switching it to WAL needs a
        # moment alone with it, so a "locked" answer is waited out (for the busy
        # timeout in all), not reported.
        deadline = time.monotonic() + self.busy_timeout
        attempt = 0
        while True:
            try:
                conn = self._connect_once()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
                attempt += 1
                time.sleep(min(0.02 * attempt, 0.25))
            except sqlite3.DatabaseError as exc:
                raise IncompatibleStore(f"{self.path} is not a SQLite database: {exc}") from None
        self._connections.append(conn)
        return conn

    def _connect_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise StoreUnavailable("the store is not open", store=self.url)
        try:
            return fn(self._reader)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    async def _write(
        self, op: Callable[[sqlite3.Connection], T | Noted[T]], namespace: str | None = None
    ) -> T:
        """Run ``op`` in the next group commit, in its namespace's lane (writer.py)."""
        if self._writer is None:
            raise StoreUnavailable("the store is not open", store=self.url)
        return await self._writer.submit(op, namespace)

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        if self._writer is not None:
            return
        if self.path.is_dir():
            raise IncompatibleStore(f"{self.path} is a directory, not a Tether store file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        await asyncio.to_thread(self._migrate, migrate)
        writer = self._connect()
        self._writer = Writer(writer, self._on_notes)
        self._reader = self._connect()
        self._watch = asyncio.create_task(self._watch_other_writers(writer))
        if migrate:
            await self.ensure_namespace("default")

    def _check(self, conn: sqlite3.Connection, latest: int) -> int:
        """The schema version of a Tether file; refuse anything else."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.OperationalError as exc:  # locked by another process, or I/O
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise IncompatibleStore(f"{self.path} is not a SQLite database: {exc}") from None
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise IncompatibleStore(f"{self.path} is a SQLite file that is not a Tether store")
        if version > latest:
            raise IncompatibleStore(
                f"{self.path} has schema version {version}, newer than this Tether"
                f" knows ({latest}); upgrade Tether"
            )
        return version

    def _migrate(self, apply: bool) -> None:
        migrations = _migrations()
        latest = migrations[-1][0]
        if self.path.exists():
            # Look before touching: switching to WAL rewrites the header, and a file
            # that is not ours must be left exactly as it was.
            try:
                probe = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                )
                try:
                    # One read transaction: another process may be migrating the file.
                    probe.execute("BEGIN")
                    self._check(probe, latest)
                finally:
                    probe.close()
            except sqlite3.OperationalError as exc:  # unreadable: permissions, I/O
                raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            version = self._check(conn, latest)
            for number, sql in migrations:
                if apply and number > version:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
            if apply:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, or I/O
            if conn.in_transaction:
                conn.rollback()
            raise StoreUnavailable(f"cannot migrate {self.path}: {exc}") from None
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            conn.close()
            self._connections.remove(conn)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        self._writer = None
        self._reader = None
        if self._connections:
            # Keep the planner's statistics fresh (cheap: it analyzes only what needs it);
            # without them SQLite can pick a primary-key scan over a better index.
            with contextlib.suppress(sqlite3.Error):
                self._connections[0].execute("PRAGMA busy_timeout = 100")  # never hang a close
                self._connections[0].execute("PRAGMA optimize")
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        for waiter in [*self._work_waiters, *(f for s in self._close_waiters.values() for f in s)]:
            if not waiter.done():
                waiter.set_exception(StoreUnavailable("the store was closed", store=self.url))

    async def schema_status(self) -> SchemaStatus:
        version = await self._read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        return SchemaStatus(current=version, latest=_migrations()[-1][0])

    # -- namespaces ---------------------------------------------------------------------

    async def ensure_namespace(self, namespace: str) -> None:
        now = time.time()
        await self._write(
            lambda c: c.execute(
                "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (namespace, now),
            )
        )

    async def list_namespaces(self) -> list[str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT name FROM namespaces WHERE deleting_since IS NULL ORDER BY name"
            ).fetchall()
        )
        return [r[0] for r in rows]

    # -- runs ---------------------------------------------------------------------------

    async def start_run(self, run: NewRun) -> RunRecord:
        def op(conn: sqlite3.Connection) -> Noted[RunRecord]:
            now = time.time()
            ops.start_run(conn, run, now)
            record = RunRecord(
                run.namespace,
                run.workflow_id,
                run.run_id,
                run.workflow_type,
                run.task_queue,
                RunStatus.RUNNING,
                now,
                None,
                None,
                None,
                1,
            )
            return Noted(record, ops.WORK)

        return await self._write(op, run.namespace)

    async def start_run_leased(
        self, run: NewRun, owner: str, lease: float
    ) -> tuple[RunRecord, WorkflowTask]:
        def op(conn: sqlite3.Connection) -> tuple[RunRecord, WorkflowTask]:
            now = time.time()
            task_id = ops.start_run(conn, run, now, (owner, lease))
            record = RunRecord(
                run.namespace, run.workflow_id, run.run_id, run.workflow_type, run.task_queue,
                RunStatus.RUNNING, now, None, None, None, 1,
            )  # fmt: skip
            task = WorkflowTask(
                task_id, run.namespace, run.run_id, run.workflow_id, run.workflow_type,
                run.task_queue, 1,
            )  # fmt: skip
            return record, task

        return await self._write(op, run.namespace)

    async def start_run_executed(
        self, run: NewRun, created_at: float, owner: str, lease: float, commit: WorkflowCommit
    ) -> tuple[RunRecord, CommitResult]:
        Done = tuple[RunRecord, CommitResult]

        def op(conn: sqlite3.Connection) -> Done | Noted[Done]:
            now = time.time()
            task_id = ops.start_run(conn, run, created_at, (owner, now - created_at + lease))
            task = WorkflowTask(
                task_id, run.namespace, run.run_id, run.workflow_id, run.workflow_type,
                run.task_queue, 1,
            )  # fmt: skip
            result, notes = ops.complete_workflow_task(conn, task, commit, lease, now)
            record = RunRecord(
                run.namespace, run.workflow_id, run.run_id, run.workflow_type, run.task_queue,
                RunStatus.RUNNING if commit.close is None else commit.close.status,
                created_at, None if commit.close is None else now,
                None if commit.close is None else commit.close.result,
                None if commit.close is None else commit.close.failure,
                result.last_seq,
            )  # fmt: skip
            return Noted((record, result), notes) if notes else (record, result)

        return await self._write(op, run.namespace)

    def queue_delay(self) -> float:
        # Writes run inline on the loop: a backlog shows as the loop's own lag.
        return 0.0

    async def get_run(
        self, namespace: str, workflow_id: str, run_id: str | None = None
    ) -> RunRecord:
        def read(conn: sqlite3.Connection) -> Any:
            if run_id is not None:
                row = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.namespace = ? AND r.run_id = ?",
                    (namespace, run_id),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.namespace = ?"
                    " AND r.workflow_id = ? ORDER BY r.created_at DESC LIMIT 1",
                    (namespace, workflow_id),
                ).fetchone()
            if row is None or (workflow_id and row[1] != workflow_id):
                return None, {}
            return row, _search_attributes(conn, namespace, [row[2]])

        row, attrs = await self._read(read)
        if row is None or (workflow_id and row[1] != workflow_id):
            raise WorkflowNotFound(namespace=namespace, workflow_id=workflow_id, run_id=run_id)
        return _run_record(row, attrs.get(row[2]))

    async def list_runs(
        self,
        namespace: str,
        *,
        status: RunStatus | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        where: RunFilter | None = None,
    ) -> RunPage:
        sql, params = list_runs_sql(
            schema="",
            placeholder=lambda _: "?",
            run_columns=_RUN_COLUMNS,
            namespace=namespace,
            status=None if status is None else str(status),
            workflow_type=workflow_type,
            where=where or RunFilter(),
            cursor=decode_page_token(cursor) if cursor else None,
            limit=limit + 1,
        )

        def read(conn: sqlite3.Connection) -> tuple[list[Any], dict[str, dict[str, Any]]]:
            rows = conn.execute(sql, params).fetchall()
            return rows, _search_attributes(conn, namespace, [r[2] for r in rows[:limit]])

        rows, attrs = await self._read(read)
        runs = [_run_record(r, attrs.get(r[2])) for r in rows[:limit]]
        more = len(rows) > limit
        last = runs[-1] if runs else None
        next_cursor = encode_page_token(last.created_at, last.run_id) if more and last else None
        return RunPage(runs, next_cursor)

    async def read_history(self, namespace: str, run_id: str, after_seq: int = 0) -> list[Event]:
        return await self._read(lambda c: events_after(c, namespace, run_id, after_seq))

    async def wait_closed(
        self,
        namespace: str,
        run_id: str,
        timeout: float | None,
        *,
        started: RunRecord | None = None,
    ) -> RunRecord:
        return await wait_closed(
            self, self._close_waiters, namespace, run_id, timeout, started=started
        )

    async def terminate_run(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            notes = ops.terminate_run(conn, namespace, run_id, reason, identity, time.time())
            return Noted(None, notes)

        await self._write(op)
        return await self.get_run(namespace, "", run_id)

    async def reset_run(self, reset: ResetRun) -> RunRecord:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            return Noted(None, reset_run(conn, reset, time.time()))

        await self._write(op)
        return await self.get_run(reset.namespace, "", reset.new_run_id)

    # -- signals and cancellation -------------------------------------------------------

    async def signal_run(self, namespace: str, run_id: str, name: str, payload: Any) -> int:
        def op(conn: sqlite3.Connection) -> int | Noted[int]:
            seq, notes = ops.signal_run(conn, namespace, run_id, name, payload, time.time())
            return Noted(seq, notes)

        return await self._write(op)

    async def signal_with_start(self, run: NewRun, name: str, payload: Any) -> RunRecord:
        def op(conn: sqlite3.Connection) -> str | Noted[str]:
            run_id, notes = ops.signal_with_start(conn, run, name, payload, time.time())
            return Noted(run_id, notes)

        run_id = await self._write(op)
        return await self.get_run(run.namespace, "", run_id)

    async def request_cancel(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            notes = ops.request_cancel(conn, namespace, run_id, reason, identity, time.time())
            return Noted(None, notes)

        await self._write(op)
        return await self.get_run(namespace, "", run_id)

    # -- updates (updates.py) -------------------------------------------------------------

    async def request_update(
        self, namespace: str, run_id: str, update_id: str, name: str, args: list[Any]
    ) -> UpdateRecord:
        def op(conn: sqlite3.Connection) -> Noted[UpdateRecord]:
            record, notes = updates.request_update(
                conn, namespace, run_id, update_id, name, args, time.time()
            )
            return Noted(record, notes)

        return await self._write(op)

    async def update_with_start(
        self, run: NewRun, update_id: str, name: str, args: list[Any], *, use_existing: bool
    ) -> UpdateRecord:
        def op(conn: sqlite3.Connection) -> Noted[UpdateRecord]:
            record, notes = updates.update_with_start(
                conn, run, update_id, name, args, use_existing, time.time()
            )
            return Noted(record, notes)

        return await self._write(op)

    async def get_update(self, namespace: str, run_id: str, update_id: str) -> UpdateRecord:
        return await self._read(lambda c: updates.get_update(c, namespace, run_id, update_id))

    async def wait_update(
        self, namespace: str, run_id: str, update_id: str, timeout: float | None
    ) -> UpdateRecord:
        # Outcomes and closes of the run wake its close waiters (see _on_notes).
        waiters = self._close_waiters
        return await wait_update(self, waiters, namespace, run_id, update_id, timeout)

    async def read_for_task(self, namespace: str, run_id: str, after_seq: int) -> TaskRead:
        return await self._read(lambda c: updates.read_for_task(c, namespace, run_id, after_seq))

    async def accept_updates(
        self,
        task: WorkflowTask,
        accepted: Sequence[UpdateRecord],
        rejected: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            notes = updates.accept_updates(conn, task, accepted, rejected, time.time())
            return Noted(None, notes)

        await self._write(op)

    # -- workflow tasks -----------------------------------------------------------------

    async def claim_workflow_tasks(
        self, owner: str, namespaces: Sequence[str], queues: Sequence[str], limit: int, lease: float
    ) -> list[WorkflowTask]:
        return await self._write(
            lambda c: ops.claim_workflow_tasks(
                c, owner, namespaces, queues, limit, lease, time.time()
            )
        )

    async def complete_workflow_task(
        self, task: WorkflowTask, commit: WorkflowCommit, lease: float
    ) -> CommitResult:
        def op(conn: sqlite3.Connection) -> CommitResult | Noted[CommitResult]:
            result, notes = ops.complete_workflow_task(conn, task, commit, lease, time.time())
            return Noted(result, notes) if notes else result

        return await self._write(op, task.namespace)

    async def release_workflow_task(self, task: WorkflowTask, *, delay: float, error: str) -> None:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            ops.release_workflow_task(conn, task, delay, error, time.time())
            return Noted(None, ops.WORK)

        await self._write(op)

    # -- activity tasks -----------------------------------------------------------------

    async def claim_activity_tasks(
        self, owner: str, namespaces: Sequence[str], queues: Sequence[str], limit: int, lease: float
    ) -> list[ActivityTask]:
        return await self._write(
            lambda c: ops.claim_activity_tasks(
                c, owner, namespaces, queues, limit, lease, time.time()
            )
        )

    async def heartbeat_activity(self, task: ActivityTask, details: Any, lease: float) -> bool:
        return await self._write(
            lambda c: ops.heartbeat_activity(c, task, details, lease, time.time())
        )

    async def extend_leases(self, tasks: Sequence[ActivityTask], lease: float) -> list[int]:
        return await self._write(lambda c: ops.extend_leases(c, tasks, lease, time.time()))

    async def retry_activity(
        self, task: ActivityTask, *, retry_at: float, failure: dict[str, Any]
    ) -> None:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            ops.retry_activity(conn, task, retry_at, failure, time.time())
            return Noted(None, ops.WORK)

        await self._write(op)

    async def finish_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        claim_for: str | None,
        local_queues: Sequence[str],
        lease: float,
    ) -> WorkflowTask | None:
        def op(conn: sqlite3.Connection) -> WorkflowTask | Noted[WorkflowTask | None] | None:
            claimed, notes = ops.finish_activity(
                conn, task, outcome, claim_for, local_queues, lease, time.time()
            )
            return Noted(claimed, notes) if notes else claimed

        return await self._write(op, task.namespace)

    async def advance_after_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        expected_seq: int,
        ts: float,
        commit: WorkflowCommit,
        lease: float,
    ) -> CommitResult | None:
        def op(conn: sqlite3.Connection) -> CommitResult | Noted[CommitResult | None] | None:
            result, notes = ops.advance_after_activity(
                conn, task, outcome, expected_seq, ts, commit, lease, time.time()
            )
            return Noted(result, notes) if notes else result

        return await self._write(op, task.namespace)

    async def release_activity(self, task: ActivityTask) -> None:
        def op(conn: sqlite3.Connection) -> Noted[None] | None:
            ops.release_activity(conn, task, time.time())
            return Noted(None, ops.WORK)

        await self._write(op)

    # -- timers and wake-ups ------------------------------------------------------------

    async def fire_timers(
        self, namespaces: Sequence[str], queues: Sequence[str], limit: int
    ) -> int:
        def op(conn: sqlite3.Connection) -> int | Noted[int]:
            fired, notes = ops.fire_timers(conn, namespaces, queues, limit, time.time())
            return Noted(fired, notes) if notes else fired

        return await self._write(op)

    async def next_due(
        self, namespaces: Sequence[str], queues: Sequence[str], *, idle: str | None = None
    ) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            # The first entry of each (namespace, queue, kind) in tasks_due (0033): a
            # min() under equalities is an index lookup, under IN lists a scan.
            due = [
                conn.execute(_NEXT_DUE, (namespace, queue, kind)).fetchone()[0]
                for namespace in ops.usable(conn, namespaces)
                for queue in queues
                for kind in _KINDS
            ]
            return min((d for d in due if d is not None), default=None)

        return await self._read(read)

    async def announce_work(self, places: Sequence[tuple[str, str]]) -> None:
        return None  # every waiter is woken by each change already

    async def wait_for_work(
        self, namespaces: Sequence[str], queues: Sequence[str], timeout: float
    ) -> tuple[str, str] | None:
        future = asyncio.get_running_loop().create_future()
        self._work_waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            self._work_waiters.discard(future)
        return None  # every worker hears of every change

    def _on_notes(self, notes: list[Any]) -> None:
        for note in notes:
            if isinstance(note, list):
                self._on_notes(note)
            elif note == ops.WORK:
                self._wake_workers()
            elif note == OTHER_WRITER:
                self._wake_workers()
                for waiters in self._close_waiters.values():
                    for future in waiters:
                        if not future.done():
                            future.set_result(None)
            elif isinstance(note, tuple) and note[0] in ("closed", ops.UPDATED):
                for future in self._close_waiters.get((note[1], note[2]), ()):
                    if not future.done():
                        future.set_result(None)

    async def _watch_other_writers(self, conn: sqlite3.Connection) -> None:
        # data_version of a connection changes only when another connection commits,
        # so on the writer's connection it reveals exactly the writes of other
        # processes, which this process has not announced itself.
        seen = conn.execute("PRAGMA data_version").fetchone()[0]
        while True:
            await asyncio.sleep(self.poll_interval)
            if not (self._work_waiters or self._close_waiters):
                continue
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != seen:
                seen = version
                self._on_notes([OTHER_WRITER])

    def _wake_workers(self) -> None:
        for future in self._work_waiters:
            if not future.done():
                future.set_result(None)

    # -- LLM usage ledger ---------------------------------------------------------------

    async def record_usage(self, record: UsageRecord) -> bool:
        return await self._write(lambda c: usage.record_usage(c, record))

    async def begin_llm_call(self, start: CallStart) -> Admission:
        return await self._write(lambda c: limitops.begin_llm_call(c, start, time.time()))

    async def finish_llm_call(
        self, record: UsageRecord, *, estimate: int, block_for: float | None = None
    ) -> bool:
        return await self._write(
            lambda c: limitops.finish_llm_call(c, record, estimate, block_for, time.time())
        )

    async def llm_limit_states(self, namespace: str | None) -> list[LimitState]:
        return await self._read(lambda c: limitops.limit_states(c, namespace, time.time()))

    async def usage_report(
        self,
        namespace: str | None,
        *,
        group_by: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> list[UsageRow]:
        return await self._read(lambda c: usage.usage_report(c, namespace, group_by, since, until))

    # -- tenancy (namespaces.py) --------------------------------------------------------

    async def create_namespace(self, namespace: str, settings: dict[str, Any]) -> NamespaceRecord:
        now = time.time()
        return await self._write(lambda c: nsops.create_namespace(c, namespace, settings, now))

    async def get_namespace(self, namespace: str) -> NamespaceRecord:
        return await self._read(lambda c: nsops.get_namespace(c, namespace))

    async def update_namespace(
        self, namespace: str, settings: dict[str, Any] | SettingsChange
    ) -> NamespaceRecord:
        return await self._write(lambda c: nsops.update_namespace(c, namespace, settings))

    async def list_namespace_records(self) -> list[NamespaceRecord]:
        return await self._read(nsops.list_namespace_records)

    async def delete_namespace(self, namespace: str, *, batch: int = DELETE_BATCH) -> None:
        await delete_namespace(self, namespace, batch)

    async def begin_namespace_deletion(self, namespace: str) -> None:
        now = time.time()
        await self._write(lambda c: nsops.begin_namespace_deletion(c, namespace, now))

    async def delete_namespace_batch(self, namespace: str, limit: int) -> bool:
        done = await self._write(lambda c: nsops.delete_namespace_batch(c, namespace, limit))
        if done:
            await self._truncate_log()
        return done

    async def deleting_namespaces(self) -> list[str]:
        return await self._read(nsops.deleting_namespaces)

    async def sweep_fair_flows(self, namespace: str, limit: int) -> int:
        return await self._write(lambda c: nsops.sweep_fair_flows(c, namespace, limit))

    async def delete_run(self, namespace: str, run_id: str) -> None:
        await self._write(lambda c: nsops.delete_run(c, namespace, run_id))
        await self._truncate_log()

    async def purge_closed_runs(self, namespace: str, closed_before: float, limit: int) -> int:
        return await self._write(
            lambda c: nsops.purge_closed_runs(c, namespace, closed_before, limit)
        )

    async def _truncate_log(self) -> None:
        """Copy the write-ahead log into the file and empty it, so that what a deletion
        overwrote in the file is not still in the log. Readers of other processes may
        hold it back; it is then emptied by a later checkpoint."""
        await self._read(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    async def namespace_stats(self, namespace: str) -> NamespaceStats:
        return await self._read(lambda c: nsops.namespace_stats(c, namespace, time.time()))

    async def reserve_start(
        self, namespace: str, task_queue: str, rate: float | None, queue_rate: float | None
    ) -> float:
        return await self._write(
            lambda c: nsops.reserve_start(c, namespace, task_queue, rate, queue_rate, time.time())
        )

    async def claim_workflow_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[WorkflowTask]:
        rows = await self._write(
            lambda c: nsops.claim_fair(
                c, "workflow", owner, limits, queues, total, lease, time.time()
            )
        )
        return [WorkflowTask(*row[:7]) for row in rows]

    async def claim_activity_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[ActivityTask]:
        rows = await self._write(
            lambda c: nsops.claim_fair(
                c, "activity", owner, limits, queues, total, lease, time.time()
            )
        )
        return [activity_task(row) for row in rows]
