"""One workflow run, rebuilt from history and driven forward by new events.

``activate(events)`` is the whole interface: it takes events (a full history after a
restart, or only the new ones while the run stays cached), applies the input events
one at a time, runs the code until it has nothing left to do after each, and returns
the commands the code issued that history does not hold yet. Commands are numbered
``step`` 1, 2, 3... in the order the code issues them; a command whose step already
has an event in history is a replay and must match it, or the activation stops with a
:class:`NonDeterminismError` naming the step and the event.

Applying inputs one at a time and running to quiescence after each makes the result
independent of how events were batched into activations, which is what lets a
cached run and a replayed run behave the same. For the same reason signals are
buffered (in arrival order, per name) as their events are applied, not when the code
happens to ask for them, and a cancellation request cancels the code's main task as
its event is applied.

Child runs are commands like activities (``ChildWorkflowStarted {step}``, the store
creates the run with the commit) and their outcomes input events like an activity's.
Continuing as new is a closing command: the code raises :class:`ContinueAsNewRequested`
and the run closes with ``WorkflowContinuedAsNew {args, signals}``, ``signals`` being
those buffered and never taken, which the new run receives first.

Search attribute upserts are commands too (``SearchAttributesUpserted {step}``, applied
to the store's index with the commit); the run's current attributes are rebuilt from
``WorkflowStarted`` and the code's upserts, and continue-as-new passes them on.

Queries are answered by :meth:`WorkflowInstance.query` on an instance rebuilt from
history; a query handler runs outside the loop and may not issue commands. Updates
(``updates.py``) are validated the same way, read-only, and once accepted run their
handler as a task of the loop, ending in an ``UpdateCompleted`` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..codec import Codec, check_text
from ..definitions import WorkflowDefinition
from ..errors import (
    CancelledFailure,
    InvalidArgument,
    NonDeterminismError,
    failure_from_dict,
    failure_to_dict,
)
from ..history import Event, EventType
from ..search_attributes import Encoded, check_type_change, merge
from .loop import DeterministicLoop, DurableTimerHandle

__all__ = [
    "Activation",
    "Command",
    "ContinueAsNewRequested",
    "RunInfo",
    "Signal",
    "WorkflowInstance",
]

log = logging.getLogger("tether.workflow")

_CLOSE = "close"


@dataclass(frozen=True, slots=True)
class RunInfo:
    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str


@dataclass(slots=True)
class Command:
    """A request of the workflow code; it becomes one command event in history."""

    type: EventType
    attrs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal as the code receives it; ``seq`` is its event's place in history."""

    name: str
    payload: Any
    seq: int


class ContinueAsNewRequested(BaseException):
    """Raised by ``ctx.continue_as_new``: ends the run, to go on as a new run of the same
    workflow id with ``args``. A BaseException, so ``except Exception`` lets it pass."""

    def __init__(self, args: list[Any]) -> None:
        super().__init__("continue as new")
        self.args_ = args


@dataclass(slots=True)
class Activation:
    commands: list[Command] = field(default_factory=list)
    nondeterminism: NonDeterminismError | None = None

    @property
    def closes(self) -> bool:
        return any(c.type in _CLOSING for c in self.commands)


_CLOSING = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_CANCELED,
        EventType.WORKFLOW_CONTINUED_AS_NEW,
    }
)


#: The name of the markers ``patched`` records (``side_effect`` markers carry the user's).
PATCH_MARKER = "tether.patch"


def _key(event_type: str, attrs: dict[str, Any]) -> Any:
    if event_type in _CLOSING:
        return _CLOSE
    if event_type == EventType.TIMER_CANCELED:
        return ("cancel", attrs["step"])
    return attrs["step"]


