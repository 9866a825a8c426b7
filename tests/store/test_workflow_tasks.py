"""Workflow tasks: claiming, leases, fencing, the dirty flag, release, close."""

from __future__ import annotations

import asyncio

import pytest

from tether.errors import LeaseLost
from tether.store import ActivityOutcome, RunClose, RunStatus, Store, WorkflowCommit

from .conftest import Harness
from .helpers import (
    LEASE,
    NS,
    OWNER,
    Q,
    claim_one,
    eventually,
    schedule,
    start,
    types,
    until_expired,
)


async def test_claims_are_exclusive_under_concurrency(harness: Harness) -> None:
    stores = [await harness.open(), await harness.open()]
    runs = {(await start(stores[0])).run_id for _ in range(30)}
    batches = await asyncio.gather(
        *(stores[i % 2].claim_workflow_tasks(f"w{i}", [NS], [Q], 3, LEASE) for i in range(40))
    )
    claimed = [t.run_id for batch in batches for t in batch]
    assert sorted(claimed) == sorted(runs)  # every task exactly once
    assert await stores[0].claim_workflow_tasks("late", [NS], [Q], 10, LEASE) == []


async def test_claims_respect_namespace_queue_and_limit(store: Store) -> None:
    await store.ensure_namespace("acme")
    await start(store, "a", queue="q1")
    await start(store, "b", queue="q2")
    await start(store, "c", namespace="acme", queue="q1")
    assert await store.claim_workflow_tasks(OWNER, ["other"], ["q1", "q2"], 10, LEASE) == []
    (one,) = await store.claim_workflow_tasks(OWNER, [NS], ["q1"], 10, LEASE)
    assert one.workflow_id == "a" and one.task_queue == "q1" and one.namespace == NS
    (acme,) = await store.claim_workflow_tasks(OWNER, ["acme", NS], ["q1"], 1, LEASE)
    assert acme.workflow_id == "c" and acme.namespace == "acme"
    (two,) = await store.claim_workflow_tasks(OWNER, [NS, "acme"], ["q1", "q2"], 10, LEASE)
    assert two.workflow_id == "b"


async def test_expired_lease_makes_task_claimable_with_new_token(store: Store) -> None:
    await start(store)
    first = await claim_one(store, owner="a", lease=0.2)
    assert await store.claim_workflow_tasks("b", [NS], [Q], 1, LEASE) == []
    second = (await eventually(lambda: store.claim_workflow_tasks("b", [NS], [Q], 1, LEASE)))[0]
    assert second.task_id == first.task_id and second.token != first.token


async def test_stale_token_is_fenced_and_writes_nothing(store: Store) -> None:
    run = await start(store)
    stale = await claim_one(store, owner="a", lease=0.2)
    fresh = (await eventually(lambda: store.claim_workflow_tasks("b", [NS], [Q], 1, LEASE)))[0]
    with pytest.raises(LeaseLost):
        await store.complete_workflow_task(stale, schedule(1), LEASE)
    with pytest.raises(LeaseLost):
        await store.release_workflow_task(stale, delay=0, error="x")
    assert types(await store.read_history(NS, run.run_id)) == ["WorkflowStarted"]
    assert await store.claim_activity_tasks("c", [NS], [Q], 10, LEASE) == []
    result = await store.complete_workflow_task(fresh, schedule(1), LEASE)
    assert result.next_task is None and result.last_seq == 2


async def test_expired_lease_is_fenced_even_if_nobody_reclaimed(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store, lease=0.2)
    await until_expired(store)
    commit = schedule(1)
    commit.close = RunClose(RunStatus.COMPLETED, 1)
    with pytest.raises(LeaseLost):
        await store.complete_workflow_task(task, commit, LEASE)
    got = await store.get_run(NS, "", run.run_id)
    assert got.status == RunStatus.RUNNING and got.history_length == 1
    assert (await claim_one(store)).task_id == task.task_id


async def test_complete_without_new_input_removes_the_task(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    result = await store.complete_workflow_task(task, schedule(1), LEASE)
    assert result.next_task is None and result.activities == [] and result.last_seq == 2
    assert await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE) == []
    assert (await store.get_run(NS, "", run.run_id)).history_length == 2


async def test_empty_commit_reports_last_seq(store: Store) -> None:
    await start(store)
    task = await claim_one(store)
    result = await store.complete_workflow_task(task, WorkflowCommit(events=[]), LEASE)
    assert result.last_seq == 1 and result.next_task is None


