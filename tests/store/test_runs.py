"""Runs and histories: start, look up, list, read, terminate; namespaces."""

from __future__ import annotations

import pytest

from tether.errors import (
    InvalidArgument,
    NamespaceNotFound,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from tether.store import RunClose, RunStatus, Store, WorkflowCommit

from .helpers import LEASE, NS, Q, claim_one, schedule, start, types


async def close_run(
    store: Store, status: RunStatus = RunStatus.COMPLETED, result: object = 1
) -> None:
    task = await claim_one(store)
    event = "WorkflowCompleted" if status == RunStatus.COMPLETED else "WorkflowFailed"
    failure = None if status == RunStatus.COMPLETED else {"code": "x", "message": "boom"}
    await store.complete_workflow_task(
        task,
        WorkflowCommit(
            events=[(event, {"result": result} if failure is None else {"failure": failure})],
            close=RunClose(status, result if failure is None else None, failure),
        ),
        LEASE,
    )


async def test_start_run_records_run_history_and_task(store: Store) -> None:
    run = await start(store, "order-1", args=[1, "two"])
    assert (run.namespace, run.workflow_id, run.status) == (NS, "order-1", RunStatus.RUNNING)
    assert run.history_length == 1 and run.closed_at is None
    got = await store.get_run(NS, "order-1")
    assert got.run_id == run.run_id and got.created_at == pytest.approx(run.created_at)
    assert got.task_queue == Q and got.workflow_type == "flow" and got.stuck is None
    (event,) = await store.read_history(NS, run.run_id)
    assert (event.seq, event.type) == (1, "WorkflowStarted")
    assert event.attrs["args"] == [1, "two"]
    task = await claim_one(store)
    assert (task.run_id, task.workflow_id, task.workflow_type) == (run.run_id, "order-1", "flow")


async def test_duplicate_open_workflow_id_is_refused(store: Store) -> None:
    await start(store, "dup")
    with pytest.raises(WorkflowAlreadyStarted):
        await start(store, "dup")
    runs = await store.list_runs(NS)
    assert len(runs.runs) == 1


async def test_workflow_id_is_reusable_after_close(store: Store) -> None:
    first = await start(store, "again")
    await close_run(store)
    second = await start(store, "again")
    assert second.run_id != first.run_id
    newest = await store.get_run(NS, "again")
    assert newest.run_id == second.run_id and newest.status == RunStatus.RUNNING
    old = await store.get_run(NS, "again", first.run_id)
    assert old.status == RunStatus.COMPLETED and old.result == 1 and old.closed_at is not None


async def test_same_workflow_id_in_two_namespaces(store: Store) -> None:
    await store.ensure_namespace("acme")
    a = await start(store, "shared")
    b = await start(store, "shared", namespace="acme")
    assert (await store.get_run(NS, "shared")).run_id == a.run_id
    assert (await store.get_run("acme", "shared")).run_id == b.run_id
    with pytest.raises(WorkflowNotFound):
        await store.get_run("acme", "", a.run_id)


async def test_unknown_namespace_is_refused(store: Store) -> None:
    with pytest.raises(NamespaceNotFound):
        await start(store, namespace="nobody")
    assert (await store.list_runs("nobody")).runs == []


async def test_namespaces(store: Store) -> None:
    assert await store.list_namespaces() == ["default"]
    await store.ensure_namespace("zeta")
    await store.ensure_namespace("acme")
    await store.ensure_namespace("acme")
    assert await store.list_namespaces() == ["acme", "default", "zeta"]


async def test_get_run_not_found(store: Store) -> None:
    run = await start(store, "known")
    with pytest.raises(WorkflowNotFound):
        await store.get_run(NS, "unknown")
    with pytest.raises(WorkflowNotFound):
        await store.get_run(NS, "", "no-such-run")
    with pytest.raises(WorkflowNotFound):
        await store.get_run(NS, "other-id", run.run_id)
    assert (await store.get_run(NS, "known", run.run_id)).run_id == run.run_id
    assert (await store.get_run(NS, "", run.run_id)).workflow_id == "known"


async def test_failed_run_keeps_failure(store: Store) -> None:
    run = await start(store)
    await close_run(store, RunStatus.FAILED)
    got = await store.get_run(NS, "", run.run_id)
    assert got.status == RunStatus.FAILED and got.failure == {"code": "x", "message": "boom"}


async def test_list_runs_filters(store: Store) -> None:
    await store.ensure_namespace("acme")
    await start(store, "a", workflow_type="alpha")
    await close_run(store)
    await start(store, "b", workflow_type="beta")
    await start(store, "c", workflow_type="alpha")
    await start(store, "x", namespace="acme", workflow_type="alpha")
    everything = await store.list_runs(NS)
    assert [r.workflow_id for r in everything.runs] == ["c", "b", "a"]
    assert everything.next_cursor is None
    alphas = await store.list_runs(NS, workflow_type="alpha")
    assert [r.workflow_id for r in alphas.runs] == ["c", "a"]
    running = await store.list_runs(NS, status=RunStatus.RUNNING)
    assert [r.workflow_id for r in running.runs] == ["c", "b"]
    both = await store.list_runs(NS, status=RunStatus.COMPLETED, workflow_type="alpha")
    assert [r.workflow_id for r in both.runs] == ["a"]
    assert [r.workflow_id for r in (await store.list_runs("acme")).runs] == ["x"]


async def test_list_runs_pagination(store: Store) -> None:
    ids = [f"wf-{i:02d}" for i in range(7)]
    for wid in ids:
        await start(store, wid)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_runs(NS, limit=3, cursor=cursor)
        pages += 1
        seen.extend(r.workflow_id for r in page.runs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(ids))
    filtered = await store.list_runs(NS, status=RunStatus.RUNNING, limit=7)
    assert len(filtered.runs) == 7 and filtered.next_cursor is None


async def test_list_runs_refuses_a_malformed_cursor(store: Store) -> None:
    await start(store, "wf")
    with pytest.raises(InvalidArgument, match="not a page token of a run list"):
        await store.list_runs(NS, cursor="garbage")


async def test_read_history_order_and_after_seq(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    await store.complete_workflow_task(task, schedule(1, 2, 3), LEASE)
    events = await store.read_history(NS, run.run_id)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert types(events) == ["WorkflowStarted"] + ["ActivityScheduled"] * 3
    assert [e.attrs["step"] for e in events[1:]] == [1, 2, 3]
    assert all(events[0].ts <= e.ts for e in events)
    assert [e.seq for e in await store.read_history(NS, run.run_id, after_seq=2)] == [3, 4]
    assert await store.read_history(NS, run.run_id, after_seq=4) == []
    assert await store.read_history("acme", run.run_id) == []
    assert (await store.get_run(NS, "", run.run_id)).history_length == 4


async def test_payloads_round_trip_exactly(store: Store) -> None:
    started = [1, 1.5, 1e300, -0.0, "é ✓", None, True, {"b": 1, "a": [2, {"c": None}]}, 2**62]
    run = await start(store, args=started)
    (event,) = await store.read_history(NS, run.run_id)
    assert event.attrs["args"] == started
    assert [type(v) for v in event.attrs["args"]] == [type(v) for v in started]


async def test_terminate(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    commit = schedule(2)
    commit.timers.append((1, 1e10))
    await store.complete_workflow_task(task, commit, LEASE)
    done = await store.terminate_run(NS, run.run_id, reason="stop it", identity="alice")
    assert done.status == RunStatus.TERMINATED and done.closed_at is not None
    assert "alice" in done.failure["message"] and "stop it" in done.failure["message"]
    events = await store.read_history(NS, run.run_id)
    assert events[-1].type == "WorkflowTerminated"
    assert events[-1].attrs == {"reason": "stop it", "identity": "alice"}
    assert await store.next_due([NS], [Q]) is None  # its timer and activity are gone
    assert await store.claim_activity_tasks("w", [NS], [Q], 10, LEASE) == []
    with pytest.raises(InvalidArgument):
        await store.terminate_run(NS, run.run_id, reason="again", identity="alice")
    with pytest.raises(WorkflowNotFound):
        await store.terminate_run(NS, "no-such-run", reason="x", identity="alice")
    again = await start(store, run.workflow_id)
    assert again.status == RunStatus.RUNNING
