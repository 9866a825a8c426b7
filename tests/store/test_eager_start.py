"""An eager start: the run's first workflow task is leased in the start's own write."""

from __future__ import annotations

import time
import uuid

import pytest

from tether.errors import LeaseLost, NamespaceNotFound, WorkflowAlreadyStarted
from tether.history import Event
from tether.store import (
    ActivityOutcome,
    NewChild,
    NewRun,
    RunClose,
    RunStatus,
    Store,
    WorkflowCommit,
)

from .helpers import LEASE, NS, OWNER, Q, schedule

DONE = ActivityOutcome("ActivityCompleted", result=1)


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


async def test_the_first_event_is_what_its_starter_knows(store: Store) -> None:
    """A worker given the task at the start rebuilds the first event from the run and
    the record; it must be the event the store keeps (replay reads that one)."""
    run = _run()
    record, _ = await store.start_run_leased(run, OWNER, LEASE)
    (first,) = await store.read_history(NS, record.run_id)
    assert first == Event(1, "WorkflowStarted", record.created_at, run.started)


async def test_an_expired_eager_lease_lets_another_worker_take_over(store: Store) -> None:
    record, task = await store.start_run_leased(_run(), OWNER, 0.0)
    (taken,) = await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE)
    assert taken.run_id == record.run_id and taken.token > task.token
    with pytest.raises(LeaseLost):
        await store.release_workflow_task(task, delay=0, error="late")


async def test_an_executed_start_stores_the_first_task_outcome(store: Store) -> None:
    run = _run()
    commit = schedule(1)
    commit.claim_activities_for, commit.local_queues = OWNER, [Q]
    created_at = time.time() - 1.0  # the time the first task saw, not the store's
    record, result = await store.start_run_executed(run, created_at, OWNER, LEASE, commit)
    assert record.status == RunStatus.RUNNING and record.created_at == created_at
    assert result.next_task is None and result.last_seq == 2
    (act,) = result.activities
    assert (act.run_id, act.step, act.token) == (run.run_id, 1, 1)
    history = await store.read_history(NS, run.run_id)
    assert history[0] == Event(1, "WorkflowStarted", created_at, run.started)
    assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled"]
    # The first task is done and its activity leased here: nothing for anyone else.
    assert await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE) == []
    assert await store.claim_activity_tasks("other", [NS], [Q], 10, LEASE) == []
    await store.finish_activity(act, DONE, claim_for=None, local_queues=(), lease=LEASE)
    assert (await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE))[0].run_id == run.run_id


async def test_an_executed_start_can_close_the_run(store: Store) -> None:
    run = _run()
    commit = WorkflowCommit(
        events=[("WorkflowCompleted", {"result": 5})], close=RunClose(RunStatus.COMPLETED, 5)
    )
    record, _ = await store.start_run_executed(run, time.time(), OWNER, LEASE, commit)
    assert (record.status, record.result, record.history_length) == (RunStatus.COMPLETED, 5, 2)
    stored = await store.wait_closed(NS, run.run_id, timeout=0)
    assert (stored.status, stored.result, stored.history_length) == (RunStatus.COMPLETED, 5, 2)
    assert await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE) == []


async def test_an_executed_start_that_starts_a_child(store: Store) -> None:
    run = _run("parent")
    kid = NewRun(NS, "kid", uuid.uuid4().hex, "flow", Q, started={"workflow_type": "flow"})
    commit = WorkflowCommit(
        events=[("ChildWorkflowStarted", {"step": 1, "name": "flow", "workflow_id": "kid"})],
        children=[NewChild(kid, 1)],
    )
    record, result = await store.start_run_executed(run, time.time(), OWNER, LEASE, commit)
    assert record.status == RunStatus.RUNNING and result.last_seq == 2
    assert (await store.get_run(NS, "kid")).run_id == kid.run_id
    (task,) = await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE)
    assert task.run_id == kid.run_id


async def test_a_refused_executed_start_writes_nothing(store: Store) -> None:
    await store.start_run(_run("taken"))
    with pytest.raises(WorkflowAlreadyStarted):
        await store.start_run_executed(_run("taken"), time.time(), OWNER, LEASE, schedule(1))
    lost = NewRun("nowhere", "x", uuid.uuid4().hex, "flow", Q, started={})
    with pytest.raises(NamespaceNotFound):
        await store.start_run_executed(lost, time.time(), OWNER, LEASE, schedule(1))
    (task,) = await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE)
    assert task.workflow_id == "taken"
    assert await store.claim_activity_tasks("other", [NS], [Q], 10, LEASE) == []
