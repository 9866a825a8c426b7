"""``Client``: start runs, wait for results, read histories; signal, query, update and
cancel runs.

Every surface goes through it.
"""

from __future__ import annotations

import os
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

from .codec import Codec, check_text, utf8_size_over
from .definitions import Registry, workflow_name
from .engine import RunInfo, answer_query
from .errors import (
    InvalidArgument,
    PayloadTooLarge,
    UnknownWorkflowType,
    UpdateFailed,
    UpdateRejected,
    WorkflowAlreadyStarted,
    WorkflowFailed,
    WorkflowNotFound,
    failure_from_dict,
)
from .history import Event
from .policy import Priority
from .search_attributes import MAX_ATTRIBUTES, encode
from .store import (
    LimitState,
    NewRun,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    Store,
    UpdateRecord,
    UpdateStatus,
    UsageRow,
    plan_reset,
    reset_point,
)
from .store.visibility import attribute_filter
from .tenancy import Namespaces

__all__ = ["Client", "LocalWorker", "WorkflowHandle"]

T = TypeVar("T")
Acted = TypeVar("Acted")


class LocalWorker(Protocol):
    """A worker in the client's process that can run a run it starts at once."""

    def offer(
        self, namespace: str, task_queue: str, workflow_type: str, *, ranked: bool = False
    ) -> bool:
        """Hold a place for the run if this worker can run it now (``ranked``: the run
        has a priority or fairness key)."""

    async def start_here(self, run: NewRun) -> RunRecord:
        """Start the run offered for, running its first task here; the record says
        whether that task closed it."""


