"""Deleting a namespace in bounded batches: marked first (invisible, refusing input, its
tasks unclaimed), then removed a batch at a time, resumable; and the sweep of idle
fairness flows."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import asyncpg
import pytest

from tests.support.pg import database_url
from tether.errors import InvalidArgument, NamespaceAlreadyExists, NamespaceNotFound
from tether.store import ClaimLimit, NewRun, Store, WorkflowCommit
from tether.store.reset import ResetRun
from tether.tenancy import RetentionSweeper, Scheduler

from .conftest import Harness
from .helpers import LEASE, NS, OWNER, Q, claim_one, schedule, start


async def _rows(harness: Harness, namespace: str) -> dict[str, int]:
    """Rows naming ``namespace`` in every table of the store (and its namespace row)."""
    if harness.kind == "sqlite":
        conn = sqlite3.connect(harness.location)
        try:
            tables = [
                t
                for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if "namespace" in {c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')}
            ]
            found = {
                t: conn.execute(
                    f'SELECT count(*) FROM "{t}" WHERE namespace = ?', (namespace,)
                ).fetchone()[0]
                for t in tables
            }
            found["namespaces"] = conn.execute(
                "SELECT count(*) FROM namespaces WHERE name = ?", (namespace,)
            ).fetchone()[0]
        finally:
            conn.close()
        return found
    pg = await asyncpg.connect(database_url(harness.location))
    try:
        tables = await pg.fetch("SELECT * FROM tether.namespaced_tables(false)")
        found = {}
        for (table,) in tables:
            found[table] = await pg.fetchval(
                f"SELECT count(*) FROM tether.{table} WHERE namespace = $1", namespace
            )
        found["namespaces"] = await pg.fetchval(
            "SELECT count(*) FROM tether.namespaces WHERE name = $1", namespace
        )
        return found
    finally:
        await pg.close()


async def _fill(store: Store, namespace: str, runs: int) -> list[str]:
    """Runs with histories, activity tasks, timers, fairness keys, limits and usage of
    limits; returns their ids."""
    await store.create_namespace(namespace, {"max_running_activities": 4})
    ids = []
    for i in range(runs):
        started: dict[str, Any] = {"workflow_type": "flow", "args": ["secret"], "task_queue": Q}
        started["fairness"] = {"priority": 2, "key": f"cust-{i % 2}", "weight": 1.0}
        run = NewRun(namespace, f"wf-{i}", uuid.uuid4().hex, "flow", Q, started=started)
        await store.start_run(run)
        ids.append(run.run_id)
    for _ in range(runs):
        task = await claim_one(store, namespace=namespace)
        commit = schedule(1, 2)
        commit.events.append(("TimerStarted", {"step": 3, "fire_at": time.time() + 3600}))
        commit.timers.append((3, time.time() + 3600))
        await store.complete_workflow_task(task, commit, LEASE)
    await store.reserve_start(namespace, Q, 5.0, None)
    return ids


async def test_deletion_in_several_batches_leaves_nothing(harness: Harness) -> None:
    store = await harness.open()
    await _fill(store, "gone", 6)
    kept = await _fill(store, "kept", 2)
    before = await _rows(harness, "gone")
    assert before["runs"] == 6 and before["events"] > 6 and before["fair_flows"] > 0
    total = sum(before.values()) - 1
    await store.begin_namespace_deletion("gone")
    batches = 0
    while not await store.delete_namespace_batch("gone", 5):
        batches += 1
        left = await _rows(harness, "gone")
        assert total - sum(left.values()) + 1 <= 5 * batches  # at most 5 rows a batch
    assert batches >= total // 5
    assert not any((await _rows(harness, "gone")).values())
    assert await store.deleting_namespaces() == []
    assert await store.delete_namespace_batch("gone", 5)  # gone already: done
    # The other namespace is untouched, and the name can be used again, fresh.
    assert (await _rows(harness, "kept"))["runs"] == 2
    assert (await store.get_run("kept", "wf-0")).run_id == kept[0]
    await store.create_namespace("gone", {})
    assert (await store.namespace_stats("gone")).runs == {}
    # The whole operation, with a small batch, leaves nothing either.
    await _fill(store, "again", 3)
    await store.delete_namespace("again", batch=4)
    assert not any((await _rows(harness, "again")).values())


async def test_a_namespace_being_deleted_is_unusable_until_a_second_delete_finishes(
    harness: Harness,
) -> None:
    store = await harness.open()
    ids = await _fill(store, "gone", 5)
    await _fill(store, "live", 1)
    await store.begin_namespace_deletion("gone")
    await store.begin_namespace_deletion("gone")  # again: harmless
    # Before any batch: every run is there, yet nothing may touch them.
    refused = [
        store.get_namespace("gone"),
        store.update_namespace("gone", {}),
        store.namespace_stats("gone"),
        start(store, namespace="gone"),
        store.signal_run("gone", ids[0], "go", 1),
        store.request_cancel("gone", ids[0], reason="r", identity="t"),
        store.terminate_run("gone", ids[0], reason="r", identity="t"),
        store.request_update("gone", ids[0], "u1", "set", [1]),
        store.reset_run(ResetRun("gone", ids[0], 1, uuid.uuid4().hex, "r", "t")),
    ]
    for op in refused:
        with pytest.raises(NamespaceNotFound):
            await op
    started = {"workflow_type": "flow", "args": [], "task_queue": Q}
    with_start = NewRun("gone", "wf-0", uuid.uuid4().hex, "flow", Q, started=started)
    with pytest.raises(NamespaceNotFound):
        await store.signal_with_start(with_start, "go", 1)
    with pytest.raises(NamespaceNotFound):
        await store.update_with_start(with_start, "u2", "set", [], use_existing=True)
    with pytest.raises(NamespaceAlreadyExists, match="being deleted"):
        await store.create_namespace("gone", {})
    with pytest.raises(InvalidArgument):
        await store.delete_namespace_batch("live", 10)  # not being deleted: refused

    async def unusable() -> None:
        assert "gone" not in await store.list_namespaces()
        assert "gone" not in [r.name for r in await store.list_namespace_records()]
        assert await store.deleting_namespaces() == ["gone"]
        both = ["gone", "live"]
        assert await store.claim_workflow_tasks(OWNER, ["gone"], [Q], 10, LEASE) == []
        activities = await store.claim_activity_tasks(OWNER, both, [Q], 10, LEASE)
        assert all(t.namespace == "live" for t in activities)
        fair = [ClaimLimit("gone", 10), ClaimLimit("live", 10)]
        assert await store.claim_activity_tasks_fair(OWNER, fair, [Q], 10, LEASE) == []
        assert await store.claim_workflow_tasks_fair(OWNER, fair, [Q], 10, LEASE) == []
        assert await store.next_due(["gone"], [Q]) is None
        assert await store.fire_timers(["gone"], [Q], 10) == 0
        with pytest.raises(NamespaceNotFound):
            await store.get_namespace("gone")
        with pytest.raises(NamespaceNotFound):
            await start(store, namespace="gone")

    await unusable()
    assert len(await store.claim_activity_tasks(OWNER, ["live"], [Q], 10, LEASE)) == 0
    # The deleter dies after two batches: the namespace stays marked and unusable.
    assert not await store.delete_namespace_batch("gone", 4)
    assert not await store.delete_namespace_batch("gone", 4)
    left = await _rows(harness, "gone")
    assert sum(left.values()) > 0 and left["runs"] == 0  # runs go first
    with pytest.raises(NamespaceNotFound, match="being deleted"):
        await store.signal_run("gone", ids[0], "go", 1)  # its run is gone, too
    await unusable()
    # Another process (a store object of its own) deletes again: that finishes it.
    other = await harness.open()
    await other.delete_namespace("gone", batch=7)
    assert not any((await _rows(harness, "gone")).values())
    assert await store.deleting_namespaces() == []
    with pytest.raises(NamespaceNotFound):
        await store.delete_namespace("gone")
    assert (await _rows(harness, "live"))["runs"] == 1


async def test_the_sweeper_finishes_an_interrupted_deletion(harness: Harness) -> None:
    store = await harness.open()
    await _fill(store, "gone", 4)
    await store.begin_namespace_deletion("gone")
    assert not await store.delete_namespace_batch("gone", 3)
    sweeper = RetentionSweeper(Scheduler(store, [NS], [Q], "w"), delete_batch=5, pause=0)
    await sweeper.sweep()
    assert sweeper.deletions_finished == 1
    assert not any((await _rows(harness, "gone")).values())
    assert await store.deleting_namespaces() == []


async def _flows(harness: Harness, namespace: str = NS) -> set[tuple[str, str]]:
    """The (kind, key) of the namespace's rows in fair_flows."""
    sql = "SELECT kind, fairness_key FROM {}fair_flows WHERE namespace = {}"
    if harness.kind == "sqlite":
        conn = sqlite3.connect(harness.location)
        try:
            return set(conn.execute(sql.format("", "?"), (namespace,)).fetchall())
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url(harness.location))
    try:
        return {tuple(r) for r in await pg.fetch(sql.format("tether.", "$1"), namespace)}
    finally:
        await pg.close()