async def test_read_for_task_reports_the_runs_last_seq(store: Store) -> None:
    run = await start(store)
    await store.complete_workflow_task(await claim_one(store), schedule(1, 2), LEASE)
    read = await store.read_for_task(NS, run.run_id, 1)
    assert [e.seq for e in read.events] == [2, 3] and read.last_seq == 3
    # Nothing after the seq asked for: the run's last seq still says where history ends,
    # also when a worker asks past it (it saw events the store no longer holds).
    assert (await store.read_for_task(NS, run.run_id, 3)).last_seq == 3
    ahead = await store.read_for_task(NS, run.run_id, 9)
    assert (ahead.events, ahead.pending, ahead.last_seq) == ([], [], 3)
    assert (await store.read_for_task(NS, "no-such-run", 0)).last_seq == 0


async def test_input_during_a_task_releases_it_again_to_the_committer(store: Store) -> None:
    await start(store)
    await store.complete_workflow_task(await claim_one(store), schedule(1, 2), LEASE)
    act1, act2 = await store.claim_activity_tasks(OWNER, [NS], [Q], 2, LEASE)
    done = ActivityOutcome("ActivityCompleted", "r")
    assert (
        await store.finish_activity(act1, done, claim_for=None, local_queues=(), lease=LEASE)
        is None
    )
    running = await claim_one(store)
    # New input while the task is leased: it is marked dirty, not duplicated, and the
    # fast path cannot take it from its holder.
    assert (
        await store.finish_activity(act2, done, claim_for="b", local_queues=[Q], lease=LEASE)
        is None
    )
    assert await store.claim_workflow_tasks("x", [NS], [Q], 10, LEASE) == []
    result = await store.complete_workflow_task(running, WorkflowCommit(events=[]), LEASE)
    assert result.next_task is not None and result.last_seq == 7
    assert result.next_task.task_id == running.task_id
    assert result.next_task.token != running.token
    with pytest.raises(LeaseLost):
        await store.complete_workflow_task(running, WorkflowCommit(events=[]), LEASE)
    assert await store.claim_workflow_tasks("x", [NS], [Q], 10, LEASE) == []
    final = await store.complete_workflow_task(result.next_task, WorkflowCommit(events=[]), LEASE)
    assert final.next_task is None
    assert await store.claim_workflow_tasks("x", [NS], [Q], 10, LEASE) == []


async def test_release_with_delay_shows_stuck_and_hides_the_task(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    await store.release_workflow_task(task, delay=0.3, error="NonDeterminismError at step 3")
    with pytest.raises(LeaseLost):  # given back: the token no longer holds a lease
        await store.complete_workflow_task(task, schedule(1), LEASE)
    got = await store.get_run(NS, "", run.run_id)
    assert got.stuck == "NonDeterminismError at step 3"
    assert await store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE) == []
    due = await store.next_due([NS], [Q])
    assert due is not None and due > got.created_at
    again = (await eventually(lambda: store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE)))[0]
    assert again.task_id == task.task_id


async def test_release_without_delay_is_claimable_at_once(store: Store) -> None:
    await start(store)
    task = await claim_one(store, owner="a")
    await store.release_workflow_task(task, delay=0, error="worker stopping")
    assert (await claim_one(store, owner="b")).task_id == task.task_id


async def test_close_deletes_pending_tasks_and_timers(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    commit = schedule(1, 2)
    commit.timers.append((3, 1e10))
    await store.complete_workflow_task(task, commit, LEASE)
    (act,) = await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE)
    await store.finish_activity(
        act, ActivityOutcome("ActivityCompleted", 1), claim_for=None, local_queues=(), lease=LEASE
    )
    task = await claim_one(store)
    result = await store.complete_workflow_task(
        task,
        WorkflowCommit(
            events=[("WorkflowCompleted", {"result": "ok"})],
            close=RunClose(RunStatus.COMPLETED, "ok"),
        ),
        LEASE,
    )
    assert result.next_task is None
    assert await store.next_due([NS], [Q]) is None
    assert await store.claim_activity_tasks(OWNER, [NS], [Q], 10, LEASE) == []
    got = await store.get_run(NS, "", run.run_id)
    assert got.status == RunStatus.COMPLETED and got.result == "ok"