@dataclass(frozen=True)
class WorkflowHandle(Generic[T]):
    """One run, by namespace, workflow id and run id."""

    client: Client
    namespace: str
    workflow_id: str
    run_id: str | None = None

    async def result(self, timeout: float | None = None) -> T:
        """Wait for the run to close; return its result or raise ``WorkflowFailed``."""
        return await self._result(timeout)

    async def _result(self, timeout: float | None, started: RunRecord | None = None) -> T:
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout != timeout
        ):
            raise InvalidArgument(f"timeout must be a number of seconds or None, got {timeout!r}")
        run_id = self.run_id or (await self.describe()).run_id
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            run = await self.client.store.wait_closed(self.namespace, run_id, left, started=started)
            started = None
            if run.workflow_id != self.workflow_id:
                raise WorkflowNotFound(
                    namespace=self.namespace, workflow_id=self.workflow_id, run_id=run_id
                )
            # Follow the chain to its last run: continued as new, or replaced by a reset.
            next_id = await self.client._successor(run)
            if next_id is None:
                break
            run_id = next_id
        if run.status == RunStatus.COMPLETED:
            definition = self.client.registry.workflows.get(run.workflow_type)
            if definition is not None:
                return definition.signature.convert_result(run.result)  # type: ignore[no-any-return]
            return run.result  # type: ignore[no-any-return]
        if run.status == RunStatus.RUNNING:
            raise TimeoutError(f"workflow {self.workflow_id} still running after {timeout}s")
        error = WorkflowFailed(
            f"workflow run {run.status}",
            namespace=self.namespace,
            workflow_id=self.workflow_id,
            run_id=run.run_id,
        )
        if run.failure is not None:
            error.__cause__ = failure_from_dict(run.failure)
        raise error

    async def describe(self) -> RunRecord:
        return await self.client.store.get_run(self.namespace, self.workflow_id, self.run_id)

    async def _current(self, run: RunRecord | None = None) -> RunRecord:
        """The run (or ``run``); if it continued as new or was reset, the latest run of
        the chain (signals, cancellation, termination and queries go there)."""
        run = run or await self.describe()
        while (next_id := await self.client._successor(run)) is not None:
            run = await self.client.store.get_run(self.namespace, self.workflow_id, next_id)
        return run

    async def _on_current(
        self, act: Callable[[RunRecord], Awaitable[Acted]], run: RunRecord | None = None
    ) -> Acted:
        """``act`` on the chain's latest run. The run can continue as new (or be reset)
        between finding it and acting on it; the store then refuses the closed run, and
        the act goes to its successor, as it would have had it come a moment later."""
        run = run or await self._current()
        while True:
            try:
                return await act(run)
            except InvalidArgument:
                now = await self.client.store.get_run(self.namespace, self.workflow_id, run.run_id)
                latest = await self._current(now)
                if latest.run_id == run.run_id:
                    raise
                run = latest

    async def reset(
        self,
        to: int | str,
        *,
        reason: str = "",
        reapply_signals: bool = True,
        identity: str = "client",
    ) -> str:
        """Start a new run of this workflow id from a point of this run's history, to
        go on with the code of today: what came after the point runs again. Returns
        the new run's id.

        ``to`` is an event seq (see ``tether workflow history``) or a named point:
        ``"last_completed_step"``, ``"first_failed_activity"`` or ``"step:N"`` (see
        ``docs/reset.md``). The open run of the workflow id, if any, is terminated
        with ``reason``, naming the new run; signals this run received after the
        point are sent to the new run again unless ``reapply_signals`` is False. A
        point where the code had not taken in all input raises ``InvalidArgument``.
        """
        _check_reason(reason, identity)
        run = await self.describe()
        events = await self.client.store.read_history(self.namespace, run.run_id)
        seq = reset_point(events, to, run.run_id)
        plan = plan_reset(
            self.namespace,
            run.run_id,
            events,
            seq,
            new_run_id=new_id(),
            reason=reason,
            identity=identity,
            reapply_signals=reapply_signals,
        )
        return (await self.client.store.reset_run(plan)).run_id

    async def history(self) -> list[Event]:
        run = await self.describe()
        return await self.client.store.read_history(self.namespace, run.run_id)

    async def terminate(self, reason: str = "", *, identity: str = "client") -> RunRecord:
        """End the run at once; its pending steps are dropped. Records who and why."""
        _check_reason(reason, identity)
        return await self._on_current(
            lambda run: self.client.store.terminate_run(
                self.namespace, run.run_id, reason=reason, identity=identity
            )
        )

    async def signal(self, name: str, payload: Any = None) -> None:
        """Send the signal ``name`` to the open run; ``ctx.wait_signal(name)`` returns
        ``payload``. Recorded in history at once, so it is never lost: it waits for the
        workflow to ask for it, and for a worker to run. A closed run refuses it
        (``InvalidArgument``)."""
        _check_name(name, "signal")
        what = f"payload of signal {name!r}"
        plain = self.client.codec.plain(payload, what=what)
        current = await self._current()
        await self.client.namespaces.check_payload(self.namespace, plain, what)
        await self._on_current(
            lambda run: self.client.store.signal_run(self.namespace, run.run_id, name, plain),
            current,
        )

    async def cancel(self, reason: str = "", *, identity: str = "client") -> RunRecord:
        """Ask the run to cancel: its code sees ``asyncio.CancelledError`` at the await
        it is at and may clean up (even run steps); if it lets the error propagate, the
        run closes as ``canceled``. Activities scheduled before the request are asked
        to stop through their heartbeats. Returns at once; await :meth:`result` to see
        the run end."""
        _check_reason(reason, identity)
        return await self._on_current(
            lambda run: self.client.store.request_cancel(
                self.namespace, run.run_id, reason=reason, identity=identity
            )
        )

    async def query(self, name: str, *args: Any) -> Any:
        """Ask the run's query handler ``name`` (``ctx.set_query_handler``) for an answer.

        The run is rebuilt here by replaying its history against the workflow code this
        client's App registered (no worker is involved, nothing is written), so the
        App must know the workflow type. Works on open and closed runs.
        """
        _check_name(name, "query")
        run = await self._current()
        definition = self.client.registry.workflows.get(run.workflow_type)
        if definition is None:
            raise UnknownWorkflowType(
                f"cannot answer query {name!r}: this client's App does not register"
                f" workflow {run.workflow_type!r} (queries replay its code here)",
                namespace=self.namespace,
                workflow_id=self.workflow_id,
            )
        plain = self.client.codec.plain(list(args), what=f"arguments of query {name!r}")
        events = await self.client.store.read_history(self.namespace, run.run_id)
        return answer_query(definition, _run_info(run), self.client.codec, events, name, plain)

    async def update(
        self,
        name: str,
        *args: Any,
        update_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call the run's update handler ``name`` (``ctx.update``) and return its result.

        The request is stored, a worker validates it against the live run (a rejection
        raises :class:`UpdateRejected` and records nothing), records it in history and
        runs the handler, which may await steps; a handler that raises, or a run that
        closes first, raises :class:`UpdateFailed`. ``update_id`` (default: a new one)
        makes the call idempotent: the same id on the same run returns the same outcome
        without running the handler again. ``timeout`` bounds the wait
        (``TimeoutError``); the update goes on, and the same id can be awaited again.
        """
        _check_name(name, "update")
        update_id = _update_id(update_id)
        what = f"arguments of update {name!r}"
        plain = self.client.codec.plain(list(args), what=what)
        current = await self._current()
        await self.client.namespaces.check_payload(self.namespace, plain, what)
        record = await self._on_current(
            lambda run: self.client.store.request_update(
                self.namespace, run.run_id, update_id, name, plain
            ),
            current,
        )
        return await self.client._update_outcome(record, timeout)


_ids = random.Random()  # seeded from the OS; reseeded in forked children
os.register_at_fork(after_in_child=_ids.seed)


IdReuse = Literal["allow", "allow_failed_only", "reject"]
IdConflict = Literal["fail", "use_existing"]
_ID_REUSE = frozenset(get_args(IdReuse))
_ID_CONFLICT = frozenset(get_args(IdConflict))


def new_id() -> str:
    """A time-ordered random id (UUID version 7).

    Runs started close together get keys close together, so their rows and events
    share index pages: fewer pages are written per commit than with random UUIDs.
    """
    millis = time.time_ns() // 1_000_000
    bits = _ids.getrandbits(74)  # ids need to be unique, not secret: no syscall per id
    value = (millis << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62)
    value |= bits & ((1 << 62) - 1)
    return f"{value:032x}"  # UUID(int=value).hex, without building the UUID


def _check_name(name: Any, what: str) -> None:
    check_text(name, f"a {what} name")


def _update_id(update_id: Any) -> str:
    if update_id is None:
        return new_id()
    return check_text(update_id, "an update id")


#: A cancel, terminate or reset reason is a note for people, kept in history.
MAX_REASON_BYTES = 10_000


def _check_reason(reason: Any, identity: Any) -> None:
    """Why and by whom a run is cancelled, terminated or reset (the reason may be empty)."""
    if not isinstance(reason, str) or "\x00" in reason:
        raise InvalidArgument(
            f"a reason must be a string without the NUL character, got {reason!r:.80}"
        )
    if (size := utf8_size_over(reason, MAX_REASON_BYTES)) is not None:
        raise PayloadTooLarge(
            f"a reason holds at most {MAX_REASON_BYTES} bytes (UTF-8), got {size}"
        )
    check_text(identity, "an identity")


def _seconds(value: float | datetime | None, what: str) -> float | None:
    """Unix seconds of a time bound (a number, or an aware datetime)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument(f"{what} must be a timezone-aware datetime, got {value!r}")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidArgument(f"{what} must be Unix seconds or a datetime, got {value!r}")


def _run_info(run: RunRecord) -> RunInfo:
    return RunInfo(run.namespace, run.workflow_id, run.run_id, run.workflow_type, run.task_queue)


class Client:
    """Starts and inspects runs in a store, within one default namespace."""

    def __init__(
        self,
        store: Store,
        *,
        codec: Codec | None = None,
        registry: Registry | None = None,
        namespace: str = "default",
        task_queue: str = "default",
    ) -> None:
        self.store = store
        self.codec = codec or Codec()
        self.registry = registry or Registry()
        self.namespace = namespace
        self.task_queue = task_queue
        # Workers of this process that may take runs this client starts (App.worker
        # adds its workers); weakly held, so a worker dropped is gone from here too.
        self.local_workers: weakref.WeakSet[LocalWorker] = weakref.WeakSet()

    def _namespace(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else check_text(namespace, "a namespace")

    async def start(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str | None = None,
        task_queue: str | None = None,
        namespace: str | None = None,
        id_reuse: IdReuse = "allow",
        id_conflict: IdConflict = "fail",
        priority: Priority | None = None,
        search_attributes: Mapping[str, Any] | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a run of ``workflow`` (a decorated function or a type name).

        Arguments are checked against the workflow's signature when it is known here.
        ``search_attributes`` (name to ``str``, ``list[str]``, ``int``, ``float``,
        ``bool`` or aware ``datetime``) are what :meth:`list` can filter the run by.
        An open run already holding the id raises ``WorkflowAlreadyStarted``, or with
        ``id_conflict="use_existing"`` returns a handle on that run. A closed run's id
        may be used again (``id_reuse="allow"``), only if that run did not complete
        (``"allow_failed_only"``), or never (``"reject"``). ``priority`` places the
        run's tasks in their queue (see :class:`tether.Priority`).
        """
        if id_reuse not in _ID_REUSE or id_conflict not in _ID_CONFLICT:
            raise InvalidArgument(
                f"id_reuse must be one of {sorted(_ID_REUSE)} and id_conflict one of"
                f" {sorted(_ID_CONFLICT)}, got {id_reuse!r} and {id_conflict!r}"
            )
        run = self._new_run(workflow, args, id, task_queue, namespace, priority, search_attributes)
        return (await self._start(run, id is not None, id_reuse, id_conflict))[0]

    async def _start(
        self, run: NewRun, named: bool, id_reuse: IdReuse, id_conflict: IdConflict
    ) -> tuple[WorkflowHandle[Any], RunRecord | None]:
        """The handle on the run started (or found), and the run as started if its
        first task ran here."""
        if named and id_reuse != "allow":
            await self._check_reuse(run.namespace, run.workflow_id, id_reuse)
        await self.namespaces.admit(run)
        try:
            record, here = await self._start_run(run)
        except WorkflowAlreadyStarted:
            if id_conflict != "use_existing":
                raise
            existing = await self.store.get_run(run.namespace, run.workflow_id)
            return WorkflowHandle(self, run.namespace, run.workflow_id, existing.run_id), None
        handle = WorkflowHandle[Any](self, run.namespace, run.workflow_id, record.run_id)
        return handle, record if here and record.status == RunStatus.RUNNING else None

    async def _start_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        """Store the run; when a worker of this process can run it now, that worker
        runs its first workflow task and stores the start with the task's outcome
        (eager execution, see Worker.start_here): then True."""
        ranked = "fairness" in run.started
        for worker in list(self.local_workers):
            if worker.offer(run.namespace, run.task_queue, run.workflow_type, ranked=ranked):
                return await worker.start_here(run), True
        return await self.store.start_run(run), False

    async def _check_reuse(self, namespace: str, workflow_id: str, policy: IdReuse) -> None:
        try:
            last = await self.store.get_run(namespace, workflow_id)
        except WorkflowNotFound:
            return
        if last.status == RunStatus.RUNNING:
            return  # the open-run conflict is the store's to report, atomically
        if policy == "reject" or last.status == RunStatus.COMPLETED:
            raise WorkflowAlreadyStarted(
                f"workflow id {workflow_id!r} was used by a run that is {last.status}"
                f" and id_reuse={policy!r} forbids using it again",
                namespace=namespace,
                workflow_id=workflow_id,
            )

    async def signal_with_start(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str,
        signal: str,
        payload: Any = None,
        task_queue: str | None = None,
        namespace: str | None = None,
        priority: Priority | None = None,
        search_attributes: Mapping[str, Any] | None = None,
    ) -> WorkflowHandle[Any]:
        """Send ``signal`` to the open run of ``id``, starting a run of ``workflow``
        with ``args`` (and ``search_attributes``) first if no run of that id is open:
        one atomic store operation, so concurrent callers start one run and every
        signal reaches it. Returns a handle on the run signalled."""
        if not isinstance(id, str) or not id:
            raise InvalidArgument(f"signal_with_start needs a workflow id, got {id!r}")
        _check_name(signal, "signal")
        run = self._new_run(workflow, args, id, task_queue, namespace, priority, search_attributes)
        what = f"payload of signal {signal!r}"
        plain = self.codec.plain(payload, what=what)
        await self.namespaces.check_payload(run.namespace, plain, what)
        await self.namespaces.admit(run)
        record = await self.store.signal_with_start(run, signal, plain)
        return WorkflowHandle(self, run.namespace, run.workflow_id, record.run_id)

    async def update_with_start(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str,
        update: str,
        update_args: Sequence[Any] = (),
        update_id: str | None = None,
        task_queue: str | None = None,
        namespace: str | None = None,
        id_reuse: IdReuse = "allow",
        id_conflict: IdConflict = "use_existing",
        timeout: float | None = None,
        priority: Priority | None = None,
    ) -> tuple[Any, WorkflowHandle[Any]]:
        """Send the update ``update`` to the open run of ``id``, starting a run of
        ``workflow`` with ``args`` first if none is open: the start and the request are
        one atomic store operation. Returns ``(result, handle)``; raises as
        :meth:`WorkflowHandle.update`. With ``id_conflict="fail"`` an open run raises
        ``WorkflowAlreadyStarted`` (nothing is sent); ``id_reuse`` is as for
        :meth:`start`."""
        if not isinstance(id, str) or not id:
            raise InvalidArgument(f"update_with_start needs a workflow id, got {id!r}")
        if id_reuse not in _ID_REUSE or id_conflict not in _ID_CONFLICT:
            raise InvalidArgument(
                f"id_reuse must be one of {sorted(_ID_REUSE)} and id_conflict one of"
                f" {sorted(_ID_CONFLICT)}, got {id_reuse!r} and {id_conflict!r}"
            )
        _check_name(update, "update")
        if isinstance(update_args, str) or not isinstance(update_args, Sequence):
            raise InvalidArgument(f"update_args must be a list, got {update_args!r}")
        update_id = _update_id(update_id)
        run = self._new_run(workflow, args, id, task_queue, namespace, priority)
        what = f"arguments of update {update!r}"
        plain = self.codec.plain(list(update_args), what=what)
        await self.namespaces.check_payload(run.namespace, plain, what)
        if id_reuse != "allow":
            await self._check_reuse(run.namespace, run.workflow_id, id_reuse)
        await self.namespaces.admit(run)
        record = await self.store.update_with_start(
            run, update_id, update, plain, use_existing=id_conflict == "use_existing"
        )
        handle: WorkflowHandle[Any] = WorkflowHandle(
            self, run.namespace, run.workflow_id, record.run_id
        )
        return await self._update_outcome(record, timeout), handle

    async def update(
        self,
        workflow_id: str,
        name: str,
        *args: Any,
        run_id: str | None = None,
        namespace: str | None = None,
        update_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """``get_handle(workflow_id, run_id).update(name, *args, ...)``: call an update
        handler of a run and return its result."""
        handle = self.get_handle(workflow_id, run_id, namespace=namespace)
        return await handle.update(name, *args, update_id=update_id, timeout=timeout)

    async def _update_outcome(self, record: UpdateRecord, timeout: float | None) -> Any:
        """Wait for the request's outcome; return the result or raise."""
        ids = {"namespace": record.namespace, "run_id": record.run_id}
        if not record.done:
            record = await self.store.wait_update(
                record.namespace, record.run_id, record.update_id, timeout
            )
        if record.status == UpdateStatus.COMPLETED:
            return record.result
        if record.status == UpdateStatus.REJECTED:
            why = (record.failure or {}).get("message", "")
            error: Exception = UpdateRejected(
                f"update {record.name!r} (id {record.update_id}) was rejected: {why}", **ids
            )
        elif record.status == UpdateStatus.FAILED:
            error = UpdateFailed(f"update {record.name!r} (id {record.update_id}) failed", **ids)
        else:
            run = await self.store.get_run(record.namespace, "", record.run_id)
            if run.status == RunStatus.RUNNING:
                raise TimeoutError(
                    f"update {record.name!r} (id {record.update_id}) not done after {timeout}s"
                )
            error = UpdateFailed(
                f"update {record.name!r} (id {record.update_id}) did not complete: the run"
                f" is {run.status}",
                **ids,
            )
        if record.failure is not None:
            error.__cause__ = failure_from_dict(record.failure)
        raise error

    def _new_run(
        self,
        workflow: Callable[..., Any] | str,
        args: tuple[Any, ...],
        id: str | None,
        task_queue: str | None,
        namespace: str | None,
        priority: Priority | None = None,
        search_attributes: Mapping[str, Any] | None = None,
    ) -> NewRun:
        name, definition = workflow_name(workflow)
        check_text(name, "a workflow type")
        definition = definition or self.registry.workflows.get(name)
        if definition is None and self.registry.workflows:
            known = ", ".join(sorted(self.registry.workflows))
            raise UnknownWorkflowType(f"no workflow named {name!r} (known: {known})")
        namespace = self._namespace(namespace)
        checked = definition.signature.check_args(args) if definition else list(args)
        plain = self.codec.plain(checked, what=f"arguments of workflow {name}")
        queue = task_queue or (definition.task_queue if definition else self.task_queue)
        check_text(queue, "a task queue")
        workflow_id = new_id() if id is None else check_text(id, "a workflow id")
        started: dict[str, Any] = {
            "workflow_type": name,
            "workflow_id": workflow_id,
            "task_queue": queue,
            "args": plain,
            "seed": random.getrandbits(63),
        }
        if priority is not None:
            if not isinstance(priority, Priority):
                raise InvalidArgument(
                    f"priority must be a tether.Priority, got {type(priority).__name__}"
                )
            if (fairness := priority.to_attrs()) is not None:
                started["fairness"] = fairness
        if search_attributes is not None:
            # The store indexes them from the WorkflowStarted event, atomically.
            started["search_attributes"] = encode(search_attributes)
        return NewRun(
            namespace=namespace,
            workflow_id=workflow_id,
            run_id=new_id(),
            workflow_type=name,
            task_queue=queue,
            started=started,
        )

    async def execute(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str | None = None,
        task_queue: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        priority: Priority | None = None,
        search_attributes: Mapping[str, Any] | None = None,
    ) -> Any:
        """Start a run and wait for its result."""
        run = self._new_run(workflow, args, id, task_queue, namespace, priority, search_attributes)
        handle, started = await self._start(run, id is not None, "allow", "fail")
        # Nothing awaited between the start and the wait: the wait is registered before
        # the run's next commit, and need not read the run first (waiters.wait_closed).
        return await handle._result(timeout, started)

    def get_handle(
        self, workflow_id: str, run_id: str | None = None, *, namespace: str | None = None
    ) -> WorkflowHandle[Any]:
        """A handle on an existing run (the newest run of the id if ``run_id`` is None)."""
        # Only the types: an id no store could hold is simply not found.
        if not isinstance(workflow_id, str) or not workflow_id:
            raise InvalidArgument(f"a workflow id must be a non-empty string, got {workflow_id!r}")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise InvalidArgument(f"a run id must be a non-empty string or None, got {run_id!r}")
        return WorkflowHandle(self, self._namespace(namespace), workflow_id, run_id)

    async def list(
        self,
        *,
        namespace: str | None = None,
        status: RunStatus | str | None = None,
        workflow_type: str | None = None,
        started_after: float | datetime | None = None,
        started_before: float | datetime | None = None,
        closed_after: float | datetime | None = None,
        closed_before: float | datetime | None = None,
        search_attributes: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs of a namespace, newest first (by start time, then run id), a page at a
        time: pass ``next_cursor`` (an opaque page token) back as ``cursor``.

        Filters combine with AND: ``status``, ``workflow_type``, start and close time
        (``*_after`` inclusive, ``*_before`` exclusive; Unix seconds or aware
        datetimes), and ``search_attributes``: ``{"customer": "acme"}`` matches by
        equality (a keyword list by containing it), ``{"priority": tether.Range(2, 5)}``
        an int, float or datetime range (inclusive). See ``docs/visibility.md``.
        """
        if status is not None:
            try:
                status = RunStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in RunStatus)
                raise InvalidArgument(f"unknown status {status!r} (one of {choices})") from None
        if workflow_type is not None:
            check_text(workflow_type, "workflow_type")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be between 1 and 10000, got {limit!r}")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"cursor must be a page token (a string), got {cursor!r}")
        if search_attributes is not None and not isinstance(search_attributes, Mapping):
            raise InvalidArgument(
                f"search_attributes must map names to values, got {search_attributes!r}"
            )
        if search_attributes is not None and len(search_attributes) > MAX_ATTRIBUTES:
            # No run holds more; and each filter is a join, which SQLite caps.
            raise InvalidArgument(
                f"at most {MAX_ATTRIBUTES} search attribute filters, got {len(search_attributes)}"
            )
        where = RunFilter(
            started_after=_seconds(started_after, "started_after"),
            started_before=_seconds(started_before, "started_before"),
            closed_after=_seconds(closed_after, "closed_after"),
            closed_before=_seconds(closed_before, "closed_before"),
            attributes=tuple(attribute_filter(k, v) for k, v in (search_attributes or {}).items()),
        )
        scope = self._namespace(namespace)
        await self.namespaces.settings(scope)  # NamespaceNotFound, not an empty page
        return await self.store.list_runs(
            scope,
            status=status,
            workflow_type=workflow_type,
            limit=limit,
            cursor=cursor,
            where=where,
        )

    @property
    def namespaces(self) -> Namespaces:
        """Namespaces as tenants: create, describe, update, list, delete (see
        ``docs/tenancy.md``)."""
        service: Namespaces | None = getattr(self, "_namespaces", None)
        if service is None or service.store is not self.store:
            service = self._namespaces = Namespaces(self.store)
        return service

    async def delete_run(
        self, workflow_id: str, run_id: str | None = None, *, namespace: str | None = None
    ) -> None:
        """Delete a run and every byte of it (history, payloads, tasks, timers): a
        GDPR erasure. The newest run of ``workflow_id`` unless ``run_id`` is given; an
        open run is deleted too (workers holding its tasks lose their leases)."""
        namespace = namespace or self.namespace
        run = await self.store.get_run(namespace, workflow_id, run_id)
        await self.store.delete_run(namespace, run.run_id)

    async def usage(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        group_by: Sequence[str] = ("model",),
        since: float | None = None,
        until: float | None = None,
    ) -> Sequence[UsageRow]:
        """LLM usage and cost from the ledger, summed per group: ``namespace``,
        ``workflow_type``, ``workflow_id``, ``run_id``, ``provider``, ``model``,
        ``outcome``, ``day`` (UTC); over ``[since, until)`` in Unix seconds. One
        namespace (the client's by default) unless ``all_namespaces``."""
        scope = None if all_namespaces else (namespace or self.namespace)
        return await self.store.usage_report(scope, group_by=group_by, since=since, until=until)

    async def reset(
        self,
        workflow_id: str,
        to: int | str,
        *,
        run_id: str | None = None,
        namespace: str | None = None,
        reason: str = "",
        reapply_signals: bool = True,
        identity: str = "client",
    ) -> str:
        """Reset a run (the newest of ``workflow_id`` unless ``run_id`` is given); see
        :meth:`WorkflowHandle.reset`. Returns the new run's id."""
        handle = self.get_handle(workflow_id, run_id, namespace=namespace)
        return await handle.reset(
            to, reason=reason, reapply_signals=reapply_signals, identity=identity
        )

    async def llm_limits(
        self, *, namespace: str | None = None, all_namespaces: bool = False
    ) -> Sequence[LimitState]:
        """The LLM rate limits shared by every worker process, as the store holds them
        now, per (namespace, provider): calls in flight, a provider's 429 block, and
        the request and token buckets' levels at the last call. One namespace (the
        client's by default) unless ``all_namespaces``."""
        scope = None if all_namespaces else (namespace or self.namespace)
        return await self.store.llm_limit_states(scope)

    async def _successor(self, run: RunRecord) -> str | None:
        """The id of the run that took over from ``run``: it continued as new, or was
        terminated by a reset; None otherwise."""
        if run.status not in (RunStatus.CONTINUED_AS_NEW, RunStatus.TERMINATED):
            return None
        events = await self.store.read_history(run.namespace, run.run_id, run.history_length - 1)
        next_id = events[-1].attrs.get("new_run_id") if events else None
        return None if next_id is None else str(next_id)