async def _keyed(store: Store, name: str, key: str) -> None:
    started: dict[str, Any] = {"workflow_type": "flow", "args": [name], "task_queue": Q}
    started["fairness"] = {"priority": 2, "key": key, "weight": 1.0}
    await store.start_run(NewRun(NS, f"wf-{name}", uuid.uuid4().hex, "flow", Q, started=started))


async def test_idle_fair_flows_are_swept_and_restart_from_the_clock(harness: Harness) -> None:
    store = await harness.open()
    for i in range(6):
        await _keyed(store, f"a{i}", "a")  # a floods the queue...
    await _keyed(store, "b0", "b")
    assert await store.sweep_fair_flows(NS, 100) == 0  # every key has a task queued
    # ...then all its work is done (the runs wait, with no task), except c's.
    for task in await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE):
        await store.complete_workflow_task(task, WorkflowCommit(events=[]), LEASE)
    await _keyed(store, "c0", "c")
    (c_task,) = await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE)  # c runs
    assert await _flows(harness) == {("workflow", k) for k in ("", "a", "b", "c")}
    # Bounded: one row per call here; c is running, so it and the queue's clock stay.
    assert await store.sweep_fair_flows(NS, 1) == 1
    assert await store.sweep_fair_flows(NS, 10) == 1
    assert await _flows(harness) == {("workflow", ""), ("workflow", "c")}
    assert await store.sweep_fair_flows(NS, 10) == 0
    # a, idle, restarts from the clock like a newcomer: it no longer queues behind b
    # for the passes it used before (kept, its row would put all of b first).
    for i in range(6, 9):
        await _keyed(store, f"a{i}", "a")
        await _keyed(store, f"b{i}", "b")
    claimed = await store.claim_workflow_tasks(OWNER, [NS], [Q], 6, LEASE)
    order = [t.workflow_id.removeprefix("wf-") for t in claimed]
    assert order == ["a6", "b6", "a7", "b7", "a8", "b8"]
    # Once every task is done and nothing is keyed any more, the clock goes too, and
    # the sweeper of a worker does it.
    for task in [c_task, *claimed]:
        await store.complete_workflow_task(task, WorkflowCommit(events=[]), LEASE)
    sweeper = RetentionSweeper(Scheduler(store, [NS], [Q], "w"), batch=2, pause=0)
    await sweeper.sweep()
    assert sweeper.flows_swept == 4 and await _flows(harness) == set()


async def test_a_flow_with_a_delayed_or_running_activity_is_kept(harness: Harness) -> None:
    store = await harness.open()
    await _keyed(store, "x", "x")
    task = await claim_one(store)
    await store.complete_workflow_task(task, schedule(1), LEASE)
    # No workflow task waits: that flow goes (and its queue's clock); the activity's stays.
    assert await store.sweep_fair_flows(NS, 10) == 2
    assert await _flows(harness) == {("activity", ""), ("activity", "x")}
    assert await store.sweep_fair_flows(NS, 10) == 0  # the activity is queued
    (activity,) = await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE)
    assert await store.sweep_fair_flows(NS, 10) == 0  # ...running
    await store.retry_activity(activity, retry_at=time.time() + 60, failure={"message": "x"})
    assert await store.sweep_fair_flows(NS, 10) == 0  # ...waiting for its retry
    assert ("activity", "x") in await _flows(harness)
