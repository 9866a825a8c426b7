"""The scale-out store: PostgreSQL shared by many worker and server processes.

Every operation is one statement on a pooled connection: one round trip and one
transaction (the larger writes call functions defined by the migrations). Starts, task
completions and activity outcomes of one loop turn share a statement (group commit,
``commits.py``). Claims use
``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait on, nor take, each
other's tasks.

Clock. Leases, visibility and event times all use the database clock
(``tether.epoch()``, the transaction's ``now()``): whether a lease has expired is
judged by one clock, so workers on machines whose clocks disagree still fence each
other correctly. Times that callers pass in (a timer's ``fire_at``, derived from event
times, and an activity's ``retry_at``) are compared with that clock as they are.

Wake-ups. Writes that make work ready ``NOTIFY tether_work`` with the namespace and
task queue; closing a run sends ``NOTIFY tether_closed``. One LISTEN connection per
store (``listener.py``) wakes the matching ``wait_for_work`` and ``wait_closed``
callers. As notifications can be missed (the LISTEN connection dropped and came
back), waits never last longer than ``poll_interval`` seconds: a bounded fallback, not
a busy poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from ...errors import (
    InvalidArgument,
    LeaseLost,
    NamespaceAlreadyExists,
    NamespaceNotFound,
    StoreUnavailable,
    TetherError,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
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
    QueueBacklog,
    RunClose,
    RunPage,
    RunRecord,
    RunStatus,
    SchemaStatus,
    SettingsChange,
    WorkflowCommit,
    WorkflowTask,
    child_refused,
    outcome_events,
)
from ..reset import ResetRun
from ..usage import UsageRecord, UsageRow
from ..visibility import (
    RunFilter,
    decode_page_token,
    encode_page_token,
    list_runs_sql,
    search_attribute_rows,
)
from ..waiters import Box, LocalCloses, closed_record, wait_closed
from . import namespaces as nq
from . import queries as q
from . import usage
from .commits import ADVANCE, COMPLETE, FINISH, START, GroupCommit, Kind
from .connections import Conn, Connections
from .listener import Listener
from .migrate import current_version, latest_version
from .migrate import migrate as apply_migrations
from .planner_stats import PlannerStats
from .refusals import Refusal, being_deleted, input_refused, lease_lost, start_refused
from .reset import reset_run
from .updates import COMPLETE_UPDATES, UPDATE_CHANNEL, PostgresUpdates, completions, task_read

__all__ = ["PostgresStore"]

log = logging.getLogger("tether.store.postgres")


T = TypeVar("T")
# InternalClientError: a pooled connection the server ended while it sat idle (a fast
# shutdown or restart) raises it on next use; the pool then replaces the connection.
_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError)
# Reads of runs by key, batched as the commits are (commits.py).
_LOOK = Kind(q.GET_RUNS)
_RETRIES = 3  # for deadlocks and serialization failures, which roll back cleanly


#: Every statement here reads or writes rows by key, so one plan fits every call of it;
#: PostgreSQL's default re-plans a statement whose parameters are arrays at each call
#: (a plan for the array's actual length looks cheaper than the generic one), which
#: cost more than running it: 0.27 ms to plan the 0.03 ms look at a run, and the
#: batch functions' statements likewise (W2: a tenth of PostgreSQL's time).
_SESSION = {"plan_cache_mode": "force_generic_plan"}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _search_attributes(
    conn: Conn, namespace: str, run_ids: list[str]
) -> dict[str, dict[str, Any]]:
    if not run_ids:
        return {}
    rows = await conn.fetch(q.SEARCH_ATTRIBUTES, namespace, run_ids)
    return search_attribute_rows(tuple(r) for r in rows)


def _run_record(row: asyncpg.Record, attrs: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord(
        namespace=row[0],
        workflow_id=row[1],
        run_id=row[2],
        workflow_type=row[3],
        task_queue=row[4],
        status=RunStatus(row[5]),
        created_at=row[6],
        closed_at=row[7],
        result=_loads(row[8]),
        failure=_loads(row[9]),
        history_length=row[10],
        stuck=row[11],
        search_attributes=attrs or {},
    )


#: PostgreSQL's text holds no NUL character: a parameter with one is refused as a whole
#: statement (22021), and a JSON string's ``\\u0000`` cannot become text (22P05).
_NUL_STATES = ("22021", "22P05")
_NUL_REFUSED = (
    "text with the NUL character (\\x00) is refused: PostgreSQL's text cannot hold it"
    " (ids, names, task queues, reasons, search attribute values)"
)


def _has_nul(values: Sequence[Any]) -> bool:
    """Whether a statement's parameters hold a string with the NUL character. Checked
    before a write joins a batch: the server would refuse the batch's whole statement,
    and with it every other caller's write in it."""
    for value in values:
        if type(value) is str:
            if "\x00" in value:
                return True
        elif type(value) is list and value:
            # On every write's path: one search of the joined text, not one per item. A
            # list of numbers holds no text; one of text may hold None (an owner).
            first = value[0]
            if type(first) is str or first is None:
                try:
                    joined = "".join(value)
                except TypeError:
                    joined = "".join(v for v in value if type(v) is str)
                if "\x00" in joined:
                    return True
    return False


def _nul_refused(args: tuple[Any, ...]) -> InvalidArgument | None:
    """A write with NUL in its text, refused before it joins a batch (``commits.py``)."""
    return InvalidArgument(_NUL_REFUSED) if _has_nul(args) else None


def _translate(exc: asyncpg.PostgresError, where: str) -> TetherError:
    state = getattr(exc, "sqlstate", None)
    if state in _NUL_STATES:
        return InvalidArgument(f"{_NUL_REFUSED} ({exc})")
    if state == "54000":  # program_limit_exceeded: a value too long for an index entry
        return InvalidArgument(f"a value is too long for PostgreSQL to index: {exc}")
    if state == q.LEASE_LOST:
        return LeaseLost()
    if state == q.RUN_NOT_FOUND:
        return WorkflowNotFound()
    if state == q.RUN_CLOSED:
        return InvalidArgument(getattr(exc, "message", str(exc)))
    err = StoreUnavailable(f"PostgreSQL failed: {exc}", store=where)
    err.__cause__ = exc
    return err


