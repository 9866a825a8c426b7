"""Reset: a new run of a workflow id that goes on from a point of one run's history.

The new run's history is a copy of the base run's events ``1..seq``, then
``WorkflowReset {base_run_id, seq, reason, identity, terminated_run_id, signals}``,
then (unless told not to) every ``SignalReceived`` the base run got after ``seq``. Its
first workflow task replays the copy and runs on with the code of today: what came
after the point runs again. Steps the copy left pending (an activity scheduled whose
outcome came later, a timer not fired yet) get their tasks again, as the store
creates the run; the code issues everything after the point anew.

A point is the seq of an event after which the workflow code had taken in all input
up to it. It is refused when it is: past the end of history; the run's closing event;
an ``ActivityStarted`` (recorded as one with its outcome); in the middle of the
commands of one workflow task; or with a child run started and not closed (its
outcome would belong to the old run).

Named points (``to=`` as a string):

- ``last_completed_step``: just after the newest completed activity or child run;
- ``first_failed_activity``: just before the first activity that failed for good was
  attempted for the last time, so it runs again with the code of today;
- ``step:N``: just before the workflow task that issued step ``N``, so step ``N`` and
  what that task issued with it are issued again.

The open run of the workflow id, if any (the base run, or a newer run of its
continue-as-new chain), is terminated in the same transaction with
``WorkflowTerminated {reason: "reset: <reason>", identity, new_run_id}``; the new run takes over its
parent link. A closed base run is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument, WorkflowNotFound
from ..history import Event, EventType
from .protocol import NewActivity

__all__ = ["NAMED_POINTS", "ResetRun", "plan_reset", "reset_point"]

NAMED_POINTS = ("last_completed_step", "first_failed_activity", "step:N")

_CLOSING = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_CANCELED,
        EventType.WORKFLOW_TERMINATED,
        EventType.WORKFLOW_CONTINUED_AS_NEW,
    }
)
_STEP_DONE = frozenset(
    {
        EventType.ACTIVITY_COMPLETED,
        EventType.ACTIVITY_FAILED,
        EventType.ACTIVITY_TIMED_OUT,
    }
)


@dataclass(frozen=True, slots=True)
class ResetRun:
    """What a store writes, in one transaction, to reset ``base_run_id`` to ``seq``.

    ``activities`` and ``timers`` are the steps pending at ``seq`` (their tasks are
    created again); ``cancel_requested`` marks those activities when the copy holds
    a cancellation request.
    """

    namespace: str
    base_run_id: str
    seq: int
    new_run_id: str
    reason: str
    identity: str
    reapply_signals: bool = True
    activities: list[NewActivity] = field(default_factory=list)
    timers: list[tuple[int, float]] = field(default_factory=list)
    cancel_requested: bool = False

    def check_base(self, row: Sequence[Any] | None) -> tuple[str, str, str]:
        """The base run's workflow id, type and task queue, from its row as the store
        reads it in the reset's transaction (workflow_id, workflow_type, task_queue,
        last_seq). Raises :class:`WorkflowNotFound` if there is none (deleted since the
        plan), :class:`InvalidArgument` if its history no longer reaches ``seq``."""
        if row is None:
            raise WorkflowNotFound(namespace=self.namespace, run_id=self.base_run_id)
        workflow_id, workflow_type, queue, length = row
        if length < self.seq:
            raise InvalidArgument(
                f"cannot reset run {self.base_run_id}: event {self.seq} is not in its history"
                f" (1..{length})",
                namespace=self.namespace,
                run_id=self.base_run_id,
            )
        return workflow_id, workflow_type, queue

    def marker(self, terminated_run_id: str | None, signals: int) -> dict[str, Any]:
        """The attrs of the new run's ``WorkflowReset`` event."""
        return {
            "base_run_id": self.base_run_id,
            "seq": self.seq,
            "reason": self.reason,
            "identity": self.identity,
            "terminated_run_id": terminated_run_id,
            "signals": signals,
        }

    def terminated(self) -> dict[str, Any]:
        """The attrs of the ``WorkflowTerminated`` event of the open run it replaces."""
        reason = f"reset: {self.reason}" if self.reason else "reset"
        return {"reason": reason, "identity": self.identity, "new_run_id": self.new_run_id}

    def failure(self) -> dict[str, Any]:
        """The failure recorded on the open run it replaces."""
        return {
            "code": "terminated",
            "message": f"reset by {self.identity}: {self.reason} (continues as run"
            f" {self.new_run_id})",
        }


def _invalid(message: str, run_id: str) -> InvalidArgument:
    return InvalidArgument(f"cannot reset run {run_id}: {message}", run_id=run_id)


