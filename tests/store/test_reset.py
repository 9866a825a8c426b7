"""Reset in the store: one transaction that copies a prefix of a run's history into a
new run, recreates the steps pending at the point and terminates the open run."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tether.errors import InvalidArgument, WorkflowNotFound
from tether.store import (
    NewActivity,
    ResetRun,
    RunClose,
    RunStatus,
    Store,
    WorkflowCommit,
    plan_reset,
)

from .conftest import Harness
from .helpers import LEASE, NS, OWNER, Q, claim_one, start, types
from .test_children import claim_run, start_children


def options(queue: str = Q) -> dict[str, object]:
    return {"task_queue": queue, "retry": {"max_attempts": 3}}


def steps_and_timer(fire_at: float) -> WorkflowCommit:
    """Schedule activities 1 (queue Q) and 2 (queue "side") and a timer 3."""
    acts = [
        NewActivity(1, "a", Q, [1], options()),
        NewActivity(2, "b", "side", [2], options("side")),
    ]
    events = [
        ("ActivityScheduled", {"step": a.step, "name": a.name, "args": a.args,
                               "options": a.options, "wt": 1})
        for a in acts
    ]  # fmt: skip
    events.append(("TimerStarted", {"step": 3, "duration": 60.0, "fire_at": fire_at, "wt": 1}))
    return WorkflowCommit(events=events, activities=acts, timers=[(3, fire_at)])


def reset_of(run_id: str, seq: int, **kw: object) -> ResetRun:
    defaults: dict[str, object] = {"reason": "why", "identity": "test"}
    return ResetRun(NS, run_id, seq, uuid.uuid4().hex, **{**defaults, **kw})  # type: ignore[arg-type]


async def test_reset_of_an_open_run_copies_the_prefix_and_recreates_what_was_pending(
    store: Store,
) -> None:
    old = await start(store, "wf")
    fire_at = time.time() - 1  # due: it fires as soon as the new run has it
    await store.complete_workflow_task(await claim_one(store), steps_and_timer(fire_at), LEASE)
    await store.signal_run(NS, old.run_id, "msg", {"n": 1e300})  # seq 5: after the point
    before = await store.read_history(NS, old.run_id)
    plan = plan_reset(
        NS, old.run_id, before, 4, new_run_id=uuid.uuid4().hex, reason="stuck",
        identity="ops", reapply_signals=True,
    )  # fmt: skip
    assert [a.step for a in plan.activities] == [1, 2] and plan.timers == [(3, fire_at)]
    new = await store.reset_run(plan)
    assert new.run_id == plan.new_run_id and new.workflow_id == "wf"
    assert new.status == RunStatus.RUNNING and new.history_length == 6
    # The old run: terminated, naming the new run; its tasks are gone.
    replaced = await store.get_run(NS, "", old.run_id)
    assert replaced.status == RunStatus.TERMINATED
    ended = (await store.read_history(NS, old.run_id))[-1]
    assert ended.type == "WorkflowTerminated"
    assert ended.attrs == {"reason": "reset: stuck", "identity": "ops", "new_run_id": new.run_id}
    # The new run: the prefix as it was, the marker, the signal after the point.
    events = await store.read_history(NS, new.run_id)
    assert [e.to_dict() for e in events[:4]] == [e.to_dict() for e in before[:4]]
    assert types(events)[4:] == ["WorkflowReset", "SignalReceived"]
    assert events[4].attrs == {
        "base_run_id": old.run_id, "seq": 4, "reason": "stuck", "identity": "ops",
        "terminated_run_id": old.run_id, "signals": 1,
    }  # fmt: skip
    assert events[5].attrs == {"name": "msg", "payload": {"n": 1e300}}
    # Its workflow task, its two activities (on their queues) and its timer are there.
    assert (await claim_one(store)).run_id == new.run_id
    main = await store.claim_activity_tasks(OWNER, [NS], [Q], 10, LEASE)
    side = await store.claim_activity_tasks(OWNER, [NS], ["side"], 10, LEASE)
    assert [(t.run_id, t.step, t.name, t.args, t.attempt) for t in main + side] == [
        (new.run_id, 1, "a", [1], 1),
        (new.run_id, 2, "b", [2], 1),
    ]
    assert main[0].options == options()
    assert await store.fire_timers([NS], [Q], 10) == 1
    fired = (await store.read_history(NS, new.run_id))[-1]
    assert fired.type == "TimerFired" and fired.attrs == {"step": 3}


async def test_reset_of_a_closed_run_leaves_it_as_it_was(store: Store) -> None:
    old = await start(store, "wf")
    await store.signal_run(NS, old.run_id, "msg", 1)
    await store.complete_workflow_task(
        await claim_one(store),
        WorkflowCommit(events=[("WorkflowCompleted", {"result": 1})],
                       close=RunClose(RunStatus.COMPLETED, 1)),
        LEASE,
    )  # fmt: skip
    closed = await store.get_run(NS, "wf")
    new = await store.reset_run(reset_of(old.run_id, 1, reapply_signals=False))
    assert await store.get_run(NS, "", old.run_id) == closed
    events = await store.read_history(NS, new.run_id)
    assert types(events) == ["WorkflowStarted", "WorkflowReset"]
    assert events[1].attrs["terminated_run_id"] is None and events[1].attrs["signals"] == 0
    assert (await claim_one(store)).run_id == new.run_id


async def test_reset_stays_in_its_namespace(store: Store) -> None:
    await store.ensure_namespace("other")
    mine = await start(store, "wf")
    theirs = await start(store, "wf", namespace="other")
    with pytest.raises(WorkflowNotFound):
        await store.reset_run(ResetRun("other", mine.run_id, 1, uuid.uuid4().hex, "r", "test"))
    with pytest.raises(WorkflowNotFound):
        await store.reset_run(reset_of(theirs.run_id, 1))
    assert (await store.get_run("other", "wf")).run_id == theirs.run_id
    assert (await store.get_run(NS, "wf")).run_id == mine.run_id
    assert (await store.get_run(NS, "wf")).status == RunStatus.RUNNING
    assert (await store.get_run("other", "wf")).history_length == 1


async def test_a_point_past_the_history_is_refused_in_the_transaction(store: Store) -> None:
    run = await start(store, "wf")
    with pytest.raises(InvalidArgument, match=r"event 9 is not in its history \(1\.\.1\)"):
        await store.reset_run(reset_of(run.run_id, 9))
    assert (await store.get_run(NS, "wf")).run_id == run.run_id
    assert (await store.get_run(NS, "wf")).status == RunStatus.RUNNING


async def test_a_reset_child_keeps_its_parent_which_sees_one_child(store: Store) -> None:
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_one(store), start_children(("kid", 1, "terminate")), LEASE
    )
    kid = await store.get_run(NS, "kid")
    new = await store.reset_run(reset_of(kid.run_id, 1))
    # The parent is not told that its child was terminated: the new run goes on for it.
    assert types(await store.read_history(NS, parent.run_id))[-1] == "ChildWorkflowStarted"
    await store.complete_workflow_task(
        await claim_run(store, new.run_id),
        WorkflowCommit(events=[("WorkflowCompleted", {"result": "done"})],
                       close=RunClose(RunStatus.COMPLETED, "done")),
        LEASE,
    )  # fmt: skip
    events = await store.read_history(NS, parent.run_id)
    assert events[-1].type == "ChildWorkflowCompleted"
    assert events[-1].attrs == {"step": 1, "result": "done"}


async def test_resetting_a_parent_applies_the_close_policy_to_its_children(store: Store) -> None:
    parent = await start(store, "parent")
    await store.complete_workflow_task(
        await claim_one(store), start_children(("kid", 1, "terminate")), LEASE
    )
    await store.reset_run(reset_of(parent.run_id, 1))
    assert (await store.get_run(NS, "kid")).status == RunStatus.TERMINATED


async def test_steps_pending_under_a_cancel_request_are_asked_to_stop_again(store: Store) -> None:
    old = await start(store, "wf")
    await store.complete_workflow_task(await claim_one(store), steps_and_timer(1e12), LEASE)
    await store.request_cancel(NS, old.run_id, reason="enough", identity="test")
    events = await store.read_history(NS, old.run_id)
    plan = plan_reset(
        NS, old.run_id, events, len(events), new_run_id=uuid.uuid4().hex, reason="r",
        identity="test", reapply_signals=True,
    )  # fmt: skip
    assert plan.cancel_requested
    await store.reset_run(plan)
    (task,) = await store.claim_activity_tasks(OWNER, [NS], [Q], 10, LEASE)
    assert await store.heartbeat_activity(task, None, LEASE) is True


async def test_concurrent_resets_leave_one_open_run_and_a_chain(harness: Harness) -> None:
    stores = [await harness.open(), await harness.open()]
    old = await start(stores[0], "wf")
    resets = [reset_of(old.run_id, 1) for _ in range(4)]
    await asyncio.gather(*(stores[i % 2].reset_run(r) for i, r in enumerate(resets)))
    runs = [await stores[0].get_run(NS, "", r.new_run_id) for r in resets]
    assert sorted(r.status for r in runs) == [RunStatus.RUNNING] + [RunStatus.TERMINATED] * 3
    # Each replaced run names the run that replaced it; following them ends at the open one.
    successor = {}
    for run in [await stores[0].get_run(NS, "", old.run_id), *runs]:
        if run.status == RunStatus.TERMINATED:
            ended = (await stores[0].read_history(NS, run.run_id))[-1]
            successor[run.run_id] = ended.attrs["new_run_id"]
    current = old.run_id
    while current in successor:
        current = successor.pop(current)
    assert not successor and (await stores[0].get_run(NS, "wf")).run_id == current
