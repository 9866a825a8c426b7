"""Activity tasks: claims, attempts, heartbeats, retries, fencing, the local fast path."""

from __future__ import annotations

import time

import pytest

from tether.errors import LeaseLost
from tether.store import ActivityOutcome, NewActivity, RunClose, RunStatus, Store, WorkflowCommit

from .conftest import Harness
from .helpers import (
    LEASE,
    NS,
    OWNER,
    Q,
    claim_one,
    eventually,
    schedule,
    scheduled_activity,
    start,
    types,
    until_expired,
)

DONE = ActivityOutcome("ActivityCompleted", result={"answer": 42})


async def test_claim_gives_the_scheduled_attempt(store: Store) -> None:
    run, act = await scheduled_activity(store)
    assert (act.namespace, act.run_id, act.workflow_id) == (NS, run.run_id, run.workflow_id)
    assert (act.step, act.name, act.task_queue, act.args) == (1, "act", Q, [1])
    assert act.options == {"retry": {"max_attempts": 3}}
    assert act.attempt == 1 and not act.previous_lost
    assert act.heartbeat_details is None and act.last_failure is None
    assert act.scheduled_at >= run.created_at
    assert await store.claim_activity_tasks("other", [NS], [Q], 10, LEASE) == []


async def test_activity_claims_are_exclusive_and_filtered(harness: Harness) -> None:
    import asyncio

    stores = [await harness.open(), await harness.open()]
    await start(stores[0])
    task = await claim_one(stores[0])
    await stores[0].complete_workflow_task(task, schedule(*range(1, 21)), LEASE)
    assert await stores[1].claim_activity_tasks("x", [NS], ["elsewhere"], 10, LEASE) == []
    assert await stores[1].claim_activity_tasks("x", ["acme"], [Q], 10, LEASE) == []
    batches = await asyncio.gather(
        *(stores[i % 2].claim_activity_tasks(f"w{i}", [NS], [Q], 2, LEASE) for i in range(30))
    )
    steps = sorted(t.step for batch in batches for t in batch)
    assert steps == list(range(1, 21))


async def test_expired_attempt_runs_again_as_next_attempt(store: Store) -> None:
    _, first = await scheduled_activity(store, lease=0.2)
    second = (await eventually(lambda: store.claim_activity_tasks("b", [NS], [Q], 1, LEASE)))[0]
    assert second.task_id == first.task_id and second.token != first.token
    assert second.attempt == 2 and second.previous_lost
    with pytest.raises(LeaseLost):
        await store.finish_activity(first, DONE, claim_for=None, local_queues=(), lease=LEASE)
    with pytest.raises(LeaseLost):
        await store.heartbeat_activity(first, {"late": True}, LEASE)
    with pytest.raises(LeaseLost):
        await store.retry_activity(first, retry_at=time.time(), failure={"message": "x"})
    with pytest.raises(LeaseLost):
        await store.release_activity(first)
    assert await store.extend_leases([first, second], LEASE) == [first.task_id]


async def test_expired_attempt_is_fenced_even_if_nobody_reclaimed(store: Store) -> None:
    run, act = await scheduled_activity(store, lease=0.2)
    await until_expired(store)
    with pytest.raises(LeaseLost):
        await store.finish_activity(act, DONE, claim_for=OWNER, local_queues=[Q], lease=LEASE)
    with pytest.raises(LeaseLost):
        await store.heartbeat_activity(act, {"p": 1}, LEASE)
    assert await store.extend_leases([act], LEASE) == [act.task_id]
    assert (await store.get_run(NS, "", run.run_id)).history_length == 2
    again = (await store.claim_activity_tasks("b", [NS], [Q], 1, LEASE))[0]
    assert again.heartbeat_details is None and again.attempt == 2


async def test_heartbeat_extends_lease_and_carries_details(store: Store) -> None:
    _, act = await scheduled_activity(store, lease=0.3)
    await store.heartbeat_activity(act, {"page": 7}, 0.3)
    await store.heartbeat_activity(act, {"page": 8}, 0.3)
    nxt = (await eventually(lambda: store.claim_activity_tasks("b", [NS], [Q], 1, LEASE)))[0]
    assert nxt.heartbeat_details == {"page": 8} and nxt.attempt == 2 and nxt.previous_lost


async def test_extend_leases_keeps_attempts_alive(store: Store) -> None:
    _, act = await scheduled_activity(store, lease=0.3)
    assert await store.extend_leases([act], LEASE) == []
    assert await store.extend_leases([], LEASE) == []
    due = await store.next_due([NS], [Q])
    assert due is not None and due > time.time() + LEASE / 2
    assert await store.claim_activity_tasks("b", [NS], [Q], 1, LEASE) == []