class WorkflowInstance:
    """The live state of one run: its code's tasks, pending steps and matched history."""

    def __init__(self, definition: WorkflowDefinition, info: RunInfo, codec: Codec) -> None:
        from .context import Context  # Context and Updates reach back into the instance
        from .updates import Updates

        self.definition = definition
        self.info = info
        self.codec = codec
        self.loop = DeterministicLoop(self)  # type: ignore[abstract]
        self.context = Context(self)
        self._random: random.Random | None = None
        self._seed = 0
        # The namespace's limits as they were when the run started (see ``limits`` in
        # WorkflowStarted): checks against them replay the same whatever changes later.
        self.limits: dict[str, Any] = {}
        # Its priority and fairness key, which its children and next run keep.
        self.fairness: dict[str, Any] | None = None
        self.replaying = False
        self.closed = False
        self.last_seq = 0
        # The seq of the run's newest stored event while this instance is known to
        # have seen every input up to it (kept by the worker); None when it may lag.
        self.synced_seq: int | None = None
        self._step = 0
        self._recorded: dict[Any, Event] = {}
        self._matched: set[Any] = set()
        # ctx.patched answers, by patch id: the first answer holds for the whole run.
        self._patches: dict[str, bool] = {}
        self._replay_until = 0
        self._new: list[Command] = []
        self._activities: dict[int, tuple[asyncio.Future[Any], Any]] = {}
        self._timers: dict[int, DurableTimerHandle] = {}
        self._main: asyncio.Task[Any] | None = None
        self._nd: NonDeterminismError | None = None
        self._seq_now = 0
        # Signals not consumed yet, per name, as (seq, payload); and the code's pending
        # waits, oldest first, each for a set of names.
        self._signals: dict[str, deque[tuple[int, Any]]] = {}
        self._signal_waits: list[tuple[tuple[str, ...], asyncio.Future[Signal]]] = []
        self._queries: dict[str, Callable[..., Any]] = {}
        self._querying: str | None = None
        # Silence the workflow's logger for every event (a query's private replay).
        self.quiet = False
        self.cancel_requested = False
        self._cancel_reason = ""
        # Child runs started and not closed yet, by step; and the history length past
        # which ctx.should_continue_as_new turns True (the worker sets it).
        self._children: dict[int, tuple[asyncio.Future[Any], Any]] = {}
        self.history_limit = 10_000
        self.updates = Updates(self)
        # For a run made by a reset (or a reset of one): per WorkflowReset event, (the
        # last copied command's seq, its own seq, its time). Inputs between the two are
        # consumed anew by the reset run's code, so they read the reset's time, not the
        # time the old run recorded them at.
        self._reset_clock: dict[int, tuple[int, int, float]] = {}
        self._last_command = 0
        # The run's search attributes (encoded): those it started with, then each
        # upsert as the code issues it, so replay rebuilds them from code and history.
        self.search_attributes: dict[str, Encoded] = {}

    # -- activation ---------------------------------------------------------------

    def activate(self, events: list[Event]) -> Activation:
        for event in events:
            if event.is_command:
                key = _key(event.type, event.attrs)
                if key not in self._matched:
                    self._recorded[key] = event
                self._replay_until = max(self._replay_until, event.attrs.get("wt", 0))
                self._last_command = max(self._last_command, event.seq)
            elif event.type == EventType.WORKFLOW_RESET and event.seq > self.last_seq:
                self._reset_clock[event.seq] = (self._last_command, event.seq, event.ts)
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            if event.is_command or self.closed or self._nd:
                continue
            self._seq_now = event.seq
            self.replaying = self.quiet or event.seq <= self._replay_until
            self.loop.set_time(self._clock(event))
            self._apply(event)
            self.loop.run_until_idle()
        self.replaying = False
        # What is left in _recorded the code has not issued: a recorded command is kept
        # only while its key is unmatched, and matching one takes it out.
        if self._nd is None and self._recorded:
            first = min(self._recorded.values(), key=lambda e: e.seq)
            self._nd = NonDeterminismError(
                f"history has {first.type} for step {first.attrs.get('step', '-')}"
                f" (event {first.seq}) but the code no longer issues it",
                workflow_id=self.info.workflow_id,
                run_id=self.info.run_id,
            )
        new, self._new = self._new, []
        return Activation(new, self._nd)

    def _clock(self, event: Event) -> float:
        """The workflow's time while ``event`` is applied: the event's own time, except
        for the inputs a reset run's code consumes anew (see ``_reset_clock``); the
        latest reset wins, as its run consumed them last."""
        now = event.ts
        for after, before, ts in self._reset_clock.values():
            if after < event.seq < before:
                now = max(event.ts, ts)
        return now

    @property
    def random(self) -> random.Random:
        """The run's generator, seeded from its history (created on first use)."""
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random

    def mark_synced(self, seq: int | None) -> None:
        """Record that the store's history ends at ``seq`` with no input unseen here."""
        self.synced_seq = seq
        if seq is not None:
            self.last_seq = max(self.last_seq, seq)

    def foreign(self, events: list[Event]) -> bool:
        """True if ``events`` hold commands this instance did not issue: another
        worker advanced the run, so this cached copy is stale."""
        return any(
            e.is_command and e.seq > self.last_seq and _key(e.type, e.attrs) not in self._matched
            for e in events
        )

    def _apply(self, event: Event) -> None:
        a = event.attrs
        match event.type:
            case EventType.WORKFLOW_STARTED:
                self._start(a)
            case EventType.ACTIVITY_COMPLETED:
                pending = self._activities.pop(a["step"], None)
                if pending and not pending[0].done():
                    future, convert = pending
                    try:
                        future.set_result(convert(a.get("result")))
                    except InvalidArgument as exc:
                        future.set_exception(exc)
            case EventType.ACTIVITY_FAILED | EventType.ACTIVITY_TIMED_OUT:
                pending = self._activities.pop(a["step"], None)
                if pending and not pending[0].done():
                    pending[0].set_exception(failure_from_dict(a["failure"]))
            case EventType.CHILD_WORKFLOW_COMPLETED:
                pending = self._children.pop(a["step"], None)
                if pending and not pending[0].done():
                    try:
                        pending[0].set_result(pending[1](a.get("result")))
                    except InvalidArgument as exc:
                        pending[0].set_exception(exc)
            case EventType.CHILD_WORKFLOW_FAILED:
                pending = self._children.pop(a["step"], None)
                if pending and not pending[0].done():
                    pending[0].set_exception(failure_from_dict(a["failure"]))
            case EventType.TIMER_FIRED:
                handle = self._timers.pop(a["step"], None)
                if handle is not None:
                    self.loop.fire(handle)
            case EventType.SIGNAL_RECEIVED:
                self._deliver(Signal(a["name"], a.get("payload"), event.seq))
            case EventType.UPDATE_ACCEPTED:
                self.updates.accept(a["name"], a["update_id"], a.get("args", []))
            case EventType.WORKFLOW_CANCEL_REQUESTED:
                self.cancel_requested = True
                self._cancel_reason = str(a.get("reason") or "")
                if self._main is not None and not self._main.done():
                    self._main.cancel(self._cancel_reason or "cancel requested")
            case EventType.WORKFLOW_TERMINATED:
                self.closed = True
                self.teardown()

    def _start(self, attrs: dict[str, Any]) -> None:
        self._seed = attrs["seed"]
        self.limits = attrs.get("limits") or {}
        self.fairness = attrs.get("fairness")
        started = attrs.get("search_attributes") or {}
        self.search_attributes = {k: v for k, v in started.items() if v is not None}
        try:
            args = self.definition.signature.check_args(attrs.get("args", []))
        except InvalidArgument as exc:
            self._close(EventType.WORKFLOW_FAILED, {"failure": failure_to_dict(exc)})
            return
        coro = self.definition.fn(self.context, *args)
        self._main = self.loop.create_task(coro, name=f"workflow {self.info.workflow_id}")
        self._main.add_done_callback(self._on_main_done)

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        if self._nd or self.closed:
            return
        if task.cancelled():
            reason = self._cancel_reason or "the workflow was cancelled"
            failure = failure_to_dict(CancelledFailure(reason))
            self._close(EventType.WORKFLOW_CANCELED, {"failure": failure})
            return
        exc = task.exception()
        if exc is None:
            try:
                result = self.codec.plain(
                    self.definition.signature.convert_result(task.result()),
                    what=f"result of workflow {self.info.workflow_type}",
                )
            except InvalidArgument as err:
                exc = err
            else:
                self._close(EventType.WORKFLOW_COMPLETED, {"result": result})
                return
        if isinstance(exc, NonDeterminismError):
            return
        if isinstance(exc, ContinueAsNewRequested):
            self._continue_as_new(exc.args_)
            return
        kind = EventType.WORKFLOW_CANCELED if isinstance(exc, CancelledFailure) else None
        self._close(kind or EventType.WORKFLOW_FAILED, {"failure": failure_to_dict(exc)})

    def _continue_as_new(self, args: list[Any]) -> None:
        buffered = sorted((seq, name, p) for name, q in self._signals.items() for seq, p in q)
        info = self.info
        attrs: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "workflow_type": info.workflow_type,
            "task_queue": info.task_queue,
            "args": args,
            "signals": [[name, payload] for _, name, payload in buffered],
        }
        self.inherit(attrs)
        if self.search_attributes:
            # As in Temporal, the new run starts with this run's attributes.
            attrs["search_attributes"] = dict(self.search_attributes)
        self._close(EventType.WORKFLOW_CONTINUED_AS_NEW, attrs)

    def inherit(self, attrs: dict[str, Any]) -> None:
        """Pass this run's limits and priority to a run it creates."""
        if self.limits:
            attrs["limits"] = self.limits
        if self.fairness:
            attrs["fairness"] = self.fairness

    @property
    def max_payload(self) -> int | None:
        """The run's namespace payload limit, if it has one."""
        limit = self.limits.get("max_payload")
        return limit if isinstance(limit, int) else None

    def check_queue(self, queue: str, what: str) -> None:
        """Refuse a task queue the run's namespace may not use, or no store can hold."""
        check_text(queue, f"{what}: a task queue")
        allowed = self.limits.get("task_queues")
        if allowed is not None and queue not in allowed:
            raise InvalidArgument(
                f"{what}: namespace {self.info.namespace!r} may not use task queue {queue!r}"
                f" (allowed: {', '.join(allowed) or 'none'})",
                namespace=self.info.namespace,
            )

    @property
    def history_length(self) -> int:
        """The seq of the event being applied: the same live and on replay."""
        return self._seq_now

    def _close(self, event_type: EventType, attrs: dict[str, Any]) -> None:
        self._command(event_type, attrs)
        self.closed = True

    # -- commands -----------------------------------------------------------------

    def next_step(self) -> int:
        self.refuse_in_query("schedule a step")
        self._step += 1
        return self._step

    def refuse_in_query(self, what: str) -> None:
        """Raise if a query handler or an update validator is running: they read
        state, never change it."""
        if self._querying is not None:
            raise InvalidArgument(
                f"{self._querying} tried to {what}; a query or an update validator must"
                " not schedule work or change the workflow's state",
                workflow_id=self.info.workflow_id,
            )

    def read_only(self, who: str, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
        """Call ``fn(*args)`` with commands refused; ``who`` names it in the error."""
        self._querying = who
        try:
            return fn(*args)
        finally:
            self._querying = None

    @property
    def nondeterministic(self) -> bool:
        return self._nd is not None

    def complete_update(self, attrs: dict[str, Any]) -> None:
        """Issue ``UpdateCompleted`` (``attrs``: step, name, update_id, result or failure)."""
        self._command(EventType.UPDATE_COMPLETED, attrs)

    def _command(self, event_type: EventType, attrs: dict[str, Any]) -> bool:
        """Record a command; return True if it is new (not a replay of history)."""
        self.refuse_in_query(f"issue {event_type}")
        if self._nd is not None:
            raise self._nd
        key = _key(event_type, attrs)
        recorded = self._recorded.pop(key, None)
        self._matched.add(key)
        if recorded is not None:
            expected = recorded.attrs.get("name")
            if recorded.type != event_type or expected != attrs.get("name"):
                what = f"{event_type} {attrs.get('name', '')}".strip()
                had = f"{recorded.type} {expected or ''}".strip()
                self._nd = NonDeterminismError(
                    f"step {attrs.get('step', '-')}: the code issues {what}"
                    f" but history has {had} (event {recorded.seq})",
                    workflow_id=self.info.workflow_id,
                    run_id=self.info.run_id,
                )
                raise self._nd
            return False
        attrs["wt"] = self._seq_now
        self._new.append(Command(event_type, attrs))
        return True

    def schedule_activity(
        self, name: str, args: list[Any], options: dict[str, Any], convert: Any
    ) -> asyncio.Future[Any]:
        step = self.next_step()
        future: asyncio.Future[Any] = self.loop.create_future()
        self._command(
            EventType.ACTIVITY_SCHEDULED,
            {"step": step, "name": name, "args": args, "options": options},
        )
        self._activities[step] = (future, convert)
        return future

    def start_child(self, attrs: dict[str, Any], convert: Any) -> tuple[int, asyncio.Future[Any]]:
        """Issue ``ChildWorkflowStarted``; return its step and the child's result future.
        ``attrs`` holds ``name`` (the workflow type), ``workflow_id``, ``task_queue``,
        ``args`` and ``parent_close_policy``."""
        step = self.next_step()
        future: asyncio.Future[Any] = self.loop.create_future()
        if not attrs.get("workflow_id"):
            attrs["workflow_id"] = f"{self.info.workflow_id}/{self.info.run_id[:12]}/{step}"
        self._command(EventType.CHILD_WORKFLOW_STARTED, {"step": step, **attrs})
        self._children[step] = (future, convert)
        return step, future

    def record_marker(self, name: str, compute: Any) -> Any:
        step = self.next_step()
        recorded = self._recorded.get(step)
        if recorded is not None and recorded.type == EventType.MARKER_RECORDED:
            value = recorded.attrs.get("value")
        else:
            value = self.codec.plain(compute(), what=f"value of marker {name!r}")
        self._command(EventType.MARKER_RECORDED, {"step": step, "name": name, "value": value})
        return value

    def patched(self, patch_id: str, *, deprecated: bool = False) -> bool:
        """Whether the run takes the code's new path at ``patch_id``.

        A run that reaches the call live records a marker and takes it. Replaying a
        history, the answer is what that history did: the new path if it has this
        patch's marker as its next step, the old one if it has anything else there (the
        code ran without the call). Either way the call takes a step only where a marker
        is recorded, so an old history's steps still line up. ``deprecated`` (all runs
        from before the patch are gone) takes the new path, consuming the marker of a
        run that recorded one and never recording another."""
        known = self._patches.get(patch_id)
        if known is not None:
            return known
        recorded = self._recorded.get(self._step + 1)
        ours = (
            recorded is not None
            and recorded.type == EventType.MARKER_RECORDED
            and recorded.attrs.get("name") == PATCH_MARKER
            and recorded.attrs.get("patch_id") == patch_id
        )
        new_path = deprecated or ours or not self.replaying
        if ours or (new_path and not deprecated):
            step = self.next_step()
            attrs = {"step": step, "name": PATCH_MARKER, "patch_id": patch_id}
            self._command(EventType.MARKER_RECORDED, attrs)
        self._patches[patch_id] = new_path
        return new_path

    def upsert_search_attributes(self, update: dict[str, Encoded | None]) -> None:
        """Issue ``SearchAttributesUpserted``; the store applies it to the run's
        visibility rows in the transaction that records it."""
        check_type_change(self.search_attributes, update)
        merged = merge(self.search_attributes, update)
        step = self.next_step()
        self._command(
            EventType.SEARCH_ATTRIBUTES_UPSERTED, {"step": step, "search_attributes": update}
        )
        self.search_attributes = merged

    # TimerSink: the loop reports asyncio timers here.
    def start_timer(self, delay: float, handle: DurableTimerHandle) -> None:
        step = self.next_step()
        handle.step = step
        self._timers[step] = handle
        self._command(
            EventType.TIMER_STARTED,
            {"step": step, "duration": delay, "fire_at": self.loop.time() + delay},
        )

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        if self._timers.pop(handle.step, None) is not None and not self.closed:
            self._command(EventType.TIMER_CANCELED, {"step": handle.step})

    # -- signals ------------------------------------------------------------------

    def _deliver(self, signal: Signal) -> None:
        """Hand a signal to the oldest wait for its name, or buffer it."""
        self._signal_waits = [w for w in self._signal_waits if not w[1].done()]
        for i, (names, future) in enumerate(self._signal_waits):
            if signal.name in names:
                del self._signal_waits[i]
                future.set_result(signal)
                return
        self._signals.setdefault(signal.name, deque()).append((signal.seq, signal.payload))

    def wait_signal(self, names: Sequence[str]) -> asyncio.Future[Signal]:
        """A future for the next signal of any of ``names``: the earliest buffered one,
        or the next to arrive."""
        future: asyncio.Future[Signal] = self.loop.create_future()
        buffered = [(q[0][0], n) for n in names if (q := self._signals.get(n))]
        if buffered:
            _, name = min(buffered)
            seq, payload = self._signals[name].popleft()
            future.set_result(Signal(name, payload, seq))
        else:
            self._signal_waits.append((tuple(names), future))
        return future

    def return_signal(self, signal: Signal) -> None:
        """Put back a signal whose waiter was cancelled before it could take it."""
        self._signals.setdefault(signal.name, deque()).appendleft((signal.seq, signal.payload))

    # -- queries ------------------------------------------------------------------

    def set_query_handler(self, name: str, handler: Callable[..., Any]) -> None:
        self._queries[name] = handler

    def query(self, name: str, args: Sequence[Any]) -> Any:
        """Call the query handler ``name`` on the current state; return its plain result."""
        handler = self._queries.get(name)
        if handler is None:
            known = ", ".join(sorted(self._queries)) or "none"
            raise InvalidArgument(
                f"workflow {self.info.workflow_type} has no query {name!r} (known: {known})",
                workflow_id=self.info.workflow_id,
            )
        value = self.read_only(f"query handler {name!r}", handler, args)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise InvalidArgument(f"query handler {name!r} must be a plain function, not async")
        return self.codec.plain(value, what=f"result of query {name!r}")

    # -- teardown -----------------------------------------------------------------

    def teardown(self) -> None:
        """Stop the code without recording anything (eviction, termination)."""
        self.closed = True
        main, self._main = self._main, None
        stopping = self.updates.cancel_all()
        if main is not None and not main.done():
            main.cancel()
            stopping = True
        if stopping:
            # The code is being discarded; what it raises on the way out does not matter.
            with contextlib.suppress(BaseException):
                self.loop.run_until_idle()
        self._activities.clear()
        self._timers.clear()
        self._children.clear()
        self.loop.close()
