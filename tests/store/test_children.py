"""Child runs and continue-as-new in the store: the runs a commit creates, the
outcome a closing child appends to its parent, parent-close policies."""

from __future__ import annotations

import uuid
from typing import Any

from tether.store import (
    ContinueAsNew,
    NewChild,
    NewRun,
    RunClose,
    RunStatus,
    Store,
    WorkflowCommit,
)

from .helpers import LEASE, NS, OWNER, Q, claim_one, start, types


def child_run(workflow_id: str, *, args: list[Any] | None = None) -> NewRun:
    return NewRun(
        namespace=NS,
        workflow_id=workflow_id,
        run_id=uuid.uuid4().hex,
        workflow_type="kid",
        task_queue=Q,
        started={"workflow_type": "kid", "args": args or [], "task_queue": Q},
    )


def start_children(*kids: tuple[str, int, str]) -> WorkflowCommit:
    """A commit that starts one child per (workflow id, step, close policy)."""
    children = [NewChild(child_run(wid), step, policy) for wid, step, policy in kids]
    events = [
        ("ChildWorkflowStarted", {"step": c.step, "name": "kid", "workflow_id": c.run.workflow_id})
        for c in children
    ]
    return WorkflowCommit(events=events, children=children)


def close(status: RunStatus, result: Any = None, failure: Any = None) -> WorkflowCommit:
    event = {RunStatus.COMPLETED: "WorkflowCompleted", RunStatus.FAILED: "WorkflowFailed"}
    attrs = {"result": result} if failure is None else {"failure": failure}
    return WorkflowCommit(events=[(event[status], attrs)], close=RunClose(status, result, failure))


async def claim_run(store: Store, run_id: str) -> Any:
    for task in await store.claim_workflow_tasks(OWNER, [NS], [Q], 100, LEASE):
        if task.run_id == run_id:
            return task
    raise AssertionError(f"no workflow task for {run_id}")


async def test_a_commit_creates_its_children_and_each_outcome_reaches_the_parent(
    store: Store,
) -> None:
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_one(store), start_children(("a", 1, "terminate"), ("b", 2, "terminate")), LEASE
    )
    a = await store.get_run(NS, "a")
    b = await store.get_run(NS, "b")
    assert a.status == b.status == RunStatus.RUNNING
    assert types(await store.read_history(NS, a.run_id)) == ["WorkflowStarted"]
    # Each child has its workflow task; the parent has none until a child closes.
    tasks = await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE)
    assert sorted(t.workflow_id for t in tasks) == ["a", "b"]
    by_id = {t.workflow_id: t for t in tasks}
    await store.complete_workflow_task(by_id["a"], close(RunStatus.COMPLETED, {"n": 1e300}), LEASE)
    failure = {"code": "application_error", "message": "boom", "type": "Bad"}
    await store.complete_workflow_task(by_id["b"], close(RunStatus.FAILED, failure=failure), LEASE)
    events = await store.read_history(NS, parent.run_id)
    assert types(events)[-2:] == ["ChildWorkflowCompleted", "ChildWorkflowFailed"]
    assert events[-2].attrs == {"step": 1, "result": {"n": 1e300}}
    failed = events[-1].attrs
    assert failed["step"] == 2
    assert failed["failure"]["code"] == "child_workflow_error"
    assert failed["failure"]["workflow_id"] == "b" and failed["failure"]["run_id"] == b.run_id
    assert failed["failure"]["cause"] == failure
    assert (await claim_one(store)).run_id == parent.run_id


async def test_a_child_whose_id_is_taken_fails_at_once(store: Store) -> None:
    await start(store, "taken")
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_run(store, parent.run_id), start_children(("taken", 1, "abandon")), LEASE
    )
    events = await store.read_history(NS, parent.run_id)
    assert types(events) == ["WorkflowStarted", "ChildWorkflowStarted", "ChildWorkflowFailed"]
    assert events[-1].attrs["failure"]["code"] == "child_workflow_error"
    assert events[-1].attrs["failure"]["cause"]["type"] == "WorkflowAlreadyStarted"
    assert (await claim_run(store, parent.run_id)).run_id == parent.run_id


