"""The ``Store`` protocol: the domain operations every store provides.

A store owns durability, claiming and wake-ups; it never runs workflow code. Every
operation names its namespace (or the namespaces a worker serves), so no query can
reach across tenants. Times are Unix seconds from the store's clock.

Leases and fencing: a claimed task carries a ``token``. Completing, heartbeating or
retrying it succeeds only while that token is still the task's and the lease has not
expired; otherwise the store raises :class:`tether.errors.LeaseLost` and changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from ..history import Event, EventType
from .llm_limits import Admission, CallStart, LimitState
from .updates import UpdateOutcome, UpdateRecord
from .usage import UsageRecord, UsageRow
from .visibility import RunFilter

if TYPE_CHECKING:
    from .reset import ResetRun

__all__ = [
    "DELETE_BATCH",
    "ActivityOutcome",
    "ActivityTask",
    "ClaimLimit",
    "CommitResult",
    "ContinueAsNew",
    "NamespaceRecord",
    "NamespaceStats",
    "NewActivity",
    "NewChild",
    "NewRun",
    "QueueBacklog",
    "RunClose",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "SchemaStatus",
    "SettingsChange",
    "Store",
    "TaskRead",
    "WorkflowCommit",
    "WorkflowTask",
    "child_failure",
    "child_refused",
    "outcome_events",
]


# Rows a namespace's deletion removes per transaction, unless told otherwise.
DELETE_BATCH = 2000

# A change of a namespace's settings: the new settings from the current ones.
SettingsChange = Callable[[dict[str, Any]], dict[str, Any]]


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    # Closed by continue-as-new: the workflow id goes on in a new run (its history's
    # last event, WorkflowContinuedAsNew, names it).
    CONTINUED_AS_NEW = "continued_as_new"


@dataclass(frozen=True, slots=True)
class RunRecord:
    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: RunStatus
    created_at: float
    closed_at: float | None
    result: Any
    failure: dict[str, Any] | None
    history_length: int
    # Why the run's workflow task could not finish (non-determinism, a crash), if so.
    stuck: str | None = None
    # Filled by get_run and list_runs (other operations leave it empty).
    search_attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The run as a JSON-ready dict: times as Unix seconds, nothing formatted for
        people (the HTTP API's shape; the CLI renames and formats the times)."""
        return {
            "namespace": self.namespace,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "type": self.workflow_type,
            "task_queue": self.task_queue,
            "status": str(self.status),
            "created_at": self.created_at,
            "closed_at": self.closed_at,
            "history_length": self.history_length,
            "result": self.result,
            "failure": self.failure,
            "stuck": self.stuck,
            # Datetimes as ISO 8601 strings: JSON has no time type.
            "search_attributes": {
                k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in self.search_attributes.items()
            },
        }


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRecord]
    # An opaque page token: pass it back as ``cursor`` for the next page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create; ``started`` holds the attrs of its WorkflowStarted event."""

    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    started: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewChild:
    """A child run that a workflow task starts, in the parent's namespace.

    When the child closes for good (not by continuing as new), its outcome is appended
    to the parent as ``ChildWorkflowCompleted``/``ChildWorkflowFailed {step}``, with a
    workflow task, in the transaction that closes it. When the parent closes first,
    ``close_policy`` says what happens to the child: ``terminate``, ``cancel`` (a
    cancellation request) or ``abandon``. If an open run already has the child's
    workflow id, the parent gets ``ChildWorkflowFailed`` at once instead.
    """

    run: NewRun
    step: int
    close_policy: str = "terminate"


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    """The new run that replaces the committing one (closed as ``continued_as_new``).

    Its first events are ``WorkflowStarted``, then ``SignalReceived`` for each of
    ``signals`` (``(name, payload)``, buffered but not consumed by the old run), then
    for each ``SignalReceived`` of the old run after seq ``after_seq`` (signals its
    code never saw). The new run keeps the old run's parent link.
    """

    run: NewRun
    signals: list[tuple[str, Any]] = field(default_factory=list)
    after_seq: int = 0


@dataclass(slots=True)
class WorkflowTask:
    """A claimed request to advance one run's code past its newest events."""

    task_id: int
    namespace: str
    run_id: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    token: int
    # The run as the claim read it (a store may send a short history with the claim,
    # saving the worker the read of :meth:`Store.read_for_task` after it).
    read: TaskRead | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TaskRead:
    """What a workflow task reads of its run (:meth:`Store.read_for_task`)."""

    # The run's events after the seq asked for, in order.
    events: list[Event]
    # Its pending update requests, in arrival order.
    pending: list[UpdateRecord]
    # The seq of the run's newest event as the store holds it (0 if it holds no such
    # run). Below what a worker has seen of the run, the store has lost commits it
    # acknowledged (or the run was rewound): the worker's copy is ahead of history.
    last_seq: int