def _events(events: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    return [str(etype) for etype, _ in events], [_dumps(attrs) for _, attrs in events]


def _commands(commit: WorkflowCommit) -> tuple[list[str | None], tuple[Any, ...]]:
    """The owner of each new activity (local fast path) and the commit's parameters."""
    local = set(commit.local_queues) if commit.claim_activities_for else set()
    owners = [
        commit.claim_activities_for if a.task_queue in local else None for a in commit.activities
    ]
    close, timers, cancels = commit.close, commit.timers, commit.cancel_timers
    acts = commit.activities
    # NULL, not an empty array, for no activities and no timers: every function reads
    # both as none (``coalesce(cardinality(...), 0)``, ``unnest``), and the driver's
    # encoding of an empty array was 3% of W2's client instructions (three of them a
    # write; six more in the write that closes a run).
    return owners, (
        *(
            (
                [a.step for a in acts],
                [a.name for a in acts],
                [a.task_queue for a in acts],
                [_dumps(a.args) for a in acts],
                [_dumps(a.options) for a in acts],
                owners,
            )
            if acts
            else (None,) * 6
        ),
        [step for step, _ in timers] if timers else None,
        [float(fire_at) for _, fire_at in timers] if timers else None,
        list(cancels) if cancels else None,
        None if close is None else str(close.status),
        None if close is None else _dumps(close.result),
        None if close is None or close.failure is None else _dumps(close.failure),
    )


def _claimed_task(row: asyncpg.Record) -> WorkflowTask:
    """A row of CLAIM_AND_READ: the task, and the run as the claim read it (if short)."""
    namespace, run_id = row[1], row[2]
    read = None if row[7] is None else task_read(namespace, run_id, row[7:])
    return WorkflowTask(row[0], namespace, run_id, row[3], row[4], row[5], row[6], read=read)


def _claimed(
    namespace: str,
    run_id: str,
    workflow_id: str,
    commit: WorkflowCommit,
    owners: list[str | None],
    steps: list[int] | None,
    ids: list[int] | None,
    now: float,
) -> list[ActivityTask]:
    """The activities of ``commit`` leased to the committer, as claimed tasks."""
    task_ids = dict(zip(steps or (), ids or (), strict=True))
    return [
        ActivityTask(
            task_ids[a.step],
            namespace,
            run_id,
            workflow_id,
            a.step,
            a.name,
            a.task_queue,
            a.args,
            a.options,
            1,
            now,
            1,
        )
        for a, owner in zip(commit.activities, owners, strict=True)
        if owner is not None
    ]


def _linked_runs(commit: WorkflowCommit) -> tuple[str | None, str | None]:
    """The children and continuing run of ``commit``, as start_linked_runs takes them."""
    children = [
        {
            "run_id": c.run.run_id,
            "workflow_id": c.run.workflow_id,
            "workflow_type": c.run.workflow_type,
            "task_queue": c.run.task_queue,
            "started": c.run.started,
            "step": c.step,
            "close_policy": c.close_policy,
            "refused": child_refused(c),
        }
        for c in commit.children
    ]
    new = commit.continue_as_new
    follow = None
    if new is not None:
        follow = {
            "run_id": new.run.run_id,
            "workflow_type": new.run.workflow_type,
            "task_queue": new.run.task_queue,
            "started": new.run.started,
            "signals": [{"name": name, "payload": payload} for name, payload in new.signals],
            "after_seq": new.after_seq,
        }
    return (_dumps(children) if children else None), (None if follow is None else _dumps(follow))


def _linked(commit: WorkflowCommit) -> bool:
    """Does the commit start runs or finish updates (more than its batch function does)?"""
    return bool(commit.children) or commit.continue_as_new is not None or bool(commit.updates)


_NOT_EXECUTED = (False, *(None,) * 14)

#: ``_closing`` for a commit that closes nothing: a hand that does nothing.
_NOT_CLOSING = contextlib.nullcontext(lambda now, last_seq: None)


#: Runs started here whose close this process watches for (see ``_watching``): the
#: closes of the latest this many, until a wait takes them.
WATCHED_STARTS = 5_000
#: The largest close a watch keeps (bytes of JSON; a larger one is read back by the
#: wait): closes waited for later are held meanwhile, at most WATCHED_STARTS of them.
WATCHED_CLOSE_BYTES = 2_000


#: A work waiter's future: the (namespace, queue) of work handed to this process alone.
_Handed = asyncio.Future[tuple[str, str] | None]


@dataclasses.dataclass(slots=True)
class _Watched:
    box: Box
    record: RunRecord | None = None


def _start_op(
    run: NewRun,
    owner: str | None,
    lease: float,
    created_at: float | None = None,
    executed: tuple[Any, ...] = _NOT_EXECUTED,
) -> tuple[Any, ...]:
    """A ``tether.start_op``: the run, its first task's owner if it is leased, and
    (``executed``: True, then complete_workflow_task's events and commands) the
    outcome of that task if the owner already ran it."""
    return (*q.run_args(run), owner, float(lease), created_at, *executed)


def _new_run_record(
    run: NewRun,
    created_at: float,
    history_length: int = 1,
    close: RunClose | None = None,
    closed_at: float | None = None,
) -> RunRecord:
    """A run as its start wrote it; closed by ``close`` when its first task closed it."""
    status, result, failure = (
        (RunStatus.RUNNING, None, None) if close is None
        else (close.status, close.result, close.failure)
    )  # fmt: skip
    return RunRecord(
        run.namespace, run.workflow_id, run.run_id, run.workflow_type, run.task_queue,
        status, created_at, None if close is None else closed_at, result, failure,
        history_length,
    )  # fmt: skip


async def _commit(
    conn: Conn,
    kind: Kind,
    args: tuple[Any, ...],
    run_id: str,
    commit: WorkflowCommit,
    applied: int | None = None,
) -> tuple[Any, ...]:
    """Write a commit that starts child runs or continues as new (start those runs) or
    finishes updates (store their outcomes), all in one transaction: its operation's
    own function (``kind.single``), then those. Returns the function's row past the
    three refusal columns (``applied``: the column there that says whether it applied).
    Other commits go through the group commit."""
    linked = bool(commit.children) or commit.continue_as_new is not None
    assert kind.single is not None  # every write has one
    async with conn.transaction():
        sql, params = kind.single.statement(args)
        (record,) = await conn.fetch(sql, *params)
        row = tuple(record)[3:]
        if applied is None or row[applied]:
            if linked:
                await conn.execute(q.START_LINKED_RUNS, args[0], run_id, *_linked_runs(commit))
            if commit.updates:
                await conn.execute(COMPLETE_UPDATES, args[0], run_id, *completions(commit))
        return row


class PostgresStore(PostgresUpdates):
    """A Tether store in a PostgreSQL database (schema ``tether``).

    ``pool_size`` bounds the connections this process opens for operations (plus one
    for claims and timers, and one for LISTEN); ``poll_interval`` bounds how long a
    wait relies on notifications alone.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        poll_interval: float = 5.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 60.0,
    ) -> None:
        if pool_size < 1:
            raise InvalidArgument("pool_size must be at least 1")
        self.url = url
        self.pool_size = pool_size
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._where = _redact(url)
        self._pool: Connections | None = None
        # Claims and timers go through a connection of their own: a worker's decision
        # of what to run next must not wait in the queue of the work it already runs.
        self._control: Connections | None = None
        self._listener: Listener | None = None
        self._planner_stats = PlannerStats(self._call)
        # Workers waiting for work: their namespaces and queues, and a future that gets
        # the (namespace, queue) of work handed to this process alone, or None.
        self._work_waiters: set[tuple[frozenset[str], frozenset[str], _Handed]] = set()
        # Work notifications being passed on to another idle worker (see _on_work).
        self._passing: set[asyncio.Task[None]] = set()
        self._close_waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._local_closes = LocalCloses()
        self._watched: OrderedDict[tuple[str, str], _Watched] = OrderedDict()
        # Runs whose close this process is writing (see _closing).
        self._closing_runs: Counter[tuple[str, str]] = Counter()
        # The pool holds every batch that may be out at once: up to pool_size - 2
        # batches of writes (commits.py) and two of reads by key. One namespace fills
        # at most a quarter of the pool with write batches and one read batch, so the
        # writes and reads of the others leave at once on connections of their own
        # instead of queueing for one behind the busiest tenant's batches. A quarter,
        # not all the spare ones: a flood's batches in PostgreSQL at once compete for
        # its CPU with another tenant's one write. On two cores, two batches in flight
        # instead of four gave the flooding tenant the same throughput (W1, 8 pairs)
        # and took the other tenant's p99 under the flood from 75-128 ms to 45-71 ms
        # (noisy neighbour, 4 pairs).
        self._commits = GroupCommit(
            self._send_batch,
            max_in_flight=max(pool_size - 2, 1),
            lane_in_flight=max(pool_size // 4, 1),
            refuse=_nul_refused,
        )
        # Reads by key (runs looked at, what workflow tasks read) are batched too.
        self._looks = GroupCommit(self._send_batch, max_in_flight=2, lane_in_flight=1)

    # -- connections --------------------------------------------------------------------

    async def _connect(self, server_settings: dict[str, str] | None = None) -> Conn:
        conn: Conn = await asyncpg.connect(
            self.url,
            timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            server_settings=server_settings,
        )
        return conn

    async def _connect_pooled(self) -> Conn:
        return await self._connect(_SESSION)

    async def _call(
        self,
        op: Callable[[Conn], Awaitable[T]],
        on_error: Refusal | None = None,
        *,
        control: bool = False,
    ) -> T:
        pool = self._control if control else self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open", store=self._where)
        return await self._guarded(lambda: pool.run(op), on_error)

    async def _guarded(self, run: Callable[[], Awaitable[T]], on_error: Refusal | None) -> T:
        """``run()``, retried on deadlocks and serialization failures (which roll back
        cleanly), with PostgreSQL's errors as Tether's."""
        for attempt in range(_RETRIES):
            try:
                return await run()
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
                if attempt + 1 < _RETRIES:
                    continue
                raise _translate(exc, self._where) from exc
            except asyncpg.PostgresError as exc:
                mapped = on_error(exc) if on_error is not None else None
                raise (mapped or _translate(exc, self._where)) from None
            except _CONNECTION_ERRORS as exc:
                raise StoreUnavailable(
                    f"PostgreSQL unreachable: {exc or type(exc).__name__}", store=self._where
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(self, kind: Kind, args: tuple[Any, ...], on_error: Refusal) -> asyncpg.Record:
        """One operation of a group commit (``commits.py``): its batch function's row."""
        if self._pool is None:
            raise StoreUnavailable("the store is not open", store=self._where)
        return await self._guarded(lambda: self._commits.submit(kind, args), on_error)

    async def _task_commit(
        self,
        kind: Kind,
        args: tuple[Any, ...],
        task: WorkflowTask | ActivityTask,
        commit: WorkflowCommit,
        applied: int | None = None,
    ) -> Sequence[Any]:
        """The row of a task's commit past its refusal columns: through the group
        commit, or, when it starts runs or finishes updates, with those in one
        transaction (``_commit``)."""
        if not _linked(commit):
            return (await self._write(kind, args, lease_lost(task.task_id)))[3:]
        return await self._call(
            lambda c: _commit(c, kind, args, task.run_id, commit, applied),
            lease_lost(task.task_id),
        )

    async def _send_batch(self, kind: Kind, ops: list[tuple[Any, ...]]) -> list[asyncpg.Record]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open", store=self._where)
        sql, params = kind.statement(ops)
        rows = await pool.run(lambda c: c.fetch(sql, *params))
        self._planner_stats.wrote(len(ops))
        return rows

    def queue_delay(self) -> float:
        return 0.0 if self._pool is None else self._pool.queued

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._call(lambda c: c.fetch(sql, *args))

    async def _fetch_control(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._call(lambda c: c.fetch(sql, *args), control=True)

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._call(lambda c: c.fetchrow(sql, *args))

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        if self._pool is not None:
            return
        try:
            conn = await self._connect()
            try:
                await apply_migrations(conn, self._where, apply=migrate)
            finally:
                await conn.close()
            # Pooled connections keep no session state (no LISTEN, no advisory locks,
            # no SET), so one given back needs no reset (asyncpg's is a round trip).
            wait = self.command_timeout
            self._pool = Connections(self._connect_pooled, self.pool_size, wait_timeout=wait)
            self._control = Connections(self._connect_pooled, 1, wait_timeout=wait)
            self._listener = Listener(
                self._connect,
                {
                    q.WORK_CHANNEL: self._on_work,
                    q.CLOSED_CHANNEL: self._on_closed,
                    UPDATE_CHANNEL: self._on_closed,  # the same waiters: see wait_update
                },
                self._wake_everyone,
                health_interval=max(self.poll_interval, 1.0),
            )
            await self._listener.start()
            self._planner_stats.start()
        except TetherError:
            await self.close()
            raise
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open PostgreSQL store: {exc or type(exc).__name__}", store=self._where
            ) from exc
        await self.ensure_namespace("default")

    async def close(self) -> None:
        await self._planner_stats.stop()
        await self._commits.close()
        if self._passing:
            await asyncio.wait(set(self._passing), timeout=self.connect_timeout)
        if self._listener is not None:
            listener = self._listener_pid
            if listener is not None:
                # Its idle registrations would be skipped anyway once its LISTEN
                # connection ends; gone now, they cost no notification meanwhile.
                with contextlib.suppress(TetherError):
                    await self._call(lambda c: c.execute(q.FORGET_IDLE, listener), control=True)
            await self._listener.stop()
            self._listener = None
        for pool in (self._pool, self._control):
            if pool is not None:
                await pool.close()
        self._pool = self._control = None
        error = StoreUnavailable("the store was closed", store=self._where)
        for *_, work in self._work_waiters:
            if not work.done():
                work.set_exception(error)
        for waiters in self._close_waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(error)

    async def schema_status(self) -> SchemaStatus:
        current = await self._call(current_version)
        return SchemaStatus(current=current, latest=latest_version())

    # -- namespaces ---------------------------------------------------------------------

    async def ensure_namespace(self, namespace: str) -> None:
        await self._call(lambda c: c.execute(q.ENSURE_NAMESPACE, namespace))

    async def list_namespaces(self) -> list[str]:
        return [r[0] for r in await self._fetch(q.LIST_NAMESPACES)]

    # -- runs ---------------------------------------------------------------------------

    async def start_run(self, run: NewRun) -> RunRecord:
        with self._watching(run) as watched:
            row = await self._write(START, _start_op(run, None, 0.0), start_refused(run))
            watched.record = _new_run_record(run, row[3])
            return watched.record

    async def start_run_leased(
        self, run: NewRun, owner: str, lease: float
    ) -> tuple[RunRecord, WorkflowTask]:
        with self._watching(run) as watched:
            row = await self._write(START, _start_op(run, owner, lease), start_refused(run))
            watched.record = _new_run_record(run, row[3])
        task = WorkflowTask(
            row[4], run.namespace, run.run_id, run.workflow_id, run.workflow_type,
            run.task_queue, 1,
        )  # fmt: skip
        return watched.record, task

    async def start_run_executed(
        self, run: NewRun, created_at: float, owner: str, lease: float, commit: WorkflowCommit
    ) -> tuple[RunRecord, CommitResult]:
        owners, commands = _commands(commit)
        outcome = (*_events(commit.events), *commands)
        refused = start_refused(run, then=lease_lost(0))
        with (
            self._watching(run) as watched,
            self._closing(run.namespace, run.run_id, commit) as hand,
        ):
            if not _linked(commit):
                op = _start_op(run, owner, lease, float(created_at), (True, *outcome))
                row = (await self._write(START, op, refused))[3:]
            else:
                # Child runs or continue-as-new: the start, then the commit's own path,
                # in one transaction.
                async def both(conn: Conn) -> tuple[Any, ...]:
                    async with conn.transaction():
                        op = _start_op(run, owner, lease, float(created_at))
                        sql, params = START.statement([op])
                        (started,) = await conn.fetch(sql, *params)
                        args = (run.namespace, run.run_id, started[4], 1, float(lease), *outcome)
                        done = await _commit(conn, COMPLETE, args, run.run_id, commit)
                        return (started[3], started[4], *done)

                row = await self._call(both, refused)
            created, _, now, steps, ids, next_token, last_seq = row
            hand(now, last_seq)
        claimed = _claimed(run.namespace, run.run_id, run.workflow_id, commit, owners,
                           steps, ids, now)  # fmt: skip
        next_task = None
        if next_token is not None:
            next_task = WorkflowTask(
                row[1], run.namespace, run.run_id, run.workflow_id, run.workflow_type,
                run.task_queue, next_token,
            )  # fmt: skip
        record = _new_run_record(run, created, last_seq, commit.close, now)
        watched.record = record
        return record, CommitResult(claimed, next_task, last_seq)

    async def get_run(
        self, namespace: str, workflow_id: str, run_id: str | None = None
    ) -> RunRecord:
        row: Any
        if _has_nul((namespace, workflow_id, run_id)):
            # No run has such a key, and in a batch of looks it would fail the others'.
            raise WorkflowNotFound(namespace=namespace, workflow_id=workflow_id, run_id=run_id)
        if run_id is not None:
            # By key, the reads of one loop turn share a statement (many waiters look
            # at once: every result() of a burst of starts).
            looked = await self._guarded(
                lambda: self._looks.submit(_LOOK, (namespace, run_id)), None
            )
            row = looked[3:] if looked[3] is not None else None
        else:
            row = await self._fetchrow(q.GET_RUN_BY_WORKFLOW_ID, namespace, workflow_id)
        if row is None or (workflow_id and row[1] != workflow_id):
            raise WorkflowNotFound(namespace=namespace, workflow_id=workflow_id, run_id=run_id)
        attrs = search_attribute_rows(_loads(row[12]) or ())
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
            schema="tether.",
            placeholder=lambda n: f"${n}",
            run_columns=q.RUN_COLUMNS,
            namespace=namespace,
            status=None if status is None else str(status),
            workflow_type=workflow_type,
            where=where or RunFilter(),
            cursor=decode_page_token(cursor) if cursor else None,
            limit=limit + 1,
        )

        async def read(conn: Conn) -> RunPage:
            rows = await conn.fetch(sql, *params)
            attrs = await _search_attributes(conn, namespace, [r[2] for r in rows[:limit]])
            runs = [_run_record(r, attrs.get(r[2])) for r in rows[:limit]]
            last = runs[-1] if runs else None
            more = len(rows) > limit and last is not None
            token = encode_page_token(last.created_at, last.run_id) if more and last else None
            return RunPage(runs, token)

        return await self._call(read)

    async def read_history(self, namespace: str, run_id: str, after_seq: int = 0) -> list[Event]:
        rows = await self._fetch(q.READ_HISTORY, namespace, run_id, after_seq)
        return [Event(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]

    async def wait_closed(
        self,
        namespace: str,
        run_id: str,
        timeout: float | None,
        *,
        started: RunRecord | None = None,
    ) -> RunRecord:
        key = (namespace, run_id)
        watched = self._watched.pop(key, None)
        if watched is not None:
            self._local_closes.unwatch(key, watched.box)
        if watched is not None and watched.record is not None and not watched.box.missed:
            if watched.box.close is not None:
                return closed_record(watched.record, watched.box.close)
            # Open when last heard of, and every close since its start was heard of: no
            # look before waiting.
            started = started or watched.record
        elif timeout is None or timeout > 0:
            await self._await_close(namespace, run_id)
        waiters, poll, local = self._close_waiters, self.poll_interval, self._local_closes
        return await wait_closed(
            self, waiters, namespace, run_id, timeout, poll, local, started=started
        )

    async def _await_close(self, namespace: str, run_id: str) -> None:
        """Say that a process may wait for the run's close with no start watch on it:
        its closes are then notified, wherever they are written (0027)."""
        if not _has_nul((namespace, run_id)):  # no such run: the look will say so
            await self._call(lambda c: c.execute(q.AWAIT_CLOSE, namespace, run_id))

    async def terminate_run(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        row = await self._call(
            lambda c: c.fetchrow(q.TERMINATE_RUN, namespace, run_id, reason, identity),
            input_refused(namespace, run_id),
        )
        assert row is not None
        return _run_record(row)

    async def reset_run(self, reset: ResetRun) -> RunRecord:
        def refused(exc: asyncpg.PostgresError) -> TetherError | None:
            if isinstance(exc, asyncpg.UniqueViolationError):
                return WorkflowAlreadyStarted(
                    f"another run of the workflow id opened while run {reset.base_run_id}"
                    " was being reset; try again",
                    namespace=reset.namespace,
                )
            return being_deleted(reset.namespace)(exc)

        await self._call(lambda c: reset_run(c, reset), refused)
        return await self.get_run(reset.namespace, "", reset.new_run_id)

    # -- signals and cancellation -------------------------------------------------------

    async def signal_run(self, namespace: str, run_id: str, name: str, payload: Any) -> int:
        signal = _dumps({"name": name, "payload": payload})
        action = f"signal {name!r} to"
        seq = await self._call(
            lambda c: c.fetchval(q.SIGNAL_RUN, namespace, run_id, signal, action),
            input_refused(namespace, run_id),
        )
        return int(seq)

    async def signal_with_start(self, run: NewRun, name: str, payload: Any) -> RunRecord:
        refused = start_refused(run, then=input_refused(run.namespace, run.run_id))
        signal = _dumps({"name": name, "payload": payload})
        params = (*q.run_args(run), signal, f"signal {name!r} to")
        run_id = await self._call(lambda c: c.fetchval(q.SIGNAL_WITH_START, *params), refused)
        return await self.get_run(run.namespace, "", run_id)

    async def request_cancel(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        row = await self._call(
            lambda c: c.fetchrow(q.REQUEST_CANCEL, namespace, run_id, reason, identity),
            input_refused(namespace, run_id),
        )
        assert row is not None
        return _run_record(row)

    # -- workflow tasks -----------------------------------------------------------------

    async def claim_workflow_tasks(
        self, owner: str, namespaces: Sequence[str], queues: Sequence[str], limit: int, lease: float
    ) -> list[WorkflowTask]:
        rows = await self._fetch_control(
            q.CLAIM_AND_READ, owner, list(namespaces), list(queues), limit, float(lease)
        )
        return [_claimed_task(row) for row in rows]

    async def complete_workflow_task(
        self, task: WorkflowTask, commit: WorkflowCommit, lease: float
    ) -> CommitResult:
        owners, commands = _commands(commit)
        args = (
            task.namespace,
            task.run_id,
            task.task_id,
            task.token,
            float(lease),
            *_events(commit.events),
            *commands,
        )
        with self._closing(task.namespace, task.run_id, commit) as hand:
            row = await self._task_commit(COMPLETE, args, task, commit)
            now, steps, ids, next_token, last_seq = row
            hand(now, last_seq)
        claimed = _claimed(task.namespace, task.run_id, task.workflow_id, commit, owners,
                           steps, ids, now)  # fmt: skip
        next_task = None
        if next_token is not None:
            next_task = WorkflowTask(
                task.task_id, task.namespace, task.run_id, task.workflow_id, task.workflow_type,
                task.task_queue, next_token,
            )  # fmt: skip
        return CommitResult(claimed, next_task, last_seq)

    async def release_workflow_task(self, task: WorkflowTask, *, delay: float, error: str) -> None:
        row = await self._fetchrow(
            q.RELEASE_WORKFLOW_TASK, task.task_id, task.namespace, task.token, float(delay), error
        )
        if row is None:
            raise LeaseLost(task_id=task.task_id)

    # -- activity tasks -----------------------------------------------------------------

    async def claim_activity_tasks(
        self, owner: str, namespaces: Sequence[str], queues: Sequence[str], limit: int, lease: float
    ) -> list[ActivityTask]:
        rows = await self._fetch_control(
            q.CLAIM_ACTIVITY_TASKS, owner, list(namespaces), list(queues), limit, float(lease)
        )
        return [
            ActivityTask(
                task_id=r[0],
                namespace=r[1],
                run_id=r[2],
                workflow_id=r[3],
                step=r[4],
                name=r[5],
                task_queue=r[6],
                args=orjson.loads(r[7]),
                options=orjson.loads(r[8]),
                attempt=r[9],
                scheduled_at=r[10],
                token=r[11],
                heartbeat_details=_loads(r[12]),
                last_failure=_loads(r[13]),
                previous_lost=r[14],
            )
            for r in rows
        ]

    async def heartbeat_activity(self, task: ActivityTask, details: Any, lease: float) -> bool:
        row = await self._fetchrow(
            q.HEARTBEAT_ACTIVITY,
            task.task_id,
            task.namespace,
            task.token,
            _dumps(details),
            float(lease),
        )
        if row is None:
            raise LeaseLost(task_id=task.task_id)
        return bool(row[0])

    async def extend_leases(self, tasks: Sequence[ActivityTask], lease: float) -> list[int]:
        if not tasks:
            return []
        rows = await self._fetch(
            q.EXTEND_LEASES,
            [t.task_id for t in tasks],
            [t.namespace for t in tasks],
            [t.token for t in tasks],
            float(lease),
        )
        kept = {(r[0], r[1]) for r in rows}
        return [t.task_id for t in tasks if (t.task_id, t.token) not in kept]

    async def retry_activity(
        self, task: ActivityTask, *, retry_at: float, failure: dict[str, Any]
    ) -> None:
        row = await self._fetchrow(
            q.RETRY_ACTIVITY,
            task.task_id,
            task.namespace,
            task.token,
            float(retry_at),
            _dumps(failure),
        )
        if row is None:
            raise LeaseLost(task_id=task.task_id)

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
        owners, commands = _commands(commit)
        # A close this process's waiters get from _closing needs no notification,
        # unless a wait elsewhere said it was waiting (0027).
        key = (task.namespace, task.run_id)
        local_close = commit.close is not None and self._local_closes.waiting(key)
        args = (
            task.namespace,
            task.run_id,
            task.task_id,
            task.token,
            expected_seq,
            float(ts),
            float(lease),
            *_events([*outcome_events(task, outcome), *commit.events]),
            *commands,
            local_close,
        )
        with self._closing(task.namespace, task.run_id, commit) as hand:
            row = await self._task_commit(ADVANCE, args, task, commit, applied=0)
            applied, now, steps, ids, last_seq = row
            if not applied:
                return None
            hand(now, last_seq)
        claimed = _claimed(task.namespace, task.run_id, task.workflow_id, commit, owners,
                           steps, ids, now)  # fmt: skip
        return CommitResult(claimed, None, last_seq)

    async def finish_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        claim_for: str | None,
        local_queues: Sequence[str],
        lease: float,
    ) -> WorkflowTask | None:
        (_, started), (_, done) = outcome_events(task, outcome)
        args = (
            task.namespace,
            task.run_id,
            task.task_id,
            task.token,
            str(outcome.event_type),
            _dumps(started),
            _dumps(done),
            claim_for,
            list(local_queues),
            float(lease),
        )
        row = (await self._write(FINISH, args, lease_lost(task.task_id)))[3:]
        if row[0] is None:
            return None
        task_id, token, queue, workflow_id, workflow_type = row
        return WorkflowTask(
            task_id, task.namespace, task.run_id, workflow_id, workflow_type, queue, token
        )

    async def release_activity(self, task: ActivityTask) -> None:
        row = await self._fetchrow(q.RELEASE_ACTIVITY, task.task_id, task.namespace, task.token)
        if row is None:
            raise LeaseLost(task_id=task.task_id)

    # -- timers and wake-ups ------------------------------------------------------------

    async def fire_timers(
        self, namespaces: Sequence[str], queues: Sequence[str], limit: int
    ) -> int:
        fired = await self._call(
            lambda c: c.fetchval(q.FIRE_TIMERS, list(namespaces), list(queues), limit),
            control=True,
        )
        return int(fired)

    async def next_due(
        self, namespaces: Sequence[str], queues: Sequence[str], *, idle: str | None = None
    ) -> float | None:
        listener = self._listener_pid
        if idle is not None and listener is not None:
            args: tuple[Any, ...] = (list(namespaces), list(queues), listener, idle)
            due = await self._call(lambda c: c.fetchval(q.NEXT_DUE_IDLE, *args), control=True)
        else:
            due = await self._call(
                lambda c: c.fetchval(q.NEXT_DUE, list(namespaces), list(queues)), control=True
            )
        return None if due is None else float(due)

    async def announce_work(self, places: Sequence[tuple[str, str]]) -> None:
        if places:
            namespaces, queues = [p[0] for p in places], [p[1] for p in places]
            await self._call(lambda c: c.execute(q.WAKE_IDLE, namespaces, queues), control=True)

    async def wait_for_work(
        self, namespaces: Sequence[str], queues: Sequence[str], timeout: float
    ) -> tuple[str, str] | None:
        # The waiter is registered before the first await, so work announced after
        # the caller's task first ran wakes it.
        future: _Handed = asyncio.get_running_loop().create_future()
        entry = (frozenset(namespaces), frozenset(queues), future)
        self._work_waiters.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, min(timeout, self.poll_interval))
            return None
        finally:
            self._work_waiters.discard(entry)

    def _on_work(self, channel: str, payload: str) -> None:
        try:
            namespace, queue, *named = orjson.loads(payload)
            target = named[0] if named else None
        except (orjson.JSONDecodeError, ValueError, TypeError):
            self._wake_everyone()
            return
        listener = self._listener_pid
        if target is not None and target != listener:
            return  # another process's idle worker was woken for it (0026)
        waiting = False
        handed = None if target is None else (str(namespace), str(queue))
        for namespaces, queues, future in self._work_waiters:
            if namespace in namespaces and queue in queues:
                waiting = True
                if not future.done():
                    future.set_result(handed)
        if target is not None and not waiting:
            # Woken as idle, but no worker here waits for that queue now (it woke for
            # another reason, is full, or stopped): wake another for it.
            self._pass_on(str(namespace), str(queue))

    def _pass_on(self, namespace: str, queue: str) -> None:
        async def notify() -> None:
            try:
                await self._call(lambda c: c.execute(q.NOTIFY_WORK, namespace, queue), control=True)
            except TetherError as exc:  # the store went away: its waiters poll
                log.warning("could not pass a work notification on: %s", exc)

        task = asyncio.get_running_loop().create_task(notify())
        self._passing.add(task)
        task.add_done_callback(self._passing.discard)

    def _on_closed(self, channel: str, payload: str) -> None:
        try:
            namespace, run_id, *close = orjson.loads(payload)
            key = (str(namespace), str(run_id))
        except (orjson.JSONDecodeError, ValueError, TypeError):
            self._wake_everyone()
            return
        if key in self._closing_runs:
            return  # _closing settles it: handed, or the watch dropped
        # The close itself, when it fits the notification (0024): its waiters here then
        # need not read the run back.
        handed = False
        with contextlib.suppress(ValueError, TypeError):
            status, closed_at, last_seq, result, failure = close
            if (closed := RunStatus(status)) != RunStatus.RUNNING:
                self._local_closes.hand(
                    key,
                    status=closed,
                    result=result,
                    failure=failure if isinstance(failure, dict) else None,
                    closed_at=float(closed_at),
                    history_length=int(last_seq),
                    size=len(payload),
                )
                handed = True
        if not handed:
            self._unwatch(key)  # closed, but not said how: a wait reads the run
        self._wake_closed(*key)

    def _closing(
        self, namespace: str, run_id: str, commit: WorkflowCommit
    ) -> contextlib.AbstractContextManager[Callable[[float, int], None]]:
        """Around the write of a commit that may close a run. The body calls the
        callable given with the close's time and last seq once the close is written:
        the run's waiters here then get the run as written (as get_run would read it)
        without reading it back. Meanwhile the server's notification of the close does
        not wake them (on another connection, it may overtake the write's return); they
        are woken once, after the write, whatever its fate."""
        if commit.close is None:
            return _NOT_CLOSING  # most commits: no generator to run around the write
        return self._closing_run(namespace, run_id, commit.close)

    @contextlib.contextmanager
    def _closing_run(
        self, namespace: str, run_id: str, close: RunClose
    ) -> Iterator[Callable[[float, int], None]]:
        key = (namespace, run_id)
        handed = False

        def hand(now: float, last_seq: int) -> None:
            nonlocal handed
            handed = True
            if not self._local_closes.waiting(key):
                return  # nobody here to hand it to: spare the copy
            result = _dumps(close.result)
            failure = None if close.failure is None else _dumps(close.failure)
            self._local_closes.hand(
                key,
                status=close.status,
                result=_loads(result),
                failure=None if failure is None else _loads(failure),
                closed_at=now,
                history_length=last_seq,
                size=len(result) + len(failure or ""),
            )

        self._closing_runs[key] += 1
        try:
            yield hand
        finally:
            self._closing_runs[key] -= 1
            if self._closing_runs[key] <= 0:
                del self._closing_runs[key]
            if not handed:
                # Not written here; if the run closed meanwhile, its notification was
                # skipped (above): a watch for it can no longer vouch that it is open.
                self._unwatch(key)
            self._wake_closed(namespace, run_id)

    @contextlib.contextmanager
    def _watching(self, run: NewRun) -> Iterator[_Watched]:
        """Around a start's write: watch for the run's closes from before the write, so
        that a wait for its result later (``start`` then ``result``) need not look at
        the run first. Every close of a run is notified (or written here), so a watch
        that heard nothing vouches that the run is open, until the notifications may
        have been missed (LISTEN reconnected: every watch dropped). Kept for the latest
        ``WATCHED_STARTS`` starts until a wait takes it; a close over
        ``WATCHED_CLOSE_BYTES`` is not kept (the wait reads the run)."""
        key = (run.namespace, run.run_id)
        watched = _Watched(Box())
        if self._listener is not None:
            watched.box = self._local_closes.watch(key, limit=WATCHED_CLOSE_BYTES)
            self._watched[key] = watched
            if len(self._watched) > WATCHED_STARTS:
                oldest, old = self._watched.popitem(last=False)
                self._local_closes.unwatch(oldest, old.box)
        try:
            yield watched
        except BaseException:
            self._unwatch(key)
            raise

    @property
    def _listener_pid(self) -> int | None:
        """The server pid of this store's LISTEN connection: the name under which its
        workers register as idle and work is handed to them (0026)."""
        return None if self._listener is None else self._listener.backend_pid

    def _unwatch(self, key: tuple[str, str]) -> None:
        watched = self._watched.pop(key, None)
        if watched is not None:
            self._local_closes.unwatch(key, watched.box)

    def _wake_closed(self, namespace: str, run_id: str) -> None:
        """Wake the waiters of a run that closed; a close committed by this process
        wakes them at once, before its notification comes back from the server."""
        for future in self._close_waiters.get((namespace, run_id), ()):
            if not future.done():
                future.set_result(None)

    def _wake_everyone(self) -> None:
        """Notifications may have been missed (LISTEN reconnected): wake every waiter,
        and drop every watch (a run it watches may have closed unheard of)."""
        for key, watched in self._watched.items():
            self._local_closes.unwatch(key, watched.box)
        self._watched.clear()
        for *_, work in self._work_waiters:
            if not work.done():
                work.set_result(None)
        for waiters in self._close_waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    # -- tenancy (namespaces.py, migrations/0004_tenancy.sql) ---------------------------

    async def create_namespace(self, namespace: str, settings: dict[str, Any]) -> NamespaceRecord:
        row = await self._fetchrow(nq.CREATE_NAMESPACE, namespace, _dumps(settings))
        if row is None:
            if await self._call(lambda c: c.fetchval(nq.DELETING, namespace)):
                raise NamespaceAlreadyExists(
                    f"namespace {namespace!r} is being deleted; create it again once that"
                    " has finished",
                    namespace=namespace,
                )
            raise NamespaceAlreadyExists(namespace=namespace)
        return _namespace_record(row)

    async def get_namespace(self, namespace: str) -> NamespaceRecord:
        row = await self._fetchrow(nq.GET_NAMESPACE, namespace)
        if row is None:
            raise NamespaceNotFound(namespace=namespace)
        return _namespace_record(row)

    async def update_namespace(
        self, namespace: str, settings: dict[str, Any] | SettingsChange
    ) -> NamespaceRecord:
        async def change(conn: Conn, fn: SettingsChange) -> asyncpg.Record | None:
            async with conn.transaction():
                current = await conn.fetchrow(nq.LOCK_NAMESPACE, namespace)
                if current is None:
                    return None
                new = fn(_namespace_record(current).settings)
                return await conn.fetchrow(nq.UPDATE_NAMESPACE, namespace, _dumps(new))

        if callable(settings):
            fn = settings
            row = await self._call(lambda c: change(c, fn))
        else:
            row = await self._fetchrow(nq.UPDATE_NAMESPACE, namespace, _dumps(settings))
        if row is None:
            raise NamespaceNotFound(namespace=namespace)
        return _namespace_record(row)

    async def list_namespace_records(self) -> list[NamespaceRecord]:
        return [_namespace_record(r) for r in await self._fetch(nq.LIST_NAMESPACE_RECORDS)]

    async def delete_namespace(self, namespace: str, *, batch: int = DELETE_BATCH) -> None:
        await delete_namespace(self, namespace, batch)

    async def begin_namespace_deletion(self, namespace: str) -> None:
        if not await self._call(lambda c: c.fetchval(nq.BEGIN_DELETION, namespace)):
            raise NamespaceNotFound(namespace=namespace)

    async def delete_namespace_batch(self, namespace: str, limit: int) -> bool:
        done = await self._call(lambda c: c.fetchval(nq.DELETE_BATCH, namespace, limit))
        if done is None:
            raise InvalidArgument(
                f"namespace {namespace!r} is not being deleted", namespace=namespace
            )
        return bool(done)

    async def deleting_namespaces(self) -> list[str]:
        return [r[0] for r in await self._fetch(nq.DELETING_NAMESPACES)]

    async def sweep_fair_flows(self, namespace: str, limit: int) -> int:
        return int(await self._call(lambda c: c.fetchval(nq.SWEEP_FAIR_FLOWS, namespace, limit)))

    async def delete_run(self, namespace: str, run_id: str) -> None:
        if not await self._call(lambda c: c.fetchval(nq.DELETE_RUN, namespace, run_id)):
            raise WorkflowNotFound(namespace=namespace, run_id=run_id)

    async def purge_closed_runs(self, namespace: str, closed_before: float, limit: int) -> int:
        purged = await self._call(
            lambda c: c.fetchval(nq.PURGE_CLOSED_RUNS, namespace, float(closed_before), limit)
        )
        return int(purged)

    async def namespace_stats(self, namespace: str) -> NamespaceStats:
        async def read(conn: Conn) -> NamespaceStats:
            if await conn.fetchrow(nq.GET_NAMESPACE, namespace) is None:
                raise NamespaceNotFound(namespace=namespace)
            runs = await conn.fetch(nq.RUNS_BY_STATUS, namespace)
            queues = await conn.fetch(nq.QUEUE_BACKLOG, namespace)
            waits = await conn.fetch(nq.LIMIT_WAITS, namespace)
            return NamespaceStats(
                namespace,
                {r[0]: r[1] for r in runs},
                [QueueBacklog(*r) for r in queues],
                {r[0]: r[1] for r in waits},
            )

        return await self._call(read)

    async def reserve_start(
        self, namespace: str, task_queue: str, rate: float | None, queue_rate: float | None
    ) -> float:
        delay = await self._call(
            lambda c: c.fetchval(nq.RESERVE_START, namespace, task_queue, rate, queue_rate)
        )
        return float(delay)

    async def _claim_fair(
        self,
        kind: str,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[asyncpg.Record]:
        rated = [(lim.namespace, q_, r) for lim in limits for q_, r in lim.queue_rates.items()]
        return await self._fetch_control(
            nq.CLAIM_FAIR,
            kind,
            owner,
            list(queues),
            float(lease),
            total,
            [lim.namespace for lim in limits],
            [lim.share for lim in limits],
            [lim.max_leased for lim in limits],
            [lim.rate for lim in limits],
            [n for n, _, _ in rated],
            [q_ for _, q_, _ in rated],
            [float(r) for _, _, r in rated],
        )

    async def claim_workflow_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[WorkflowTask]:
        rows = await self._claim_fair("workflow", owner, limits, queues, total, lease)
        return [WorkflowTask(*row[:7]) for row in rows]

    async def claim_activity_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[ActivityTask]:
        rows = await self._claim_fair("activity", owner, limits, queues, total, lease)
        return [
            ActivityTask(
                task_id=r["id"],
                namespace=r["namespace"],
                run_id=r["run_id"],
                workflow_id=r["workflow_id"],
                step=r["step"],
                name=r["name"],
                task_queue=r["task_queue"],
                args=orjson.loads(r["args"]),
                options=orjson.loads(r["options"]),
                attempt=r["attempt"],
                scheduled_at=r["scheduled_at"],
                token=r["token"],
                heartbeat_details=_loads(r["heartbeat"]),
                last_failure=_loads(r["last_failure"]),
                previous_lost=r["lost"],
            )
            for r in rows
        ]

    # -- LLM usage ledger ---------------------------------------------------------------

    async def record_usage(self, record: UsageRecord) -> bool:
        args = usage.record_args(record)
        inserted = await self._call(lambda c: c.fetchval(usage.RECORD_USAGE, *args))
        return inserted is not None

    async def begin_llm_call(self, start: CallStart) -> Admission:
        args = usage.begin_args(start)
        row = await self._fetchrow(usage.BEGIN_CALL, *args)
        assert row is not None
        return Admission(row[0], float(row[1]), float(row[2]))

    async def finish_llm_call(
        self, record: UsageRecord, *, estimate: int, block_for: float | None = None
    ) -> bool:
        args = usage.finish_args(record, estimate, block_for)
        return bool(await self._call(lambda c: c.fetchval(usage.FINISH_CALL, *args)))

    async def llm_limit_states(self, namespace: str | None) -> list[LimitState]:
        rows = await self._fetch(usage.LIMIT_STATES, namespace)
        return [LimitState.from_row(tuple(row), float(row[7])) for row in rows]

    async def usage_report(
        self,
        namespace: str | None,
        *,
        group_by: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> list[UsageRow]:
        sql, groups, params = usage.report_query(namespace, group_by, since, until)
        rows = await self._fetch(sql, *params)
        return [r for r in (usage.usage_row(groups, row) for row in rows) if r is not None]


def _namespace_record(row: asyncpg.Record) -> NamespaceRecord:
    return NamespaceRecord(row[0], row[1], orjson.loads(row[2]))
