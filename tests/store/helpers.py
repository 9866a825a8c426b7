"""Small helpers shared by the store conformance tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tether.store import (
    ActivityTask,
    NewActivity,
    NewRun,
    RunRecord,
    Store,
    WorkflowCommit,
    WorkflowTask,
)

T = TypeVar("T")
NS = "default"
Q = "main"
OWNER = "worker-a"
LEASE = 30.0


def new_run(workflow_id: str, *, namespace: str = NS) -> NewRun:
    """A run of type "flow" on queue Q, to hand to a start."""
    return NewRun(
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=uuid.uuid4().hex,
        workflow_type="flow",
        task_queue=Q,
        started={"workflow_type": "flow", "args": [], "task_queue": Q},
    )


async def start(
    store: Store,
    workflow_id: str | None = None,
    *,
    namespace: str = NS,
    queue: str = Q,
    workflow_type: str = "flow",
    args: list[Any] | None = None,
) -> RunRecord:
    return await store.start_run(
        NewRun(
            namespace=namespace,
            workflow_id=workflow_id or f"wf-{uuid.uuid4().hex[:8]}",
            run_id=uuid.uuid4().hex,
            workflow_type=workflow_type,
            task_queue=queue,
            started={"workflow_type": workflow_type, "args": args or [], "task_queue": queue},
        )
    )


async def claim_one(
    store: Store, *, owner: str = OWNER, namespace: str = NS, queue: str = Q, lease: float = LEASE
) -> WorkflowTask:
    tasks = await store.claim_workflow_tasks(owner, [namespace], [queue], 1, lease)
    assert len(tasks) == 1, tasks
    return tasks[0]


def schedule(*steps: int, queue: str = Q, name: str = "act") -> WorkflowCommit:
    """A commit that schedules one activity per step."""
    return WorkflowCommit(
        events=[("ActivityScheduled", {"step": s, "name": name, "args": [s]}) for s in steps],
        activities=[
            NewActivity(s, name, queue, [s], {"retry": {"max_attempts": 3}}) for s in steps
        ],
    )


async def scheduled_activity(
    store: Store, *, queue: str = Q, lease: float = LEASE
) -> tuple[RunRecord, ActivityTask]:
    """Start a run, schedule one activity (step 1) and claim it."""
    run = await start(store)
    wtask = await claim_one(store)
    await store.complete_workflow_task(wtask, schedule(1, queue=queue), LEASE)
    tasks = await store.claim_activity_tasks(OWNER, [NS], [queue], 10, lease)
    assert len(tasks) == 1
    return run, tasks[0]


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 5.0, interval: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def until_expired(store: Store, queues: list[str] | None = None) -> None:
    """Wait until every lease in the queues has run out (by the store's next_due)."""
    due = await store.next_due([NS], queues or [Q])
    assert due is not None
    await asyncio.sleep(max(due - time.time(), 0) + 0.05)


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]