@dataclass(frozen=True, slots=True)
class NewActivity:
    step: int
    name: str
    task_queue: str
    args: list[Any]
    options: dict[str, Any]


@dataclass(slots=True)
class ActivityTask:
    """A claimed activity attempt."""

    task_id: int
    namespace: str
    run_id: str
    workflow_id: str
    step: int
    name: str
    task_queue: str
    args: list[Any]
    options: dict[str, Any]
    attempt: int
    scheduled_at: float
    token: int
    heartbeat_details: Any = None
    last_failure: dict[str, Any] | None = None
    # True when the previous attempt's lease expired (its worker died or hung).
    previous_lost: bool = False


@dataclass(frozen=True, slots=True)
class RunClose:
    status: RunStatus
    result: Any = None
    failure: dict[str, Any] | None = None


@dataclass(slots=True)
class WorkflowCommit:
    """What one workflow task writes, atomically, when it completes.

    ``events`` are (type, attrs) pairs; the store numbers and timestamps them.
    Activities are leased at once to ``claim_activities_for`` when it is set (the
    committing worker serves their queue: the local fast path).
    """

    events: list[tuple[str, dict[str, Any]]]
    activities: list[NewActivity] = field(default_factory=list)
    timers: list[tuple[int, float]] = field(default_factory=list)
    cancel_timers: list[int] = field(default_factory=list)
    close: RunClose | None = None
    claim_activities_for: str | None = None
    local_queues: Sequence[str] = ()
    children: list[NewChild] = field(default_factory=list)
    continue_as_new: ContinueAsNew | None = None
    # Outcomes of the updates whose UpdateCompleted events this commit records.
    updates: list[UpdateOutcome] = field(default_factory=list)


@dataclass(slots=True)
class CommitResult:
    activities: list[ActivityTask]
    # Set when new input reached the run while the task ran: the task stays leased
    # to the committer under a new token so it can go on at once.
    next_task: WorkflowTask | None
    # The seq of the run's newest event after the commit.
    last_seq: int


@dataclass(frozen=True, slots=True)
class ActivityOutcome:
    """How an activity execution ended for good."""

    event_type: str  # ActivityCompleted, ActivityFailed or ActivityTimedOut
    result: Any = None
    failure: dict[str, Any] | None = None


def outcome_events(
    task: ActivityTask, outcome: ActivityOutcome
) -> list[tuple[str, dict[str, Any]]]:
    """The history events that record how an activity execution ended."""
    started: dict[str, Any] = {"step": task.step, "attempt": task.attempt}
    if task.last_failure is not None:
        started["last_failure"] = task.last_failure
    done: dict[str, Any] = {"step": task.step}
    if outcome.event_type == EventType.ACTIVITY_COMPLETED:
        done["result"] = outcome.result
    else:
        done["failure"] = outcome.failure
    return [(EventType.ACTIVITY_STARTED, started), (outcome.event_type, done)]


def child_failure(
    status: str, workflow_id: str, workflow_type: str, run_id: str, cause: Any
) -> dict[str, Any]:
    """The ``ChildWorkflowError`` (as data) a parent receives for a child that ended
    without a result (or could not start: ``run_id`` is then empty)."""
    failure: dict[str, Any] = {
        "code": "child_workflow_error",
        "message": f"child workflow {workflow_type} {status}",
        "workflow_type": workflow_type,
        "workflow_id": workflow_id,
        "run_id": run_id,
    }
    if cause is not None:
        failure["cause"] = cause
    return failure


def child_refused(child: NewChild) -> dict[str, Any]:
    """The failure of a child that could not start: an open run has its workflow id."""
    cause = {
        "code": "application_error",
        "type": "WorkflowAlreadyStarted",
        "message": f"an open run already has workflow id {child.run.workflow_id!r}",
        "non_retryable": True,
        "details": [],
        "stack": "",
    }
    return child_failure("not started", child.run.workflow_id, child.run.workflow_type, "", cause)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    """A namespace and its settings, as stored (``tether.tenancy`` validates them)."""

    name: str
    created_at: float
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueBacklog:
    """The tasks of one task queue of a namespace, now."""

    task_queue: str
    workflow_ready: int  # workflow tasks waiting for a worker
    activity_ready: int  # activity attempts waiting for a worker
    leased: int  # tasks held by a worker (lease not expired)
    delayed: int  # timers and retries waiting for their time


