"""An eager start: the run's first workflow task is leased in the start's own write."""

from __future__ import annotations

import uuid

import pytest

from tether.errors import LeaseLost, WorkflowAlreadyStarted
from tether.store import NewRun, Store

from .helpers import LEASE, NS, OWNER, Q, schedule


def _run(workflow_id: str = "wf") -> NewRun:
    started = {"workflow_type": "flow", "args": [], "task_queue": Q}
    return NewRun(NS, workflow_id, uuid.uuid4().hex, "flow", Q, started=started)


async def test_the_first_task_is_leased_to_its_owner(store: Store) -> None:
    record, task = await store.start_run_leased(_run(), OWNER, LEASE)
    assert (task.run_id, task.workflow_id, task.token) == (record.run_id, "wf", 1)
    # Nobody else can claim it while the lease holds...
    assert await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE) == []
    # ...and its owner completes it like a claimed one.
    await store.complete_workflow_task(task, schedule(1), LEASE)
    history = await store.read_history(NS, record.run_id)
    assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled"]
    with pytest.raises(WorkflowAlreadyStarted):
        await store.start_run_leased(_run(), OWNER, LEASE)


async def test_an_expired_eager_lease_lets_another_worker_take_over(store: Store) -> None:
    record, task = await store.start_run_leased(_run(), OWNER, 0.0)
    (taken,) = await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE)
    assert taken.run_id == record.run_id and taken.token > task.token
    with pytest.raises(LeaseLost):
        await store.release_workflow_task(task, delay=0, error="late")
