"""Tenancy operations of the store: namespaces, deletion, retention, figures, limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from tether.errors import (
    InvalidArgument,
    NamespaceAlreadyExists,
    NamespaceNotFound,
    WorkflowNotFound,
)
from tether.store import ClaimLimit, RunStatus, Store, WorkflowCommit

from .conftest import Harness
from .helpers import LEASE, OWNER, Q, claim_one, schedule, start


async def test_namespace_lifecycle(store: Store) -> None:
    created = await store.create_namespace("acme", {"weight": 3})
    assert created.name == "acme" and created.settings == {"weight": 3}
    with pytest.raises(NamespaceAlreadyExists):
        await store.create_namespace("acme", {})
    assert (await store.get_namespace("acme")).settings == {"weight": 3}
    updated = await store.update_namespace("acme", {"weight": 5, "priority": 0})
    assert updated.settings == {"weight": 5, "priority": 0}
    assert updated.created_at == created.created_at
    assert [r.name for r in await store.list_namespace_records()] == ["acme", "default"]
    # Changes given as functions apply under the row's lock: concurrent changes of
    # different fields all land, and one that raises changes nothing.
    await asyncio.gather(
        *(store.update_namespace("acme", lambda s, i=i: {**s, f"f{i}": i}) for i in range(8))
    )
    assert (await store.get_namespace("acme")).settings == {
        "weight": 5, "priority": 0, **{f"f{i}": i for i in range(8)}
    }  # fmt: skip

    def refuse(settings: dict[str, object]) -> dict[str, object]:
        raise InvalidArgument("no")

    with pytest.raises(InvalidArgument):
        await store.update_namespace("acme", refuse)
    assert len((await store.get_namespace("acme")).settings) == 10
    await store.delete_namespace("acme")
    for op in (
        store.get_namespace("acme"),
        store.update_namespace("acme", {}),
        store.delete_namespace("acme"),
        store.namespace_stats("acme"),
    ):
        with pytest.raises(NamespaceNotFound):
            await op
    assert await store.list_namespaces() == ["default"]


async def _busy_run(store: Store, namespace: str, workflow_id: str) -> str:
    """A run with history, an activity task and a timer."""
    run = await start(store, workflow_id, namespace=namespace, args=["secret"])
    task = await claim_one(store, namespace=namespace)
    commit = schedule(1)
    commit.events.append(("TimerStarted", {"step": 2, "fire_at": time.time() + 3600}))
    commit.timers.append((2, time.time() + 3600))
    await store.complete_workflow_task(task, commit, LEASE)
    return run.run_id


async def test_deleting_a_namespace_removes_all_of_it(store: Store) -> None:
    await store.create_namespace("gone", {"max_running_activities": 2})
    await store.create_namespace("kept", {})
    gone = await _busy_run(store, "gone", "same-id")
    kept = await _busy_run(store, "kept", "same-id")
    await store.reserve_start("gone", Q, 5.0, None)
    await store.delete_namespace("gone")
    with pytest.raises(WorkflowNotFound):
        await store.get_run("gone", "same-id")
    assert await store.read_history("gone", gone) == []
    assert await store.claim_activity_tasks(OWNER, ["gone"], [Q], 10, LEASE) == []
    assert await store.next_due(["gone"], [Q]) is None
    # The other namespace, with the same workflow id, is untouched.
    assert (await store.get_run("kept", "same-id")).run_id == kept
    assert len(await store.claim_activity_tasks(OWNER, ["kept"], [Q], 10, LEASE)) == 1
    # A start in the deleted namespace is refused until it is created again.
    with pytest.raises(NamespaceNotFound):
        await start(store, namespace="gone")


async def test_deleting_a_run(store: Store) -> None:
    run_id = await _busy_run(store, "default", "gdpr")
    other = await start(store, "other")
    with pytest.raises(WorkflowNotFound):
        await store.delete_run("elsewhere", run_id)
    await store.delete_run("default", run_id)
    with pytest.raises(WorkflowNotFound):
        await store.get_run("default", "gdpr")
    assert await store.read_history("default", run_id) == []
    assert await store.claim_activity_tasks(OWNER, ["default"], [Q], 10, LEASE) == []
    with pytest.raises(WorkflowNotFound):
        await store.delete_run("default", run_id)
    assert (await store.get_run("default", "other")).run_id == other.run_id


async def test_purging_closed_runs_in_batches(store: Store) -> None:
    closed = []
    for i in range(5):
        run = await start(store, f"old-{i}")
        await store.terminate_run("default", run.run_id, reason="done", identity="test")
        closed.append(run.run_id)
    live = await start(store, "live")
    assert await store.purge_closed_runs("default", time.time() - 3600, 10) == 0
    assert await store.purge_closed_runs("default", time.time() + 1, 2) == 2
    assert await store.purge_closed_runs("default", time.time() + 1, 10) == 3
    page = await store.list_runs("default")
    assert [r.run_id for r in page.runs] == [live.run_id]
    for run_id in closed:
        assert await store.read_history("default", run_id) == []


async def test_namespace_figures(store: Store) -> None:
    await store.create_namespace("acme", {})
    for i in range(3):
        await start(store, f"r{i}", namespace="acme")
    done = await start(store, "done", namespace="acme")
    await store.terminate_run("acme", done.run_id, reason="x", identity="t")
    await claim_one(store, namespace="acme")
    stats = await store.namespace_stats("acme")
    assert stats.runs == {"running": 3, "terminated": 1}
    [queue] = stats.queues
    assert (queue.task_queue, queue.workflow_ready, queue.leased) == (Q, 2, 1)
    assert (await store.namespace_stats("default")).runs == {}


async def test_start_rate_reservations(store: Store) -> None:
    delays = [await store.reserve_start("default", Q, 5.0, None) for _ in range(7)]
    assert delays[:5] == [0.0] * 5  # one second's worth at once
    assert 0.1 < delays[5] <= 0.25 and 0.3 < delays[6] <= 0.45
    queue_only = await store.reserve_start("default", "other", None, 1.0)
    assert queue_only == 0.0
    assert await store.reserve_start("default", "other", None, 1.0) > 0.5
    assert (await store.namespace_stats("default")).limit_waits["start"] >= 3


async def _ready_activities(store: Store, namespace: str, n: int, queue: str = Q) -> None:
    await start(store, namespace=namespace)
    task = await claim_one(store, namespace=namespace)
    await store.complete_workflow_task(task, schedule(*range(1, n + 1), queue=queue), LEASE)


async def test_fair_claims_share_then_fill(store: Store) -> None:
    for ns in ("a", "b"):
        await store.create_namespace(ns, {})
    await _ready_activities(store, "a", 10)
    await _ready_activities(store, "b", 2)
    limits = [ClaimLimit("b", 3), ClaimLimit("a", 3)]
    got = await store.claim_activity_tasks_fair(OWNER, limits, [Q], 6, LEASE)
    by_ns = [t.namespace for t in got]
    assert by_ns.count("b") == 2 and by_ns.count("a") == 4  # b ran dry; a took the rest
    assert all(t.attempt == 1 and t.args for t in got)


async def test_caps_hold_across_processes(harness: Harness) -> None:
    first, second = await harness.open(), await harness.open()
    await first.create_namespace("capped", {})
    await _ready_activities(first, "capped", 10)
    limit = [ClaimLimit("capped", 10, max_leased=3)]
    claims = await asyncio.gather(
        first.claim_activity_tasks_fair("w1", limit, [Q], 10, LEASE),
        second.claim_activity_tasks_fair("w2", limit, [Q], 10, LEASE),
    )
    assert sum(len(c) for c in claims) == 3
    assert await first.claim_activity_tasks_fair("w1", limit, [Q], 10, LEASE) == []
    task = claims[0][0] if claims[0] else claims[1][0]
    await first.release_activity(task)  # a slot frees: one more may run
    assert len(await second.claim_activity_tasks_fair("w2", limit, [Q], 10, LEASE)) == 1
    assert (await first.namespace_stats("capped")).limit_waits["activity"] >= 1


async def test_rates_hold_and_refill(store: Store) -> None:
    await store.create_namespace("slow", {})
    await _ready_activities(store, "slow", 8)
    await _ready_activities(store, "slow", 4, queue="gpu")
    limit = [ClaimLimit("slow", 20, rate=4.0, queue_rates={"gpu": 1.0})]
    got = await store.claim_activity_tasks_fair(OWNER, limit, [Q, "gpu"], 20, LEASE)
    assert len(got) == 4 and [t.task_queue for t in got].count("gpu") == 1
    assert await store.claim_activity_tasks_fair(OWNER, limit, [Q, "gpu"], 20, LEASE) == []
    await asyncio.sleep(0.6)  # about two tokens come back
    again = await store.claim_activity_tasks_fair(OWNER, limit, [Q, "gpu"], 20, LEASE)
    assert 1 <= len(again) <= 3


async def test_fair_workflow_claims(store: Store) -> None:
    await store.create_namespace("a", {})
    for _ in range(4):
        await start(store, namespace="a")
    await start(store)
    limits = [ClaimLimit("default", 1), ClaimLimit("a", 1, max_leased=2)]
    got = await store.claim_workflow_tasks_fair(OWNER, limits, [Q], 10, LEASE)
    assert sorted(t.namespace for t in got) == ["a", "a", "default"]
    assert all(t.workflow_type == "flow" and t.token >= 1 for t in got)
    commit = WorkflowCommit(events=[])
    await store.complete_workflow_task(got[0], commit, LEASE)
    assert (await store.get_run(got[0].namespace, got[0].workflow_id)).status == RunStatus.RUNNING