async def test_close_policies_apply_when_the_parent_closes(store: Store) -> None:
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_one(store),
        start_children(("t", 1, "terminate"), ("c", 2, "cancel"), ("a", 3, "abandon")),
        LEASE,
    )
    await store.claim_workflow_tasks(OWNER, [NS], [Q], 10, LEASE)  # the children's first tasks
    await store.terminate_run(NS, parent.run_id, reason="stop", identity="test")
    t, c, a = [await store.get_run(NS, wid) for wid in "tca"]
    assert t.status == RunStatus.TERMINATED
    assert types(await store.read_history(NS, t.run_id))[-1] == "WorkflowTerminated"
    assert c.status == RunStatus.RUNNING
    assert types(await store.read_history(NS, c.run_id))[-1] == "WorkflowCancelRequested"
    assert a.status == RunStatus.RUNNING
    # The parent is closed: nothing more is appended to it when a child closes.
    before = await store.get_run(NS, "parent")
    await store.terminate_run(NS, a.run_id, reason="later", identity="test")
    assert (await store.get_run(NS, "parent")).history_length == before.history_length


async def test_children_started_by_a_closing_commit_get_the_policy_at_once(store: Store) -> None:
    await start(store, "parent")
    commit = start_children(("t", 1, "terminate"), ("a", 2, "abandon"))
    commit.events.append(("WorkflowCompleted", {"result": None}))
    commit.close = RunClose(RunStatus.COMPLETED)
    await store.complete_workflow_task(await claim_one(store), commit, LEASE)
    assert (await store.get_run(NS, "t")).status == RunStatus.TERMINATED
    assert (await store.get_run(NS, "a")).status == RunStatus.RUNNING


async def test_continue_as_new_starts_the_new_run_with_the_signals_not_taken(
    store: Store,
) -> None:
    old = await start(store, "wf")
    task = await claim_one(store)
    await store.signal_run(NS, old.run_id, "s", "late-1")  # arrived after the task began
    new_run = child_run("wf", args=[2])
    commit = WorkflowCommit(
        events=[("WorkflowContinuedAsNew", {"args": [2], "new_run_id": new_run.run_id})],
        close=RunClose(RunStatus.CONTINUED_AS_NEW),
        continue_as_new=ContinueAsNew(new_run, [("s", {"n": 1e300})], after_seq=1),
    )
    result = await store.complete_workflow_task(task, commit, LEASE)
    assert result.next_task is None
    closed = await store.get_run(NS, "wf", old.run_id)
    assert closed.status == RunStatus.CONTINUED_AS_NEW
    current = await store.get_run(NS, "wf")
    assert current.run_id == new_run.run_id and current.status == RunStatus.RUNNING
    events = await store.read_history(NS, new_run.run_id)
    assert types(events) == ["WorkflowStarted", "SignalReceived", "SignalReceived"]
    assert events[0].attrs == new_run.started
    assert [e.attrs["payload"] for e in events[1:]] == [{"n": 1e300}, "late-1"]
    assert (await claim_one(store)).run_id == new_run.run_id


async def test_a_continued_child_keeps_its_parent(store: Store) -> None:
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_one(store), start_children(("kid", 1, "terminate")), LEASE
    )
    first = await store.get_run(NS, "kid")
    second = child_run("kid")
    commit = WorkflowCommit(
        events=[("WorkflowContinuedAsNew", {"args": []})],
        close=RunClose(RunStatus.CONTINUED_AS_NEW),
        continue_as_new=ContinueAsNew(second),
    )
    await store.complete_workflow_task(await claim_run(store, first.run_id), commit, LEASE)
    assert types(await store.read_history(NS, parent.run_id))[-1] == "ChildWorkflowStarted"
    await store.complete_workflow_task(
        await claim_run(store, second.run_id), close(RunStatus.COMPLETED, "done"), LEASE
    )
    events = await store.read_history(NS, parent.run_id)
    assert events[-1].type == "ChildWorkflowCompleted"
    assert events[-1].attrs == {"step": 1, "result": "done"}