def reset_point(events: Sequence[Event], to: int | str, run_id: str = "") -> int:
    """The seq that ``to`` names in ``events`` (checked by :func:`plan_reset`)."""
    if isinstance(to, bool) or not isinstance(to, int | str):
        raise InvalidArgument(
            f"a reset point is an event seq or one of {', '.join(NAMED_POINTS)}, got {to!r}"
        )
    if isinstance(to, int):
        return to
    if to.isdigit():
        return int(to)
    if to == "last_completed_step":
        done = (EventType.ACTIVITY_COMPLETED, EventType.CHILD_WORKFLOW_COMPLETED)
        for event in reversed(events):
            if event.type in done:
                return event.seq
        raise _invalid("it has no completed step (reset to 1 to run it all again)", run_id)
    if to == "first_failed_activity":
        for event in events:
            if event.type in (EventType.ACTIVITY_FAILED, EventType.ACTIVITY_TIMED_OUT):
                return event.seq - 2  # before its ActivityStarted
        raise _invalid("none of its activities failed", run_id)
    if to.startswith("step:") and to[5:].isdigit():
        step = int(to[5:])
        for event in events:
            if event.is_command and event.attrs.get("step") == step:
                before = [e.seq for e in events if e.seq < event.seq and not e.is_command]
                return before[-1]
        raise _invalid(f"its history has no step {step}", run_id)
    raise InvalidArgument(
        f"unknown reset point {to!r}: give an event seq or one of {', '.join(NAMED_POINTS)}"
    )


def plan_reset(
    namespace: str,
    run_id: str,
    events: Sequence[Event],
    seq: int,
    *,
    new_run_id: str,
    reason: str,
    identity: str,
    reapply_signals: bool,
) -> ResetRun:
    """Check that ``seq`` is a point to reset ``events`` (the base run's history) to,
    and find the steps pending there."""
    last = events[-1].seq if events else 0
    if not 1 <= seq <= last:
        raise _invalid(f"event {seq} is not in its history (1..{last})", run_id)
    at = events[seq - 1]
    if at.type in _CLOSING:
        raise _invalid(f"event {seq} ({at.type}) closes the run; pick an earlier one", run_id)
    if at.type == EventType.ACTIVITY_STARTED:
        raise _invalid(
            f"event {seq} (ActivityStarted) is recorded with its outcome; pick {seq - 1}"
            f" or {seq + 1}",
            run_id,
        )
    if at.is_command and seq < last and events[seq].is_command:
        raise _invalid(
            f"event {seq} is in the middle of the commands of one workflow task; pick the"
            " input event before them, or their last command",
            run_id,
        )
    activities: dict[int, NewActivity] = {}
    timers: dict[int, float] = {}
    children: dict[int, str] = {}
    cancel = False
    for event in events[:seq]:
        a = event.attrs
        match event.type:
            case EventType.ACTIVITY_SCHEDULED:
                queue = a["options"]["task_queue"]
                activities[a["step"]] = NewActivity(
                    a["step"], a["name"], queue, a["args"], a["options"]
                )
            case _ if event.type in _STEP_DONE:
                activities.pop(a["step"], None)
            case EventType.TIMER_STARTED:
                timers[a["step"]] = float(a["fire_at"])
            case EventType.TIMER_FIRED | EventType.TIMER_CANCELED:
                timers.pop(a["step"], None)
            case EventType.CHILD_WORKFLOW_STARTED:
                children[a["step"]] = str(a.get("workflow_id", ""))
            case EventType.CHILD_WORKFLOW_COMPLETED | EventType.CHILD_WORKFLOW_FAILED:
                children.pop(a["step"], None)
            case EventType.WORKFLOW_CANCEL_REQUESTED:
                cancel = True
    if children:
        step, child = min(children.items())
        raise _invalid(
            f"at event {seq} its child run {child!r} (step {step}) has not closed yet; pick a"
            " point before the child started or after its outcome",
            run_id,
        )
    if not isinstance(reason, str):
        raise InvalidArgument(f"a reset reason must be a string, got {reason!r}")
    if not isinstance(identity, str) or not identity:
        raise InvalidArgument(f"a reset identity must be a non-empty string, got {identity!r}")
    if not isinstance(reapply_signals, bool):
        raise InvalidArgument(f"reapply_signals must be True or False, got {reapply_signals!r}")
    return ResetRun(
        namespace=namespace,
        base_run_id=run_id,
        seq=seq,
        new_run_id=new_run_id,
        reason=reason,
        identity=identity,
        reapply_signals=reapply_signals,
        activities=list(activities.values()),
        timers=sorted(timers.items()),
        cancel_requested=cancel,
    )
