"""Update requests: stored outside history, idempotent per id, decided under a
workflow task's lease, and answered in the transaction that records the outcome."""

from __future__ import annotations

import asyncio

import pytest

from tether.errors import (
    InvalidArgument,
    LeaseLost,
    UpdateNotFound,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from tether.store import (
    RunClose,
    RunStatus,
    Store,
    UpdateOutcome,
    UpdateStatus,
    WorkflowCommit,
)

from .conftest import Harness
from .helpers import LEASE, NS, OWNER, Q, claim_one, start, types
from .test_runs import close_run
from .test_signals_and_cancel import new_run


async def test_request_is_not_history_and_asks_for_a_workflow_task(store: Store) -> None:
    run = await start(store)
    await store.complete_workflow_task(await claim_one(store), WorkflowCommit(events=[]), LEASE)
    assert await store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE) == []
    record = await store.request_update(NS, run.run_id, "u1", "approve", [["edit"], 1e300])
    assert record.status == UpdateStatus.PENDING and not record.done
    assert types(await store.read_history(NS, run.run_id)) == ["WorkflowStarted"]
    task = await claim_one(store)
    read = await store.read_for_task(NS, run.run_id, 0)
    assert types(read.events) == ["WorkflowStarted"] and read.last_seq == 1
    assert [(p.update_id, p.name, p.args) for p in read.pending] == [
        ("u1", "approve", [["edit"], 1e300])
    ]
    assert task.run_id == run.run_id


async def test_same_update_id_returns_the_same_request(store: Store) -> None:
    run = await start(store)
    first = await store.request_update(NS, run.run_id, "u1", "approve", [1])
    again = await store.request_update(NS, run.run_id, "u1", "other", [2])
    assert (again.name, again.args, again.created_at) == ("approve", [1], first.created_at)
    await store.request_update(NS, run.run_id, "u2", "approve", [3])
    pending = (await store.read_for_task(NS, run.run_id, 0)).pending
    assert [p.update_id for p in pending] == ["u1", "u2"]  # arrival order


async def test_verdicts_then_outcome_in_the_commit(store: Store) -> None:
    run = await start(store)
    for update_id in ("a", "b", "c"):
        await store.request_update(NS, run.run_id, update_id, "approve", [update_id])
    task = await claim_one(store)
    pending = (await store.read_for_task(NS, run.run_id, 0)).pending
    failure = {"code": "application_error", "message": "no"}
    await store.accept_updates(task, [pending[0], pending[2]], [("b", failure)])
    rejected = await store.get_update(NS, run.run_id, "b")
    assert rejected.status == UpdateStatus.REJECTED and rejected.failure == failure
    events = await store.read_history(NS, run.run_id)
    assert types(events) == ["WorkflowStarted", "UpdateAccepted", "UpdateAccepted"]
    assert [e.attrs for e in events[1:]] == [
        {"name": "approve", "update_id": "a", "args": ["a"]},
        {"name": "approve", "update_id": "c", "args": ["c"]},
    ]
    assert (await store.get_update(NS, run.run_id, "a")).status == UpdateStatus.ACCEPTED
    assert (await store.read_for_task(NS, run.run_id, 0)).pending == []
    commit = WorkflowCommit(
        events=[
            ("UpdateCompleted", {"step": 1, "name": "approve", "update_id": "a", "result": 7}),
            ("UpdateCompleted", {"step": 2, "name": "approve", "update_id": "c", "failure": {}}),
        ],
        updates=[UpdateOutcome("a", result=7), UpdateOutcome("c", failure={"message": "x"})],
    )
    await store.complete_workflow_task(task, commit, LEASE)
    done = await store.get_update(NS, run.run_id, "a")
    assert (done.status, done.result, done.done) == (UpdateStatus.COMPLETED, 7, True)
    failed = await store.get_update(NS, run.run_id, "c")
    assert (failed.status, failed.failure) == (UpdateStatus.FAILED, {"message": "x"})


async def test_stale_lease_cannot_decide(store: Store) -> None:
    run = await start(store)
    await store.request_update(NS, run.run_id, "a", "approve", [])
    task = await claim_one(store, lease=0.05)
    pending = (await store.read_for_task(NS, run.run_id, 0)).pending
    await asyncio.sleep(0.1)  # let the lease expire: the store's clock is the subject
    await claim_one(store, owner="worker-b")
    with pytest.raises(LeaseLost):
        await store.accept_updates(task, pending, [])
    assert types(await store.read_history(NS, run.run_id)) == ["WorkflowStarted"]
    assert (await store.get_update(NS, run.run_id, "a")).status == UpdateStatus.PENDING