async def test_retry_runs_next_attempt_at_retry_at(store: Store) -> None:
    _, act = await scheduled_activity(store)
    failure = {"code": "application_error", "message": "flaky"}
    await store.heartbeat_activity(act, {"cursor": "abc"}, LEASE)
    await store.retry_activity(act, retry_at=time.time() + 0.3, failure=failure)
    with pytest.raises(LeaseLost):
        await store.finish_activity(act, DONE, claim_for=None, local_queues=(), lease=LEASE)
    assert await store.claim_activity_tasks("b", [NS], [Q], 1, LEASE) == []
    nxt = (await eventually(lambda: store.claim_activity_tasks("b", [NS], [Q], 1, LEASE)))[0]
    assert nxt.attempt == 2 and not nxt.previous_lost
    assert nxt.last_failure == failure and nxt.heartbeat_details == {"cursor": "abc"}


async def test_release_gives_the_same_attempt_back_at_once(store: Store) -> None:
    _, act = await scheduled_activity(store)
    await store.release_activity(act)
    with pytest.raises(LeaseLost):
        await store.release_activity(act)
    (nxt,) = await store.claim_activity_tasks("b", [NS], [Q], 1, LEASE)
    assert nxt.task_id == act.task_id and nxt.attempt == 1 and not nxt.previous_lost


async def test_finish_records_outcome_and_requests_workflow_task(store: Store) -> None:
    run, act = await scheduled_activity(store)
    assert (
        await store.finish_activity(act, DONE, claim_for=None, local_queues=[Q], lease=LEASE)
        is None
    )
    events = await store.read_history(NS, run.run_id)
    assert types(events)[-2:] == ["ActivityStarted", "ActivityCompleted"]
    assert events[-2].attrs == {"step": 1, "attempt": 1}
    assert events[-1].attrs == {"step": 1, "result": {"answer": 42}}
    assert (await claim_one(store)).run_id == run.run_id
    with pytest.raises(LeaseLost):
        await store.finish_activity(act, DONE, claim_for=None, local_queues=[Q], lease=LEASE)


async def test_failed_outcome_keeps_failure_and_last_attempt_failure(store: Store) -> None:
    run, act = await scheduled_activity(store)
    await store.retry_activity(act, retry_at=0, failure={"message": "first"})
    (act,) = await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE)
    outcome = ActivityOutcome("ActivityFailed", failure={"message": "second"})
    await store.finish_activity(act, outcome, claim_for=None, local_queues=(), lease=LEASE)
    started, failed = (await store.read_history(NS, run.run_id))[-2:]
    assert started.attrs == {"step": 1, "attempt": 2, "last_failure": {"message": "first"}}
    assert (failed.type, failed.attrs) == (
        "ActivityFailed",
        {"step": 1, "failure": {"message": "second"}},
    )


async def test_finish_fast_path_claims_the_workflow_task_locally(store: Store) -> None:
    run, act = await scheduled_activity(store)
    task = await store.finish_activity(act, DONE, claim_for="me", local_queues=[Q], lease=LEASE)
    assert task is not None
    assert (task.run_id, task.workflow_id, task.workflow_type, task.task_queue) == (
        run.run_id, run.workflow_id, "flow", Q,
    )  # fmt: skip
    assert await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE) == []
    assert (
        await store.complete_workflow_task(task, WorkflowCommit(events=[]), LEASE)
    ).last_seq == 4


async def test_finish_fast_path_only_for_local_queues(store: Store) -> None:
    run, act = await scheduled_activity(store)
    task = await store.finish_activity(act, DONE, claim_for="me", local_queues=["gpu"], lease=LEASE)
    assert task is None
    assert (await claim_one(store, owner="other")).run_id == run.run_id


