"""The worker: claims tasks, drives workflow instances, runs activities, writes results.

One asyncio loop does everything. A poller claims workflow and activity tasks while
there are free slots and sleeps on the store's wake-up otherwise. Two shortcuts keep a
busy run off the poller entirely (the local fast path): activities scheduled on a
queue this worker serves are leased to it in the same commit that schedules them, and
an activity's completion leases the run's next workflow task back to this worker,
whose sticky cache still holds the run, so a step costs no replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from ..codec import Codec
from ..definitions import Registry, WorkflowDefinition
from ..engine import Activation, RunInfo, WorkflowInstance
from ..errors import LeaseLost, StoreUnavailable, TetherError
from ..history import Event, EventType
from ..policy import ActivityOptions
from ..store import (
    ActivityOutcome,
    ActivityTask,
    CommitResult,
    NewActivity,
    NewRun,
    RunClose,
    RunRecord,
    RunStatus,
    Store,
    TaskRead,
    UpdateOutcome,
    UpdateRecord,
    WorkflowCommit,
    WorkflowTask,
    outcome_events,
)
from ..tenancy import RetentionSweeper, Scheduler
from .activities import Attempt, Verdict, run_attempt
from .activity_context import ActivityInfo
from .cache import StickyCache
from .children import continued_run, new_child
from .heartbeats import Heartbeats
from .pacing import Pacer, TurnShare

__all__ = ["Worker"]

log = logging.getLogger("tether.worker")

# Commands whose commit does more than a workflow task's completion: it starts runs.
_LINKED = frozenset({EventType.CHILD_WORKFLOW_STARTED, EventType.WORKFLOW_CONTINUED_AS_NEW})

# How often a busy worker looks at due timers (a full one: a free slot or new work wakes
# it sooner; one claiming without pause: each look is a round trip).
FULL_POLL = 0.05
#: Timers fired per look.
TIMER_BATCH = 500
# Pauses between tries to record an activity's outcome while the store is unreachable.
_RECORD_RETRY_FIRST = 0.05
_RECORD_RETRY_MAX = 1.0
#: The garbage collector's thresholds while a worker runs (see Worker.start).
_GC_YOUNG = 25_000
_GC_MIDDLE = 20
#: Runs started here whose first workflow task runs in one turn of the event loop (see
#: TurnShare): two batches of writes' worth, about 15 ms of CPU. A burst held the loop
#: for all of it (2,000 starts: 250 ms without a socket read, a lease renewal or another
#: run's step). W1 on PostgreSQL, rounds of one process in 12 alternating pairs: 1,106
#: against 1,068 workflows/s (median); a fresh process's one round, 4 pairs: no change.
EAGER_STARTS_A_TURN = 120

_CLOSE_STATUS = {
    EventType.WORKFLOW_COMPLETED: RunStatus.COMPLETED,
    EventType.WORKFLOW_FAILED: RunStatus.FAILED,
    EventType.WORKFLOW_CANCELED: RunStatus.CANCELED,
    EventType.WORKFLOW_CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
}


class _Driving:
    """A run's instance in use by one coroutine; others wait for ``busy[run_id]``. A
    class, not a generator context manager: it is entered at every step of a run."""

    __slots__ = ("_busy", "_run_id")

    def __init__(self, busy: dict[str, asyncio.Future[None]], run_id: str) -> None:
        self._busy, self._run_id = busy, run_id

    def __enter__(self) -> None:
        self._busy[self._run_id] = asyncio.get_running_loop().create_future()

    def __exit__(self, *exc: object) -> None:
        self._busy.pop(self._run_id).set_result(None)


class Worker:
    """Serves some task queues of some namespaces from one store.

    ``pace`` (seconds, ``None`` for off) bounds how late the event loop may run before
    a worker serving several namespaces stops claiming new tasks (see ``pacing.py``).
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        codec: Codec,
        *,
        namespaces: Sequence[str] = ("default",),
        task_queues: Sequence[str] = ("default",),
        identity: str | None = None,
        max_activities: int = 200,
        max_workflow_tasks: int = 200,
        cache_size: int = 10_000,
        workflow_lease: float = 10.0,
        activity_lease: float = 30.0,
        stuck_retry: float = 10.0,
        activity_threads: int = 32,
        fair: bool = True,
        retention_sweep: float | None = 60.0,
        continue_as_new_after: int = 10_000,
        tune_gc: bool = True,
        pace: float | None = 0.002,
    ) -> None:
        self.store = store
        self.registry = registry
        self.codec = codec
        self.namespaces = list(namespaces)
        self.task_queues = list(task_queues)
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_activities = max_activities
        self.max_workflow_tasks = max_workflow_tasks
        self.workflow_lease = workflow_lease
        self.activity_lease = activity_lease
        self.stuck_retry = stuck_retry
        self.continue_as_new_after = continue_as_new_after
        self.cache = StickyCache(cache_size)
        self._threads = ThreadPoolExecutor(activity_threads, thread_name_prefix="tether-activity")
        self._running_activities: dict[int, tuple[ActivityTask, asyncio.Task[Any]]] = {}
        self._workflow_slots = 0
        self._activity_slots = 0
        # Per namespace: the places (workflow tasks and activities in flight) it
        # holds here. With fair scheduling, a namespace holding fewer than another
        # may take one even when the worker is paced or its slots are full
        # (see _owed_a_place).
        self.fair = fair
        self._places_by_ns: Counter[str] = Counter()
        # Places held for the claims out now (whose namespaces are not known yet).
        self._claiming = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        # Runs whose instance a coroutine of this worker is driving right now; the
        # future resolves when it is done, so a workflow task can wait its turn.
        self._busy: dict[str, asyncio.Future[None]] = {}
        # The first event of runs started here and taken at once (see take).
        self._first_events: dict[str, list[Event]] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        # Tenancy: fair claims across namespaces, their limits, and retention.
        self.scheduler = Scheduler(
            store, self.namespaces, self.task_queues, self.identity, fair=fair
        )
        self.sweeper = (
            RetentionSweeper(self.scheduler, interval=retention_sweep) if retention_sweep else None
        )
        self._sweeping: asyncio.Task[None] | None = None
        self.tune_gc = tune_gc
        self._gc_before: tuple[int, int, int] | None = None
        # Claims wait while the event loop lags more than ``pace`` seconds, when the
        # loop is shared between tenants (see pacing.py).
        self.pacer = (
            Pacer(
                lambda: self._workflow_slots + self._activity_slots,
                target=pace,
                queue_delay=store.queue_delay,
            )
            if pace and len(self.namespaces) > 1
            else None
        )
        self._pacing: asyncio.Task[None] | None = None
        self._eager_turns = TurnShare(EAGER_STARTS_A_TURN)
        self.eager_starts = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving in the background of the running loop.

        Unless ``tune_gc=False``, the worker raises the garbage collector's thresholds
        while it runs: the first generation's from 700 allocations (the default) to
        25,000, and the second's from 10 first-generation collections to 20. Each step
        allocates many short-lived objects, and a busy worker also holds many live
        ones (its runs' cached state, their futures and pending writes): collected
        every 700 allocations, the young ones cost a fifth of its time; at 10,000
        they still did (W1 on PostgreSQL: 19-21% of the wall time in collections, a
        third of it in one full collection of everything the promotions had piled
        up); at these settings 4-7%. The setting is process-wide and is put back by
        :meth:`stop`.
        """
        if self._main is None:
            # The namespaces' caps and rates before the first task, eager ones included.
            await self.scheduler.refresh(force=True)
            if self.tune_gc and self._gc_before is None:
                self._gc_before = gc.get_threshold()
                gen0, gen1, gen2 = self._gc_before
                gc.set_threshold(max(gen0, _GC_YOUNG), max(gen1, _GC_MIDDLE), gen2)
            self._stopping = False
            self._main = asyncio.create_task(self._poll(), name="tether-worker-poll")
            self._renewer = asyncio.create_task(self._renew_leases(), name="tether-worker-lease")
            if self.sweeper is not None:
                self._sweeping = asyncio.create_task(self.sweeper.run(), name="tether-retention")
            if self.pacer is not None:
                self._pacing = asyncio.create_task(self.pacer.run(), name="tether-pacing")

    async def run(self) -> None:
        """Serve until :meth:`stop` is called or the task is cancelled."""
        await self.start()
        assert self._main is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._main

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let in-flight work finish for ``grace`` seconds, then give
        back what is still running so another worker takes it at once."""
        self._stopping = True
        self._slot_freed.set()
        for loop_task in (self._main, self._renewer, self._sweeping, self._pacing):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        self._main = self._renewer = self._sweeping = self._pacing = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        unfinished = list(self._running_activities.values())
        for _, runner in unfinished:
            runner.cancel()
        for task, _ in unfinished:
            with contextlib.suppress(TetherError):
                await self.store.release_activity(task)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        self.cache.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)
            self._gc_before = None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- polling ------------------------------------------------------------------------

    async def _poll(self) -> None:
        store, ns, queues = self.store, self.namespaces, self.task_queues
        timers_due = 0.0
        while not self._stopping:
            # Start listening before looking, so work announced while we look is not
            # missed (the store wakes waiters registered before the announcement).
            # Only with a free slot: a store that wakes one idle worker per piece of
            # work passes it on when no worker of its process listens for it.
            self._slot_freed.clear()
            wake = (
                asyncio.ensure_future(store.wait_for_work(ns, queues, 5.0))
                if self._wanted() > 0
                else None
            )
            try:
                await asyncio.sleep(0)  # let the waiter register
                if time.time() >= timers_due:
                    fired = await store.fire_timers(ns, queues, TIMER_BATCH)
                    # While claims keep this loop turning, due timers are looked for at
                    # most every FULL_POLL (a look is a round trip), unless a full batch
                    # fired: then more are due now.
                    timers_due = time.time() + (0.0 if fired >= TIMER_BATCH else FULL_POLL)
                wanted = self._wanted()
                claimed = await self._claim()
                if self._stopping or (claimed and claimed >= wanted):
                    await self._pass_on(wake)
                    continue  # every free slot got work: more may be waiting
                if wanted > 0:
                    if wake is None:
                        continue  # a slot freed since the top: listen, then look again
                    # Fewer tasks than free slots: the queues are drained, so wait for
                    # news (registered above) instead of asking again at once; the look
                    # says this worker waits idle (the next work may be handed to it).
                    due = await store.next_due(ns, queues, idle=self.identity)
                    timers_due = due if due is not None else float("inf")
                    wait = min(max(timers_due - time.time(), 0.0), 5.0)
                else:
                    # Full: ready work waits for a free slot, so whatever is due now
                    # must not make this loop spin; timers still fire at a bounded pace.
                    wait = min(max(timers_due - time.time(), FULL_POLL), 5.0)
                if wait > 0:
                    # A freed slot matters only if none was free when we looked.
                    waits: set[asyncio.Future[Any]] = set() if wake is None else {wake}
                    if wanted <= 0:
                        waits.add(asyncio.ensure_future(self._slot_freed.wait()))
                    try:
                        await asyncio.wait(waits, timeout=wait, return_when="FIRST_COMPLETED")
                    finally:
                        for waiting in waits - {wake}:
                            waiting.cancel()
                    await self._pass_on(wake)
            except StoreUnavailable as exc:
                log.warning("store unavailable, retrying: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:
                # Whatever went wrong, the worker must go on claiming: log and back off.
                log.exception("worker poll failed; retrying")
                await asyncio.sleep(1.0)
            finally:
                if wake is not None:
                    wake.cancel()

    async def _pass_on(self, wake: asyncio.Future[tuple[str, str] | None] | None) -> None:
        """Work handed to this process alone (``wake``'s result) that this worker may
        not be able to take (a kind of slot full: the work may be of that kind) goes
        on to another idle worker, instead of waiting for a look of theirs."""
        if wake is None or not wake.done() or wake.cancelled() or wake.exception() is not None:
            return
        handed = wake.result()
        full = (
            self._workflow_slots >= self.max_workflow_tasks
            or self._activity_slots >= self.max_activities
            or self._room() < 1
        )
        if handed is not None and full:
            await self._announce([handed])

    def _wanted(self) -> float:
        """How many tasks this worker could take now (its free slots, paced)."""
        return min(
            (self.max_workflow_tasks - self._workflow_slots)
            + (self.max_activities - self._activity_slots),
            self._room(),
        )

    # -- eager starts -------------------------------------------------------------------

    def offer(
        self, namespace: str, task_queue: str, workflow_type: str, *, ranked: bool = False
    ) -> bool:
        """Can this worker run a run started in its process at once? Then it holds a
        place for it (many starts may be offered before one is stored), and
        :meth:`start_here` must follow. Not when the namespace's caps must count the
        task in a claim.

        A worker serving one namespace takes every start offered, full or not: the
        first task runs in the starter's own turn and holds its place only while the
        start is written, and the run's activities are still leased here only as far
        as the activity slots allow (the others go to the queue, for any worker). A
        burst of starts that went to the queue instead would cost each run a claim
        and a second write (W1 on PostgreSQL: 11% more workflows per second this
        way, 4 interleaved pairs). A worker serving several namespaces keeps to its
        slots and its pace, so that one tenant's burst of starts does not take the
        loop from another tenant's next steps; so does a ``ranked`` run (one with a
        priority or fairness key), so that a burst of them does not run ahead of the
        fair queue's order past the slots."""
        if (
            self._main is None
            or self._stopping
            or namespace not in self.namespaces
            or task_queue not in self.task_queues
            or workflow_type not in self.registry.workflows
            or not self.scheduler.local_workflow_tasks(namespace)
        ):
            return False
        full = (len(self.namespaces) > 1 or ranked) and (
            self._workflow_slots >= self.max_workflow_tasks or self._room() < 1
        )
        if full and not self._owed_a_place(namespace):
            return False
        self._take_workflow_place(namespace)
        return True

    def _owed_a_place(self, namespace: str) -> bool:
        """Whether the namespace may take a place over the pacer's budget or the
        slots: with fair scheduling, while another namespace holds as many places
        here as it does or more, and it holds less than its share (the slots over the
        namespaces served). Under another tenant's flood, a tenant's next step then
        does not wait for the flood's places to free (the fair scheduler would give
        it the next one anyway, a claim later). The overrun stays bounded: each
        namespace by its share."""
        if not self.fair:
            return False
        held = self._places_by_ns
        mine = held[namespace]
        share = max(1, (self.max_workflow_tasks + self.max_activities) // len(self.namespaces))
        # Places held for a claim out now count as another tenant's: between a flood's
        # claims they are all the flood holds, and they fill the budget.
        others = [n for ns, n in held.items() if ns != namespace]
        others.append(self._claiming)
        return mine < share and any(n > 0 and n >= mine for n in others)

    def _take_workflow_place(self, namespace: str) -> None:
        self._workflow_slots += 1
        self._places_by_ns[namespace] += 1

    def _free_workflow_place(self, namespace: str) -> None:
        self._workflow_slots -= 1
        self._release_place(namespace)
        self._slot_freed.set()

    async def start_here(self, run: NewRun) -> RunRecord:
        """Start ``run`` (offered) with its first workflow task run here, before the
        start is stored: the start and that task's outcome are one write (eager
        execution), and no worker claims the task or reads the history back. Should
        the first activation not produce a plain commit, the task is leased here in
        the start's write instead and runs as usual. Of a burst of starts, a share runs
        in each turn of the event loop (``EAGER_STARTS_A_TURN``); the rest wait for
        later turns, and one whose turn comes after this worker began to stop is stored
        as any other start, for any worker."""
        running = False
        try:
            await self._eager_turns.take()
            if self._stopping:
                return await self.store.start_run(run)
            self.eager_starts += 1
            created_at = time.time()
            # As a store gives it back: JSON types only (tuples become lists).
            attrs = orjson.loads(orjson.dumps(run.started))
            started = Event(1, EventType.WORKFLOW_STARTED, created_at, attrs)
            instance, commit = self._first_activation(run, started)
            if commit is None:
                record, task = await self.store.start_run_leased(
                    run, self.identity, self.workflow_lease
                )
                self._first_events[run.run_id] = [
                    dataclasses.replace(started, ts=record.created_at)
                ]
                self._spawn(self._workflow_chain(task, run.namespace))
                running = True
                return record
            try:
                record, result = await self.store.start_run_executed(
                    run, created_at, self.identity, self.workflow_lease, commit
                )
            except BaseException:
                self._unreserve(commit, 0)
                raise
            self.cache.put(run.run_id, instance)
            self._committed(instance, commit, result)
            if result.next_task is not None:
                self._spawn(self._workflow_chain(result.next_task, run.namespace))
                running = True
            return record
        finally:
            if not running:
                self._free_workflow_place(run.namespace)

    def _release_place(self, namespace: str) -> None:
        """One place fewer held by the namespace (none held: no entry)."""
        self._places_by_ns[namespace] -= 1
        if self._places_by_ns[namespace] <= 0:
            del self._places_by_ns[namespace]

    def _first_activation(
        self, run: NewRun, started: Event
    ) -> tuple[WorkflowInstance, WorkflowCommit | None]:
        """The run's instance after its first activation, and that task's commit; None
        when the commit must go the usual way (it starts runs, or the activation
        failed: the worker's chain then deals with it as with any task)."""
        definition = self.registry.workflows[run.workflow_type]
        info = RunInfo(run.namespace, run.workflow_id, run.run_id, run.workflow_type,
                       run.task_queue)  # fmt: skip
        instance = WorkflowInstance(definition, info, self.codec)
        instance.history_limit = self.continue_as_new_after
        try:
            activation = instance.activate([started])
        except Exception:
            log.exception("first activation of %s failed; running it as a task", run.workflow_id)
            return instance, None
        if activation.nondeterminism is not None or any(
            c.type in _LINKED for c in activation.commands
        ):
            return instance, None
        return instance, self._commit_for(activation, run.namespace)

    def _room(self) -> float:
        return math.inf if self.pacer is None else self.pacer.room()

    async def _claim(self) -> int:
        """Claim what free slots allow; return how many tasks were claimed."""
        claimed = 0
        # The places are held while a claim is out: commits finishing meanwhile lease
        # activities to this worker too, and together they must stay within the caps.
        free = int(min(self.max_workflow_tasks - self._workflow_slots, self._room()))
        if free > 0:
            self._workflow_slots += free
            self._claiming += free
            try:
                wtasks = await self.scheduler.claim_workflow_tasks(free, self.workflow_lease)
            finally:
                self._workflow_slots -= free
                self._claiming -= free
            for wtask in wtasks:
                claimed += 1
                self._take_workflow_place(wtask.namespace)
                self._spawn(self._workflow_chain(wtask, wtask.namespace))
            if wtasks and len(wtasks) >= free:
                await self._announce({(t.namespace, t.task_queue) for t in wtasks})
        free = int(min(self.max_activities - self._activity_slots, self._room()))
        if free > 0:
            self._activity_slots += free
            self._claiming += free
            try:
                atasks = await self.scheduler.claim_activity_tasks(free, self.activity_lease)
            finally:
                self._activity_slots -= free
                self._claiming -= free
            for atask in atasks:
                claimed += 1
                self._start_activity(atask)
            if atasks and len(atasks) >= free:
                await self._announce({(t.namespace, t.task_queue) for t in atasks})
        return claimed

    async def _announce(self, places: Iterable[tuple[str, str]]) -> None:
        """Work may wait on these (namespace, queue) places that this worker will not
        take now (a claim took as many tasks as asked, or work was handed to it with
        a kind of slot full): another idle worker is told, so a burst spreads."""
        if not self._stopping:
            await self.store.announce_work(sorted(places))

    # -- workflow tasks -----------------------------------------------------------------

    async def _workflow_chain(self, task: WorkflowTask | None, namespace: str) -> None:
        """Advance a run for as long as the store hands its next task straight back;
        then free the workflow place it holds (taken for ``namespace``)."""
        run_id = None if task is None else task.run_id
        try:
            while task is not None and not self._stopping:
                task = await self._advance(task)
        except Exception:
            log.exception("workflow task failed unexpectedly")
        finally:
            if run_id is not None:
                self._first_events.pop(run_id, None)
            self._free_workflow_place(namespace)

    async def _advance(self, task: WorkflowTask) -> WorkflowTask | None:
        while (driving := self._busy.get(task.run_id)) is not None:
            await asyncio.shield(driving)
        with self._driving(task.run_id):
            return await self._advance_busy(task)

    def _driving(self, run_id: str) -> _Driving:
        """Mark a run's instance as in use by the current coroutine."""
        return _Driving(self._busy, run_id)

    async def _advance_busy(self, task: WorkflowTask) -> WorkflowTask | None:
        definition = self.registry.workflows.get(task.workflow_type)
        if definition is None:
            await self._give_back(
                task, f"no worker here knows workflow type {task.workflow_type!r}"
            )
            return None
        try:
            instance, events, pending = await self._instance_for(task, definition)
            activation = instance.activate(events)
            if pending and activation.nondeterminism is None and not instance.closed:
                activation = await self._take_updates(task, instance, activation, pending)
        except (LeaseLost, StoreUnavailable):
            self.cache.evict(task.run_id)
            return None
        if activation.nondeterminism is not None:
            self.cache.evict(task.run_id)
            log.error("%s", activation.nondeterminism)
            await self._give_back(task, str(activation.nondeterminism))
            return None
        self.cache.put(task.run_id, instance)
        commit = self._commit_for(activation, task.namespace)
        try:
            result = await self.store.complete_workflow_task(task, commit, self.workflow_lease)
        except (LeaseLost, StoreUnavailable) as exc:
            log.info("workflow task of %s not committed: %s", task.workflow_id, exc)
            self.cache.evict(task.run_id)
            self._unreserve(commit, 0)
            return None
        self._committed(instance, commit, result)
        return result.next_task

    async def _instance_for(
        self, task: WorkflowTask, definition: WorkflowDefinition
    ) -> tuple[WorkflowInstance, list[Event], list[UpdateRecord]]:
        """The run's instance and the input it has not seen: the cached one and what
        the store holds past it, or a new one and the whole history."""
        instance = self.cache.get(task.run_id)
        # What the claim read of the run, if the store sent it: the whole history as of
        # the claim (later events come with the next task, as they do after any read).
        claimed = task.read
        if instance is not None:
            if claimed is not None and claimed.last_seq >= instance.last_seq:
                after = [e for e in claimed.events if e.seq > instance.last_seq]
                read = TaskRead(after, claimed.pending, claimed.last_seq)
            else:
                read = await self.store.read_for_task(
                    task.namespace, task.run_id, instance.last_seq
                )
            if not self._stale(task, instance, read):
                return instance, read.events, read.pending
            self.cache.evict(task.run_id)
        info = RunInfo(
            task.namespace, task.workflow_id, task.run_id, task.workflow_type, task.task_queue
        )
        instance = WorkflowInstance(definition, info, self.codec)
        instance.history_limit = self.continue_as_new_after
        first = self._first_events.pop(task.run_id, None)
        if first is not None:
            # Updates sent since the start mark the task dirty: the next one reads them.
            return instance, first, []
        read = claimed or await self.store.read_for_task(task.namespace, task.run_id, 0)
        return instance, read.events, read.pending

    def _stale(self, task: WorkflowTask, instance: WorkflowInstance, read: TaskRead) -> bool:
        """Must the cached ``instance`` go? When another worker advanced the run, or
        when the store holds less history than the instance has seen: the store lost
        commits it acknowledged, and the instance would wait for events past its own
        while the run stalls. Replayed from the store instead, the run goes on; steps
        recorded only in the lost commits run again."""
        if read.last_seq < instance.last_seq:
            log.warning(
                "run %s (workflow %s): the store's history ends at event %d, but this worker"
                " had seen it up to event %d: the store lost commits it acknowledged (or the"
                " run was rewound); replaying the run from the store's history",
                task.run_id,
                task.workflow_id,
                read.last_seq,
                instance.last_seq,
            )
            return True
        return instance.foreign(read.events)

    async def _take_updates(
        self,
        task: WorkflowTask,
        instance: WorkflowInstance,
        activation: Activation,
        pending: list[UpdateRecord],
    ) -> Activation:
        """Validate pending update requests on the live state, in arrival order; record
        the verdicts, then apply the accepted ones (their handlers start) and return
        the commands of both activations."""
        accepted: list[UpdateRecord] = []
        rejected: list[tuple[str, dict[str, Any]]] = []
        for request in pending:
            failure = instance.updates.validate(request.name, request.args)
            if failure is None:
                accepted.append(request)
            else:
                rejected.append((request.update_id, failure))
        await self.store.accept_updates(task, accepted, rejected)
        if not accepted:
            return activation
        events = await self.store.read_history(task.namespace, task.run_id, instance.last_seq)
        more = instance.activate(events)
        return Activation(activation.commands + more.commands, more.nondeterminism)

    def _committed(
        self, instance: WorkflowInstance, commit: WorkflowCommit, result: CommitResult
    ) -> None:
        """Bookkeeping after a commit: cache, reserved slots, local activities."""
        if commit.close is not None:
            self.cache.evict(instance.info.run_id)
        else:
            instance.mark_synced(result.last_seq if result.next_task is None else None)
        self._unreserve(commit, len(result.activities))
        for atask in result.activities:
            self._start_activity(atask, reserved=True)

    def _unreserve(self, commit: WorkflowCommit, used: int) -> None:
        if commit.claim_activities_for is not None:
            local = sum(1 for act in commit.activities if act.task_queue in commit.local_queues)
            self._activity_slots -= local - used

    def _commit_for(self, activation: Activation, namespace: str) -> WorkflowCommit:
        commit = WorkflowCommit(events=[])
        for command in activation.commands:
            a = command.attrs
            commit.events.append((command.type, a))
            match command.type:
                case EventType.ACTIVITY_SCHEDULED:
                    queue = a["options"]["task_queue"]
                    commit.activities.append(
                        NewActivity(a["step"], a["name"], queue, a["args"], a["options"])
                    )
                case EventType.TIMER_STARTED:
                    commit.timers.append((a["step"], a["fire_at"]))
                case EventType.TIMER_CANCELED:
                    commit.cancel_timers.append(a["step"])
                case EventType.CHILD_WORKFLOW_STARTED:
                    commit.children.append(new_child(namespace, a))
                case EventType.UPDATE_COMPLETED:
                    commit.updates.append(
                        UpdateOutcome(a["update_id"], a.get("result"), a.get("failure"))
                    )
                case _ if command.type in _CLOSE_STATUS:
                    commit.close = RunClose(
                        _CLOSE_STATUS[command.type], a.get("result"), a.get("failure")
                    )
                    if command.type == EventType.WORKFLOW_CONTINUED_AS_NEW:
                        commit.continue_as_new = continued_run(namespace, a)
        local = sum(1 for act in commit.activities if act.task_queue in self.task_queues)
        if not self.scheduler.local_activities(namespace):
            local = 0  # a cap or rate of the namespace must count them in a claim
        room = self._activity_slots + local <= self.max_activities
        room = room or self._owed_a_place(namespace)
        if local and room and not self._stopping:
            # Reserve the slots now; any the store does not lease to us are handed back.
            self._activity_slots += local
            commit.claim_activities_for = self.identity
            commit.local_queues = self.task_queues
        return commit

    async def _give_back(self, task: WorkflowTask, error: str) -> None:
        with contextlib.suppress(LeaseLost, StoreUnavailable):
            await self.store.release_workflow_task(task, delay=self.stuck_retry, error=error)

    # -- activities ---------------------------------------------------------------------

    def _start_activity(self, task: ActivityTask, *, reserved: bool = False) -> None:
        if not reserved:
            self._activity_slots += 1
        self._places_by_ns[task.namespace] += 1
        runner = asyncio.create_task(self._activity(task))
        self._tasks.add(runner)
        runner.add_done_callback(self._tasks.discard)
        self._running_activities[task.task_id] = (task, runner)

    async def _activity(self, task: ActivityTask) -> None:
        follow_up: WorkflowTask | None = None
        holding = True
        try:
            options = ActivityOptions.from_dict(task.options)
            info = ActivityInfo(
                namespace=task.namespace,
                workflow_id=task.workflow_id,
                run_id=task.run_id,
                step=task.step,
                name=task.name,
                attempt=task.attempt,
                idempotency_key=f"{task.namespace}/{task.run_id}/{task.step}",
                heartbeat_details=task.heartbeat_details,
            )
            attempt = Attempt(
                task, options, info, namespace=self.scheduler.policies(task.namespace)
            )
            beats = Heartbeats(self.store, task, options.heartbeat or self.activity_lease)
            beats.on_lost = lambda: self._cancel_activity(task.task_id)
            beats.on_cancel = lambda: self._stop_activity(attempt)
            verdict = await run_attempt(
                attempt,
                self.registry.activities.get(task.name),
                self.codec,
                self._threads,
                beats.push,
            )
            await beats.flush()
            # The attempt's code is done: its slot is free from here, first for the next
            # activity of its own run (an advance's commit reserves in the same turn),
            # which then does not queue behind every task waiting to be claimed.
            self._activity_slots -= 1
            holding = False
            # Nor is it renewed or stopped from here: the write of its outcome deletes
            # its task, and a renewal that then finds the task gone would cancel that
            # write's caller after it landed, and with it the start of the run's next
            # step, leased to this worker by the same write. A lease that really was
            # lost shows as the store refusing the outcome.
            self._running_activities.pop(task.task_id, None)
            follow_up = await self._record(task, verdict, options.heartbeat)
        except (LeaseLost, StoreUnavailable) as exc:
            log.info("activity %s step %s not recorded: %s", task.name, task.step, exc)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("activity %s step %s: unexpected worker error", task.name, task.step)
        finally:
            self._running_activities.pop(task.task_id, None)
            self._release_place(task.namespace)
            if holding:
                self._activity_slots -= 1
            self._slot_freed.set()
        if follow_up is not None:
            self._take_workflow_place(follow_up.namespace)
            await self._workflow_chain(follow_up, follow_up.namespace)

    async def _record(
        self, task: ActivityTask, verdict: Verdict, heartbeat: float | None
    ) -> WorkflowTask | None:
        """Write the attempt's outcome. While the store is unreachable (a database
        restart, a failover), try again for as long as the attempt's lease can still
        hold: a finished step is then not run a second time. Past that the store would
        refuse the write anyway (the lease is fenced) and the step runs again elsewhere."""
        give_up = time.monotonic() + (heartbeat or self.activity_lease)
        pause = _RECORD_RETRY_FIRST
        # Tried locally once: after a failed write (which may have landed) the store
        # decides, through the plain report.
        local = verdict.outcome
        while True:
            try:
                if local is not None:
                    outcome, local = local, None
                    if await self._advance_locally(task, outcome):
                        return None
                return await self._report(task, verdict)
            except StoreUnavailable as exc:
                if self._stopping or time.monotonic() + pause > give_up:
                    raise
                log.info(
                    "activity %s step %s: store unreachable (%s); retrying",
                    task.name,
                    task.step,
                    exc,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RECORD_RETRY_MAX)

    async def _advance_locally(self, task: ActivityTask, outcome: ActivityOutcome) -> bool:
        """Record the outcome and the run's next step in one write, if this worker holds
        the run's live state; False if the caller must record the outcome itself."""
        instance = self.cache.get(task.run_id)
        if (
            instance is None
            or instance.synced_seq is None
            or task.run_id in self._busy
            or self._stopping
            or not self.scheduler.local_workflow_tasks(task.namespace)
        ):
            return False
        with self._driving(task.run_id):
            expected, ts = instance.synced_seq, time.time()
            inputs = [
                Event(expected + i + 1, etype, ts, attrs)
                for i, (etype, attrs) in enumerate(outcome_events(task, outcome))
            ]
            activation = instance.activate(inputs)
            if activation.nondeterminism is not None:
                self.cache.evict(task.run_id)
                return False
            commit = self._commit_for(activation, task.namespace)
            try:
                result = await self.store.advance_after_activity(
                    task,
                    outcome,
                    expected_seq=expected,
                    ts=ts,
                    commit=commit,
                    lease=self.activity_lease,
                )
            except (LeaseLost, StoreUnavailable, asyncio.CancelledError):
                # Refused, or landed or not: the run replays from the store, and the
                # slots reserved for its next activities go back.
                self.cache.evict(task.run_id)
                self._unreserve(commit, 0)
                raise
            if result is None:  # the run moved on elsewhere: replay it from the store
                self.cache.evict(task.run_id)
                self._unreserve(commit, 0)
                return False
            self._committed(instance, commit, result)
            return True

    async def _report(self, task: ActivityTask, verdict: Verdict) -> WorkflowTask | None:
        if verdict.outcome is None:
            assert verdict.failure is not None
            await self.store.retry_activity(
                task, retry_at=verdict.retry_at, failure=verdict.failure
            )
            return None
        claim = not self._stopping and self._workflow_slots < self.max_workflow_tasks
        claim = claim and self.scheduler.local_workflow_tasks(task.namespace)
        return await self.store.finish_activity(
            task,
            verdict.outcome,
            claim_for=self.identity if claim else None,
            local_queues=self.task_queues,
            lease=self.workflow_lease,
        )

    def _stop_activity(self, attempt: Attempt) -> None:
        """The attempt's run was asked to cancel: stop its code; it fails for good."""
        if attempt.running and not attempt.stopping:
            attempt.stopping = True
            self._cancel_activity(attempt.task.task_id)

    def _cancel_activity(self, task_id: int) -> None:
        entry = self._running_activities.get(task_id)
        if entry is not None:
            entry[1].cancel()

    async def _renew_leases(self) -> None:
        """Keep the leases of long attempts alive; an attempt whose lease was lost stops."""
        while True:
            await asyncio.sleep(self.activity_lease / 3)
            running = [
                task
                for task, _ in self._running_activities.values()
                if not task.options.get("heartbeat")
            ]
            if not running:
                continue
            try:
                lost = await self.store.extend_leases(running, self.activity_lease)
            except Exception as exc:  # a failed renewal is retried at the next round
                log.warning("lease renewal failed: %s", exc)
                continue
            for task_id in lost:
                entry = self._running_activities.get(task_id)
                if entry is not None:
                    entry[1].cancel()