async def test_unknown_and_closed_runs_are_refused(store: Store) -> None:
    with pytest.raises(WorkflowNotFound):
        await store.request_update(NS, "nope", "a", "approve", [])
    run = await start(store)
    await store.request_update(NS, run.run_id, "before", "approve", [])
    await close_run(store)
    with pytest.raises(InvalidArgument, match="already completed; cannot update it"):
        await store.request_update(NS, run.run_id, "after", "approve", [])
    # A request made before the close is still found by its id.
    found = await store.request_update(NS, run.run_id, "before", "approve", [])
    assert found.status == UpdateStatus.PENDING
    with pytest.raises(UpdateNotFound):
        await store.get_update(NS, run.run_id, "after")


async def test_update_with_start_starts_or_reuses(store: Store) -> None:
    first = new_run("order-1")
    started = await store.update_with_start(first, "u1", "approve", [1], use_existing=True)
    assert started.run_id == first.run_id
    assert types(await store.read_history(NS, first.run_id)) == ["WorkflowStarted"]
    second = new_run("order-1")
    reused = await store.update_with_start(second, "u2", "approve", [2], use_existing=True)
    assert reused.run_id == first.run_id
    with pytest.raises(WorkflowAlreadyStarted):
        await store.update_with_start(new_run("order-1"), "u3", "x", [], use_existing=False)
    with pytest.raises(UpdateNotFound):
        await store.get_update(NS, first.run_id, "u3")
    pending = (await store.read_for_task(NS, first.run_id, 0)).pending
    assert [p.update_id for p in pending] == ["u1", "u2"]
    runs = (await store.list_runs(NS)).runs
    assert [r.run_id for r in runs] == [first.run_id]


async def test_wait_update_wakes_on_outcome_and_on_close(harness: Harness) -> None:
    waiter, worker = await harness.open(), await harness.open()
    run = await start(worker)
    await worker.request_update(NS, run.run_id, "a", "approve", [])
    await worker.request_update(NS, run.run_id, "b", "approve", [])
    waiting_a = asyncio.ensure_future(waiter.wait_update(NS, run.run_id, "a", 30))
    waiting_b = asyncio.ensure_future(waiter.wait_update(NS, run.run_id, "b", 30))
    await asyncio.sleep(0)
    task = await claim_one(worker)
    pending = (await worker.read_for_task(NS, run.run_id, 0)).pending
    await worker.accept_updates(task, pending, [])
    commit = WorkflowCommit(
        events=[("UpdateCompleted", {"step": 1, "name": "approve", "update_id": "a"})],
        updates=[UpdateOutcome("a", result="ok")],
    )
    await worker.complete_workflow_task(task, commit, LEASE)
    # Under PostgreSQL's fallback poll (5 s): the notification must wake the callers.
    record = await asyncio.wait_for(waiting_a, 3)
    assert (record.status, record.result) == (UpdateStatus.COMPLETED, "ok")
    assert not waiting_b.done()
    await worker.terminate_run(NS, run.run_id, reason="stop", identity="test")
    still = await asyncio.wait_for(waiting_b, 3)
    assert still.status == UpdateStatus.ACCEPTED  # the caller sees the run closed first
    timed = await waiter.wait_update(NS, run.run_id, "b", 0.01)
    assert timed.status == UpdateStatus.ACCEPTED


async def test_run_deletion_removes_update_rows(store: Store) -> None:
    run = await start(store)
    await store.request_update(NS, run.run_id, "a", "approve", ["secret"])
    await store.delete_run(NS, run.run_id)
    with pytest.raises(UpdateNotFound):
        await store.get_update(NS, run.run_id, "a")
    await store.create_namespace("acme", {})
    other = await start(store, namespace="acme")
    await store.request_update("acme", other.run_id, "a", "approve", ["secret"])
    await store.delete_namespace("acme")
    with pytest.raises(UpdateNotFound):
        await store.get_update("acme", other.run_id, "a")


async def test_close_in_a_commit_leaves_unfinished_updates_unfinished(store: Store) -> None:
    run = await start(store)
    await store.request_update(NS, run.run_id, "a", "approve", [])
    task = await claim_one(store)
    pending = (await store.read_for_task(NS, run.run_id, 0)).pending
    await store.accept_updates(task, pending, [])
    close = RunClose(RunStatus.COMPLETED, 1, None)
    await store.complete_workflow_task(
        task, WorkflowCommit(events=[("WorkflowCompleted", {"result": 1})], close=close), LEASE
    )
    assert (await store.get_update(NS, run.run_id, "a")).status == UpdateStatus.ACCEPTED
    assert (await store.get_run(NS, "", run.run_id)).status == RunStatus.COMPLETED
