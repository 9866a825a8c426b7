"""Event history: the append-only record of a run, and the only truth about it.

Events are written in two ways. *Command events* are written by a workflow task and
record what the workflow code asked for (schedule an activity, start a timer, upsert
search attributes, finish). *Input events* record what happened to the run from
outside its code (it started, an activity finished, a timer fired, a signal arrived,
cancellation was requested, it was terminated, a child run closed, an update was
accepted, it was made by a reset). A workflow task that starts child runs, or that
continues the run as a new one, creates those runs in the transaction of its events.
Replay feeds input events to the code in order and checks each command the code
issues against the command events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["COMMAND_EVENTS", "Event", "EventType", "describe_event"]


class EventType(StrEnum):
    WORKFLOW_STARTED = "WorkflowStarted"
    WORKFLOW_COMPLETED = "WorkflowCompleted"
    WORKFLOW_FAILED = "WorkflowFailed"
    WORKFLOW_CANCELED = "WorkflowCanceled"
    WORKFLOW_TERMINATED = "WorkflowTerminated"
    WORKFLOW_CANCEL_REQUESTED = "WorkflowCancelRequested"
    SIGNAL_RECEIVED = "SignalReceived"
    ACTIVITY_SCHEDULED = "ActivityScheduled"
    ACTIVITY_STARTED = "ActivityStarted"
    ACTIVITY_COMPLETED = "ActivityCompleted"
    ACTIVITY_FAILED = "ActivityFailed"
    ACTIVITY_TIMED_OUT = "ActivityTimedOut"
    TIMER_STARTED = "TimerStarted"
    TIMER_FIRED = "TimerFired"
    TIMER_CANCELED = "TimerCanceled"
    MARKER_RECORDED = "MarkerRecorded"
    WORKFLOW_CONTINUED_AS_NEW = "WorkflowContinuedAsNew"
    CHILD_WORKFLOW_STARTED = "ChildWorkflowStarted"
    CHILD_WORKFLOW_COMPLETED = "ChildWorkflowCompleted"
    CHILD_WORKFLOW_FAILED = "ChildWorkflowFailed"
    UPDATE_ACCEPTED = "UpdateAccepted"
    UPDATE_COMPLETED = "UpdateCompleted"
    # The run was made by a reset: its events before this one are a copy of another
    # run's history up to a point (see ``tether.store.reset``).
    WORKFLOW_RESET = "WorkflowReset"
    SEARCH_ATTRIBUTES_UPSERTED = "SearchAttributesUpserted"


COMMAND_EVENTS = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_CANCELED,
        EventType.ACTIVITY_SCHEDULED,
        EventType.TIMER_STARTED,
        EventType.TIMER_CANCELED,
        EventType.MARKER_RECORDED,
        EventType.WORKFLOW_CONTINUED_AS_NEW,
        EventType.CHILD_WORKFLOW_STARTED,
        EventType.UPDATE_COMPLETED,
        EventType.SEARCH_ATTRIBUTES_UPSERTED,
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's history. ``seq`` starts at 1; ``ts`` is Unix seconds."""

    seq: int
    type: str
    ts: float
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_command(self) -> bool:
        return self.type in COMMAND_EVENTS

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "ts": self.ts, "attrs": self.attrs}


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_event(event: Event) -> str:
    """A one-line account of an event that a person can follow."""
    a = event.attrs
    match event.type:
        case EventType.WORKFLOW_STARTED:
            args = _short(a.get("args", []))[1:-1]
            return f"{a.get('workflow_type')}({args}) on {a.get('task_queue')}"
        case EventType.ACTIVITY_SCHEDULED:
            return f"step {a['step']}: {a['name']}({_short(a.get('args', []))[1:-1]})"
        case EventType.ACTIVITY_STARTED:
            return f"step {a['step']}: attempt {a['attempt']}"
        case EventType.ACTIVITY_COMPLETED:
            return f"step {a['step']}: -> {_short(a.get('result'))}"
        case EventType.ACTIVITY_FAILED | EventType.ACTIVITY_TIMED_OUT:
            return f"step {a['step']}: {a['failure'].get('message', '')}"
        case EventType.TIMER_STARTED:
            fire = datetime.fromtimestamp(a["fire_at"], UTC).isoformat(timespec="milliseconds")
            return f"step {a['step']}: sleep {a['duration']:g}s until {fire}"
        case EventType.TIMER_FIRED | EventType.TIMER_CANCELED:
            return f"step {a['step']}"
        case EventType.MARKER_RECORDED:
            return f"step {a['step']}: {a['name']} = {_short(a.get('value'))}"
        case EventType.WORKFLOW_COMPLETED:
            return f"-> {_short(a.get('result'))}"
        case EventType.WORKFLOW_FAILED | EventType.WORKFLOW_CANCELED:
            return str((a.get("failure") or {}).get("message", ""))
        case EventType.WORKFLOW_TERMINATED | EventType.WORKFLOW_CANCEL_REQUESTED:
            text = f"by {a.get('identity', '?')}: {a.get('reason', '')}"
            return text + (f" (new run {a['new_run_id']})" if a.get("new_run_id") else "")
        case EventType.WORKFLOW_RESET:
            return (
                f"from run {a.get('base_run_id')} at event {a.get('seq')}"
                f" by {a.get('identity', '?')}: {a.get('reason', '')}"
            )
        case EventType.SIGNAL_RECEIVED:
            return f"{a['name']}: {_short(a.get('payload'))}"
        case EventType.WORKFLOW_CONTINUED_AS_NEW:
            args = _short(a.get("args", []))[1:-1]
            return f"as run {a.get('new_run_id', '?')}({args})"
        case EventType.CHILD_WORKFLOW_STARTED:
            args = _short(a.get("args", []))[1:-1]
            return f"step {a['step']}: {a['name']}({args}) as {a.get('workflow_id')}"
        case EventType.CHILD_WORKFLOW_COMPLETED:
            return f"step {a['step']}: -> {_short(a.get('result'))}"
        case EventType.CHILD_WORKFLOW_FAILED:
            return f"step {a['step']}: {a['failure'].get('message', '')}"
        case EventType.UPDATE_ACCEPTED:
            args = _short(a.get("args", []))[1:-1]
            return f"{a['name']}({args}) id {a['update_id']}"
        case EventType.UPDATE_COMPLETED:
            if "failure" in a:
                outcome = f"failed: {a['failure'].get('message', '')}"
            else:
                outcome = f"-> {_short(a.get('result'))}"
            return f"step {a['step']}: {a['name']} id {a['update_id']} {outcome}"
        case EventType.SEARCH_ATTRIBUTES_UPSERTED:
            changes = {
                k: v["values"] if v is not None else None
                for k, v in a.get("search_attributes", {}).items()
            }
            return f"step {a['step']}: {_short(changes)}"
    return _short(a)