async def test_commit_fast_path_leases_local_activities(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    commit = WorkflowCommit(
        events=[("ActivityScheduled", {"step": s}) for s in (1, 2, 3)],
        activities=[
            NewActivity(1, "local", Q, ["a"], {}),
            NewActivity(2, "remote", "gpu", ["b"], {}),
            NewActivity(3, "local", Q, ["c"], {"x": 1}),
        ],
        claim_activities_for="me",
        local_queues=[Q],
    )
    result = await store.complete_workflow_task(task, commit, LEASE)
    assert sorted((a.step, a.name, a.args[0]) for a in result.activities) == [
        (1, "local", "a"), (3, "local", "c"),
    ]  # fmt: skip
    for a in result.activities:
        assert (a.run_id, a.workflow_id, a.attempt, a.task_queue) == (
            run.run_id,
            run.workflow_id,
            1,
            Q,
        )
    assert await store.claim_activity_tasks("other", [NS], [Q], 10, LEASE) == []
    (remote,) = await store.claim_activity_tasks("other", [NS], ["gpu"], 10, LEASE)
    assert remote.step == 2
    for a in result.activities:  # the locally leased attempts are real leases
        await store.heartbeat_activity(a, None, LEASE)
        await store.finish_activity(a, DONE, claim_for=None, local_queues=(), lease=LEASE)
    assert (await store.get_run(NS, "", run.run_id)).history_length == 8


async def test_advance_after_activity_applies_on_expected_history(store: Store) -> None:
    run, act = await scheduled_activity(store)
    commit = WorkflowCommit(
        events=[("ActivityScheduled", {"step": 2})],
        activities=[NewActivity(2, "next", Q, [], {})],
        claim_activities_for="me",
        local_queues=[Q],
    )
    ts = time.time()
    result = await store.advance_after_activity(
        act, DONE, expected_seq=2, ts=ts, commit=commit, lease=LEASE
    )
    assert result is not None and result.last_seq == 5 and result.next_task is None
    (nxt,) = result.activities
    assert nxt.step == 2 and nxt.name == "next"
    events = await store.read_history(NS, run.run_id, after_seq=2)
    assert types(events) == ["ActivityStarted", "ActivityCompleted", "ActivityScheduled"]
    assert all(e.ts == pytest.approx(ts) for e in events)
    assert await store.claim_workflow_tasks("other", [NS], [Q], 10, LEASE) == []
    with pytest.raises(LeaseLost):
        await store.finish_activity(act, DONE, claim_for=None, local_queues=(), lease=LEASE)
    close = WorkflowCommit(
        events=[("WorkflowCompleted", {"result": 1})], close=RunClose(RunStatus.COMPLETED, 1)
    )
    done = await store.advance_after_activity(
        nxt, DONE, expected_seq=5, ts=ts, commit=close, lease=LEASE
    )
    assert done is not None and done.last_seq == 8
    assert (await store.get_run(NS, "", run.run_id)).status == RunStatus.COMPLETED


async def test_advance_after_activity_with_a_timer_and_remote_work(store: Store) -> None:
    _, act = await scheduled_activity(store)
    fire_at = time.time() + 3600
    commit = WorkflowCommit(
        events=[("ActivityScheduled", {"step": 2}), ("TimerStarted", {"step": 3})],
        activities=[NewActivity(2, "remote", "gpu", [], {})],
        timers=[(3, fire_at)],
        claim_activities_for="me",
        local_queues=[Q],
    )
    result = await store.advance_after_activity(
        act, DONE, expected_seq=2, ts=time.time(), commit=commit, lease=LEASE
    )
    assert result is not None and result.activities == [] and result.last_seq == 6
    (remote,) = await store.claim_activity_tasks("other", [NS], ["gpu"], 10, LEASE)
    assert remote.step == 2
    assert await store.next_due([NS], [Q]) == pytest.approx(fire_at)


async def test_advance_after_activity_that_closes_leaves_no_tasks(store: Store) -> None:
    """A commit that closes the run while scheduling an activity (a workflow that
    returned without awaiting it): the run closes, and nothing of it is left to run."""
    run, act = await scheduled_activity(store)
    commit = WorkflowCommit(
        events=[("ActivityScheduled", {"step": 2}), ("WorkflowCompleted", {"result": 7})],
        activities=[NewActivity(2, "orphan", Q, [], {})],
        close=RunClose(RunStatus.COMPLETED, 7),
    )
    done = await store.advance_after_activity(
        act, DONE, expected_seq=2, ts=time.time(), commit=commit, lease=LEASE
    )
    assert done is not None and done.activities == [] and done.last_seq == 6
    record = await store.get_run(NS, "", run.run_id)
    assert record.status == RunStatus.COMPLETED and record.result == 7
    assert await store.claim_activity_tasks("other", [NS], [Q], 10, LEASE) == []
    assert await store.next_due([NS], [Q]) is None


async def test_advance_after_activity_declines_when_history_moved(store: Store) -> None:
    run = await start(store)
    await store.complete_workflow_task(await claim_one(store), schedule(1, 2), LEASE)
    act1, act2 = await store.claim_activity_tasks(OWNER, [NS], [Q], 2, LEASE)
    commit = WorkflowCommit(events=[("MarkerRecorded", {"step": 9})])
    stale = await store.advance_after_activity(
        act1, DONE, expected_seq=2, ts=0, commit=commit, lease=LEASE
    )
    assert stale is None  # history ends at 3, not 2
    await store.finish_activity(act2, DONE, claim_for=None, local_queues=(), lease=LEASE)
    pending = await store.advance_after_activity(
        act1, DONE, expected_seq=5, ts=0, commit=commit, lease=LEASE
    )
    assert pending is None  # a workflow task is pending for the run
    assert (await store.get_run(NS, "", run.run_id)).history_length == 5
    await store.finish_activity(act1, DONE, claim_for=None, local_queues=(), lease=LEASE)
    with pytest.raises(LeaseLost):
        await store.advance_after_activity(
            act1, DONE, expected_seq=7, ts=0, commit=commit, lease=LEASE
        )
