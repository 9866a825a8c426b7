"""Signals, signal-with-start and cancellation requests: input events on open runs."""

from __future__ import annotations

import asyncio

import pytest

from tether.errors import InvalidArgument, NamespaceNotFound, WorkflowNotFound
from tether.store import RunStatus, Store

from .conftest import Harness
from .helpers import LEASE, NS, OWNER, Q, claim_one, eventually, new_run, schedule, start, types
from .test_runs import close_run


async def test_signal_is_recorded_and_requests_a_workflow_task(store: Store) -> None:
    run = await start(store)
    await store.complete_workflow_task(await claim_one(store), schedule(1), LEASE)
    assert await store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE) == []
    seq = await store.signal_run(NS, run.run_id, "approve", {"by": "ada", "n": 1e300})
    assert seq == 3
    events = await store.read_history(NS, run.run_id)
    assert types(events) == ["WorkflowStarted", "ActivityScheduled", "SignalReceived"]
    assert events[-1].attrs == {"name": "approve", "payload": {"by": "ada", "n": 1e300}}
    task = await claim_one(store)
    assert task.run_id == run.run_id


async def test_signal_during_a_workflow_task_hands_it_straight_back(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    await store.signal_run(NS, run.run_id, "s", None)
    await store.signal_run(NS, run.run_id, "s", 2)
    result = await store.complete_workflow_task(task, schedule(1), LEASE)
    assert result.next_task is not None and result.next_task.run_id == run.run_id
    assert result.last_seq == 4
    assert types(await store.read_history(NS, run.run_id, 1)) == [
        "SignalReceived",
        "SignalReceived",
        "ActivityScheduled",
    ]


async def test_signal_wakes_a_waiting_worker(harness: Harness) -> None:
    waiter, sender = await harness.open(), await harness.open()
    run = await start(sender)
    await sender.complete_workflow_task(await claim_one(sender), schedule(1), LEASE)
    wait = asyncio.ensure_future(waiter.wait_for_work([NS], [Q], 30.0))
    await asyncio.sleep(0)  # the waiter registers before its first await
    await sender.signal_run(NS, run.run_id, "go", 1)
    # Less than PostgreSQL's fallback poll (5 s): only the notification can wake it.
    await asyncio.wait_for(wait, 3.0)
    assert (await claim_one(waiter)).run_id == run.run_id


async def test_signals_to_closed_missing_or_foreign_runs_are_refused(store: Store) -> None:
    await store.ensure_namespace("acme")
    run = await start(store)
    with pytest.raises(WorkflowNotFound):
        await store.signal_run("acme", run.run_id, "s", 1)
    with pytest.raises(WorkflowNotFound):
        await store.signal_run(NS, "no-such-run", "s", 1)
    with pytest.raises(WorkflowNotFound):
        await store.request_cancel("acme", run.run_id, reason="", identity="t")
    await close_run(store)
    with pytest.raises(InvalidArgument, match="already completed"):
        await store.signal_run(NS, run.run_id, "s", 1)
    with pytest.raises(InvalidArgument, match="already completed"):
        await store.request_cancel(NS, run.run_id, reason="", identity="t")
    assert types(await store.read_history(NS, run.run_id)) == [
        "WorkflowStarted",
        "WorkflowCompleted",
    ]
    assert await store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE) == []


async def test_signal_with_start_starts_a_run_and_signals_it(store: Store) -> None:
    first = new_run("inbox")
    started = await store.signal_with_start(first, "msg", "hello")
    assert started.run_id == first.run_id and started.status == RunStatus.RUNNING
    events = await store.read_history(NS, first.run_id)
    assert types(events) == ["WorkflowStarted", "SignalReceived"]
    assert events[1].attrs == {"name": "msg", "payload": "hello"}
    assert started.history_length == 2
    (task,) = await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE)
    assert task.run_id == first.run_id and task.workflow_type == "flow"

    # An open run of the id is signalled, not started again.
    signalled = await store.signal_with_start(new_run("inbox"), "msg", "again")
    assert signalled.run_id == first.run_id
    assert types(await store.read_history(NS, first.run_id)) == [
        "WorkflowStarted",
        "SignalReceived",
        "SignalReceived",
    ]
    assert len((await store.list_runs(NS)).runs) == 1


async def test_signal_with_start_after_close_starts_a_new_run(store: Store) -> None:
    first = await store.signal_with_start(new_run("again"), "msg", 1)
    await close_run(store)
    second = await store.signal_with_start(new_run("again"), "msg", 2)
    assert second.run_id != first.run_id and second.status == RunStatus.RUNNING
    assert (await store.get_run(NS, "", first.run_id)).status == RunStatus.COMPLETED


async def test_signal_with_start_is_atomic_under_concurrency(harness: Harness) -> None:
    stores = [await harness.open(), await harness.open()]
    runs = await asyncio.gather(
        *(stores[i % 2].signal_with_start(new_run("race"), "n", i) for i in range(20))
    )
    assert len({r.run_id for r in runs}) == 1
    (only,) = (await stores[0].list_runs(NS)).runs
    events = await stores[0].read_history(NS, only.run_id)
    assert types(events) == ["WorkflowStarted"] + ["SignalReceived"] * 20
    assert sorted(e.attrs["payload"] for e in events[1:]) == list(range(20))
    assert len(await stores[0].claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE)) == 1


async def test_signal_with_start_in_an_unknown_namespace_is_refused(store: Store) -> None:
    with pytest.raises(NamespaceNotFound):
        await store.signal_with_start(new_run("x", namespace="nobody"), "s", 1)


async def test_cancel_request_is_recorded_and_reaches_heartbeats(store: Store) -> None:
    run = await start(store)
    await store.complete_workflow_task(await claim_one(store), schedule(1, 2), LEASE)
    first, second = await store.claim_activity_tasks(OWNER, [NS], [Q], 10, LEASE)
    assert await store.heartbeat_activity(first, {"p": 1}, LEASE) is False
    record = await store.request_cancel(NS, run.run_id, reason="user left", identity="cli")
    assert record.status == RunStatus.RUNNING and record.history_length == 4
    (event,) = await store.read_history(NS, run.run_id, 3)
    assert event.type == "WorkflowCancelRequested"
    assert event.attrs == {"reason": "user left", "identity": "cli"}
    assert await store.heartbeat_activity(first, {"p": 2}, LEASE) is True
    assert await store.heartbeat_activity(second, None, LEASE) is True
    # Steps scheduled after the request (cleanup code) are not asked to stop.
    task = await claim_one(store)
    await store.complete_workflow_task(task, schedule(3), LEASE)
    (cleanup,) = await store.claim_activity_tasks(OWNER, [NS], [Q], 10, LEASE)
    assert cleanup.step == 3
    assert await store.heartbeat_activity(cleanup, None, LEASE) is False


async def test_cancel_request_wakes_a_waiting_worker(harness: Harness) -> None:
    waiter, sender = await harness.open(), await harness.open()
    run = await start(sender)
    await sender.complete_workflow_task(await claim_one(sender), schedule(1), LEASE)
    wait = asyncio.ensure_future(waiter.wait_for_work([NS], [Q], 30.0))
    await asyncio.sleep(0)  # the waiter registers before its first await
    await sender.request_cancel(NS, run.run_id, reason="", identity="t")
    # Less than PostgreSQL's fallback poll (5 s): only the notification can wake it.
    await asyncio.wait_for(wait, 3.0)
    task = await eventually(lambda: waiter.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE))
    assert task[0].run_id == run.run_id