@dataclass(frozen=True, slots=True)
class NamespaceStats:
    namespace: str
    runs: dict[str, int]  # by status
    queues: list[QueueBacklog]
    # How often work was held back by a rate limit or a concurrency cap, by kind
    # ("start", "workflow", "activity"), since the namespace was created.
    limit_waits: dict[str, int]


@dataclass(frozen=True, slots=True)
class ClaimLimit:
    """How much one namespace may take in one claim.

    ``share`` bounds this claim for the namespace (the caller's fair share); after
    every namespace had its share, what is left of the claim's total goes, in order,
    to namespaces that used all of theirs. ``max_leased`` caps the tasks of the kind
    leased at once in the namespace, by every worker together; ``rate`` bounds
    dispatches per second in the namespace and ``queue_rates`` in one of its task
    queues (token buckets holding one second of tokens).
    """

    namespace: str
    share: int
    max_leased: int | None = None
    rate: float | None = None
    queue_rates: Mapping[str, float] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        return self.max_leased is not None or self.rate is not None or bool(self.queue_rates)


class Store(Protocol):
    """Durable state of every namespace: runs, histories, tasks and timers."""

    url: str

    async def open(self, *, migrate: bool = True) -> None:
        """Connect and apply pending migrations; refuse a store that is not ours or newer.

        With ``migrate=False`` the schema is only checked (for ``tether db status``).
        """

    async def close(self) -> None: ...

    async def schema_status(self) -> SchemaStatus: ...

    # -- namespaces ---------------------------------------------------------------

    async def ensure_namespace(self, namespace: str) -> None: ...

    async def list_namespaces(self) -> list[str]: ...

    # -- runs and histories -------------------------------------------------------

    async def start_run(self, run: NewRun) -> RunRecord:
        """Create a run, its WorkflowStarted event and its first workflow task.

        Raises WorkflowAlreadyStarted if an open run of the namespace has the id.
        """

    async def start_run_leased(
        self, run: NewRun, owner: str, lease: float
    ) -> tuple[RunRecord, WorkflowTask]:
        """As :meth:`start_run`, with the first workflow task leased to ``owner`` for
        ``lease`` seconds in the same transaction (an eager start: a worker in the
        caller's process runs it at once, with no claim); returns that task too."""

    async def start_run_executed(
        self, run: NewRun, created_at: float, owner: str, lease: float, commit: WorkflowCommit
    ) -> tuple[RunRecord, CommitResult]:
        """Start a run whose first workflow task ``owner`` has already run: ``commit``
        is that task's outcome, applied in the start's own transaction (eager
        execution: one commit instead of two). ``created_at`` is the time the task
        saw, the run's creation and WorkflowStarted time. Refusals are
        :meth:`start_run`'s; activities of ``commit`` may be leased to ``owner`` as
        in :meth:`complete_workflow_task`, whose result this returns too. The record
        is the run as the start left it: closed if ``commit`` closed it."""

    async def get_run(
        self, namespace: str, workflow_id: str, run_id: str | None = None
    ) -> RunRecord:
        """The given run, or the newest run of the workflow id; raises WorkflowNotFound."""

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
        """A page of the namespace's runs, newest first (``created_at``, then
        ``run_id``, descending), with their search attributes; ``cursor`` is the
        previous page's ``next_cursor``. See ``store/visibility.py`` for the indexes."""

    async def read_history(
        self, namespace: str, run_id: str, after_seq: int = 0
    ) -> list[Event]: ...

    async def wait_closed(
        self,
        namespace: str,
        run_id: str,
        timeout: float | None,
        *,
        started: RunRecord | None = None,
    ) -> RunRecord:
        """Return the run once it is closed (or as it is when ``timeout`` passes). Its
        search attributes may be left empty (``get_run`` has them). ``started``: the
        run as the caller's start wrote it, in this turn of the event loop, with its
        first task run in this process: the store waits for news of it before reading
        it (only this process runs it yet; a close from elsewhere in that instant,
        a terminate, is seen at the next poll)."""

    async def terminate_run(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        """Close an open run at once, recording who and why; drop its pending work."""

    async def reset_run(self, reset: ResetRun) -> RunRecord:
        """Create the run ``reset`` describes (see ``reset.py``) and terminate the open
        run of its workflow id, if any, naming the new run: one transaction. Returns
        the new run.

        Raises WorkflowNotFound if the namespace has no run ``reset.base_run_id``, and
        WorkflowAlreadyStarted if another run of the workflow id opened meanwhile.
        """

    # -- signals and cancellation -------------------------------------------------------

    async def signal_run(self, namespace: str, run_id: str, name: str, payload: Any) -> int:
        """Append ``SignalReceived {name, payload}`` to an open run and ask for a workflow
        task (as an activity's completion does); return the event's seq.

        Raises WorkflowNotFound if the namespace has no such run, InvalidArgument if
        the run is closed; nothing is changed then.
        """

    async def signal_with_start(self, run: NewRun, name: str, payload: Any) -> RunRecord:
        """Signal the open run of ``run.workflow_id``, or start ``run`` and signal it
        (``WorkflowStarted`` then ``SignalReceived``) if no open run has the id: one
        atomic operation. Returns the run signalled; its ``run_id`` is ``run.run_id``
        exactly when it was started here.
        """

    async def request_cancel(
        self, namespace: str, run_id: str, *, reason: str, identity: str
    ) -> RunRecord:
        """Append ``WorkflowCancelRequested`` to an open run and ask for a workflow task.

        The run's activities scheduled so far are marked: their heartbeats answer
        that they should stop. Errors as for :meth:`signal_run`.
        """

    # -- updates (see store/updates.py) ---------------------------------------------------

    async def request_update(
        self, namespace: str, run_id: str, update_id: str, name: str, args: list[Any]
    ) -> UpdateRecord:
        """Record an update request on an open run and ask for a workflow task.

        If the run already has a request with ``update_id`` (open run or closed), return
        it unchanged. Raises WorkflowNotFound if the namespace has no such run,
        InvalidArgument if the run is closed; nothing is changed then.
        """

    async def update_with_start(
        self, run: NewRun, update_id: str, name: str, args: list[Any], *, use_existing: bool
    ) -> UpdateRecord:
        """Request the update on the open run of ``run.workflow_id``, or start ``run``
        with the request if no open run has the id: one atomic operation. With
        ``use_existing=False`` an open run raises WorkflowAlreadyStarted instead."""

    async def get_update(self, namespace: str, run_id: str, update_id: str) -> UpdateRecord:
        """The request; raises UpdateNotFound if the run has none of that id."""

    async def wait_update(
        self, namespace: str, run_id: str, update_id: str, timeout: float | None
    ) -> UpdateRecord:
        """Return the request once it is done or its run closed (or as it is when
        ``timeout`` passes), woken by the store's notifications, not by polling.
        Raises UpdateNotFound as :meth:`get_update`."""

    async def read_for_task(self, namespace: str, run_id: str, after_seq: int) -> TaskRead:
        """``read_history`` after ``after_seq``, the run's pending update requests and
        its last seq, read together: one snapshot, one round trip where the store can."""

    async def accept_updates(
        self,
        task: WorkflowTask,
        accepted: Sequence[UpdateRecord],
        rejected: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        """A worker's verdict on pending requests, under ``task``'s lease (LeaseLost
        otherwise): append ``UpdateAccepted {name, update_id, args}`` for each of
        ``accepted`` in order, and give each ``(update_id, failure)`` of ``rejected``
        its failure. The run's workflow task stays leased to the caller."""

    # -- workflow tasks ---------------------------------------------------------------

    async def claim_workflow_tasks(
        self,
        owner: str,
        namespaces: Sequence[str],
        queues: Sequence[str],
        limit: int,
        lease: float,
    ) -> list[WorkflowTask]: ...

    async def complete_workflow_task(
        self, task: WorkflowTask, commit: WorkflowCommit, lease: float
    ) -> CommitResult: ...

    async def release_workflow_task(self, task: WorkflowTask, *, delay: float, error: str) -> None:
        """Give a task back, to be retried after ``delay``; ``error`` says why (shown as stuck)."""

    # -- activity tasks ---------------------------------------------------------------

    async def claim_activity_tasks(
        self,
        owner: str,
        namespaces: Sequence[str],
        queues: Sequence[str],
        limit: int,
        lease: float,
    ) -> list[ActivityTask]: ...

    async def heartbeat_activity(self, task: ActivityTask, details: Any, lease: float) -> bool:
        """Extend the lease and keep ``details`` for the next attempt.

        Returns True when the attempt should stop: its run was asked to cancel.
        """

    async def extend_leases(self, tasks: Sequence[ActivityTask], lease: float) -> list[int]:
        """Extend the leases of running attempts; return the ids of those lost."""

    async def retry_activity(
        self, task: ActivityTask, *, retry_at: float, failure: dict[str, Any]
    ) -> None:
        """Release an attempt that failed, to run again as attempt+1 at ``retry_at``."""

    async def finish_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        claim_for: str | None,
        local_queues: Sequence[str],
        lease: float,
    ) -> WorkflowTask | None:
        """Record the final outcome and ask for a workflow task.

        With ``claim_for`` the workflow task is leased to that owner when its queue is
        one of ``local_queues`` and no one else holds it, and returned.
        """

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
        """The local fast path: record an activity's outcome and the run's next step at once.

        The caller holds the run's live state: it applied ``outcome_events(task,
        outcome)`` as events ``expected_seq + 1...`` at time ``ts`` and produced
        ``commit``. Applies only while the run's history still ends at
        ``expected_seq`` and no workflow task is pending for it; otherwise returns
        None and changes nothing, and the caller falls back to ``finish_activity``.
        The outcome and the commit's events are stored with timestamp ``ts``.
        """

    async def release_activity(self, task: ActivityTask) -> None:
        """Give an attempt back unfinished (worker shutdown); it runs again at once."""

    # -- timers and waking up -----------------------------------------------------------

    async def fire_timers(
        self, namespaces: Sequence[str], queues: Sequence[str], limit: int
    ) -> int:
        """Record TimerFired for due timers (each exactly once); return how many."""

    async def next_due(
        self, namespaces: Sequence[str], queues: Sequence[str], *, idle: str | None = None
    ) -> float | None:
        """The earliest time a pending timer or delayed task becomes due, if any.

        ``idle``: the identity of a worker of this process about to wait for work with
        free slots. A store that wakes one waiting worker per piece of work
        (PostgreSQL) counts it among those it may wake, until it wakes it."""

    async def announce_work(self, places: Sequence[tuple[str, str]]) -> None:
        """A worker claimed as many tasks as it could take from these (namespace,
        queue) places: more may be ready there. A store that wakes one waiting worker
        per piece of work wakes one more for each; another has nothing to do."""

    async def wait_for_work(
        self, namespaces: Sequence[str], queues: Sequence[str], timeout: float
    ) -> tuple[str, str] | None:
        """Return when new work may be ready, or after ``timeout`` seconds.

        Work announced after the call began (after the waiting task first ran) must
        wake it: callers start waiting, then look for work, then await the wait.
        Returns the (namespace, queue) of work handed to this process alone, when that
        is what woke it (a store that wakes one idle worker per piece of work): a
        caller that cannot take it must pass it on (:meth:`announce_work`).
        """

    # -- tenancy: namespaces, retention, deletion, limits (tether/tenancy) ---------------

    async def create_namespace(self, namespace: str, settings: dict[str, Any]) -> NamespaceRecord:
        """Create a namespace; raises NamespaceAlreadyExists if it exists."""

    async def get_namespace(self, namespace: str) -> NamespaceRecord:
        """The namespace; raises NamespaceNotFound."""

    def queue_delay(self) -> float:
        """How long an operation waits, lately, before the store starts it (for
        example for a pooled connection), in seconds: how loaded the store is from
        this process. Workers pace their claims by it."""

    async def update_namespace(
        self, namespace: str, settings: dict[str, Any] | SettingsChange
    ) -> NamespaceRecord:
        """Replace a namespace's settings, or apply ``settings(current)`` to them under
        the row's lock, so that concurrent changes of different fields all land (an
        exception from the function changes nothing); raises NamespaceNotFound."""

    async def list_namespace_records(self) -> list[NamespaceRecord]: ...

    async def delete_namespace(self, namespace: str, *, batch: int = DELETE_BATCH) -> None:
        """Remove the namespace and every record of it (runs, histories, payloads, tasks,
        timers, settings, and rows of any table that names the namespace), overwriting
        the freed space where the store can; raises NamespaceNotFound.

        Not one transaction: :meth:`begin_namespace_deletion`, then
        :meth:`delete_namespace_batch` of ``batch`` rows until it is done, so other
        namespaces' work goes on between the batches. If the caller dies midway the
        namespace stays marked (invisible, refusing input, its tasks unclaimed); calling
        this again, or any worker's retention sweeper, finishes the job."""

    async def begin_namespace_deletion(self, namespace: str) -> None:
        """Mark the namespace as being deleted, in one short transaction (again is
        harmless); raises NamespaceNotFound if there is no such namespace.

        From then on it is as if gone for every other operation: ``get_namespace``,
        ``update_namespace`` and ``namespace_stats`` raise NamespaceNotFound, the
        listings omit it, a start, signal, cancel, termination, update or reset in it
        raises NamespaceNotFound, ``create_namespace`` of its name raises
        NamespaceAlreadyExists (saying why), and claims, timers and ``next_due`` skip
        its tasks. A worker holding one of its tasks loses the lease once the task's
        run is removed."""

    async def delete_namespace_batch(self, namespace: str, limit: int) -> bool:
        """Remove at most ``limit`` rows of a namespace being deleted, in one
        transaction: its runs first (nothing more can be written for a removed run),
        then the other rows; a call that finds nothing left removes the namespace
        itself. Returns True once the namespace is gone (also if it was gone already);
        raises InvalidArgument if it exists and is not being deleted. Several callers
        at once each remove different rows."""

    async def deleting_namespaces(self) -> list[str]:
        """The namespaces marked as being deleted whose deletion has not finished."""

    async def delete_run(self, namespace: str, run_id: str) -> None:
        """Remove one run and every record of it, open or closed; raises WorkflowNotFound."""

    async def purge_closed_runs(self, namespace: str, closed_before: float, limit: int) -> int:
        """Remove at most ``limit`` runs closed before ``closed_before``; return how many."""

    async def sweep_fair_flows(self, namespace: str, limit: int) -> int:
        """Remove at most ``limit`` rows of idle fairness flows of the namespace; return
        how many. A fairness key's flow (per task queue, kind and priority) is idle when
        no workflow or activity task of a run with that key is queued, delayed or
        running there; its next task then restarts from the queue's virtual clock, as
        a new key's would (it competes with no one meanwhile, so this is fair). A
        queue's clock goes once no key and no keyed task of it is left."""

    async def namespace_stats(self, namespace: str) -> NamespaceStats:
        """Counts of runs by status and task backlog per queue; raises NamespaceNotFound."""

    async def reserve_start(
        self, namespace: str, task_queue: str, rate: float | None, queue_rate: float | None
    ) -> float:
        """Reserve a start under the namespace's start rate and the queue's (per second);
        return how many seconds the caller must wait before starting."""

    async def claim_workflow_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[WorkflowTask]:
        """Claim up to ``total`` workflow tasks of the namespaces in ``limits``, honouring
        each one's share, cap and rates (see :class:`ClaimLimit`), in the order given."""

    async def claim_activity_tasks_fair(
        self,
        owner: str,
        limits: Sequence[ClaimLimit],
        queues: Sequence[str],
        total: int,
        lease: float,
    ) -> list[ActivityTask]:
        """As :meth:`claim_workflow_tasks_fair`, for activity attempts."""

    # -- LLM usage ledger (see usage.py) -----------------------------------------------

    async def record_usage(self, record: UsageRecord) -> bool:
        """Add one model call to the ledger; False, changing nothing, if a row with its
        key ``(namespace, run_id, step, attempt, call)`` is there already."""

    async def begin_llm_call(self, start: CallStart) -> Admission:
        """Admit a model call under its provider's shared limits and its namespace's
        budget, atomically, and write its ledger row as ``started``; or refuse it,
        saying for how long, changing nothing (see ``llm_limits.py``)."""

    async def finish_llm_call(
        self, record: UsageRecord, *, estimate: int, block_for: float | None = None
    ) -> bool:
        """Complete a started call's ledger row with ``record`` (False, changing nothing,
        if it was finished already), free its slot, correct the tokens bucket by the
        real count against ``estimate``, and block its provider for ``block_for``
        seconds (a 429's Retry-After)."""

    async def llm_limit_states(self, namespace: str | None) -> list[LimitState]:
        """The shared limits' state per (namespace, provider) used so far, of one
        namespace or (``None``) every one."""

    async def usage_report(
        self,
        namespace: str | None,
        *,
        group_by: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> list[UsageRow]:
        """Sums of the ledger over ``[since, until)``, one row per group (see
        ``usage.USAGE_GROUPS``); ``namespace=None`` covers every namespace."""
