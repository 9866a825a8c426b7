"""Priority and fairness keys within a namespace: the order claims take tasks in."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from tether.store import ActivityOutcome, ActivityTask, NewActivity, NewRun, Store, WorkflowCommit

from .helpers import LEASE, NS, OWNER, Q, schedule


async def _start(store: Store, name: str, fairness: dict[str, Any] | None = None) -> None:
    started: dict[str, Any] = {"workflow_type": "flow", "args": [name], "task_queue": Q}
    if fairness is not None:
        started["fairness"] = fairness
    await store.start_run(
        NewRun(NS, f"wf-{name}", uuid.uuid4().hex, "flow", Q, started=started)
    )  # fmt: skip


async def _claim_order(store: Store, count: int) -> list[str]:
    """The workflow ids of the next ``count`` workflow tasks, claimed one at a time."""
    order = []
    for _ in range(count):
        (task,) = await store.claim_workflow_tasks(OWNER, [NS], [Q], 1, LEASE)
        order.append(task.workflow_id.removeprefix("wf-"))
    return order


def _name(task: ActivityTask) -> str:
    return task.workflow_id.removeprefix("wf-")


#: Levels of the runs of a test (None: no fairness set, the default level 2).
LEVELS = {"low": 7, "plain": None, "vip": 0}


def _key(key: str, weight: float = 1.0, priority: int = 2) -> dict[str, Any]:
    return {"priority": priority, "key": key, "weight": weight}


async def test_a_flooding_key_does_not_hold_back_another(store: Store) -> None:
    for i in range(40):
        await _start(store, f"a{i}", _key("a"))
    for i in range(4):
        await _start(store, f"b{i}", _key("b"))
    order = await _claim_order(store, 44)
    # FIFO would take b0 to b3 last; fair shares interleave them with a's backlog.
    assert [order.index(f"b{i}") for i in range(4)] == [2, 4, 6, 8]
    assert [o for o in order if o.startswith("a")] == [f"a{i}" for i in range(40)]


async def test_weights_share_capacity_in_proportion(store: Store) -> None:
    for i in range(30):
        await _start(store, f"a{i}", _key("a", weight=1))
        await _start(store, f"c{i}", _key("c", weight=2))
    first = await _claim_order(store, 30)
    assert 19 <= sum(o.startswith("c") for o in first) <= 20  # two to one


async def test_priority_levels_and_runs_without_a_key(store: Store) -> None:
    for i in range(5):
        await _start(store, f"keyed{i}", _key("a"))
    await _start(store, "plain")  # no key: FIFO, ahead of the keyed runs of its level
    await _start(store, "urgent", {"priority": 0, "key": None, "weight": 1.0})
    await _start(store, "later", {"priority": 7, "key": None, "weight": 1.0})
    order = await _claim_order(store, 8)
    assert order[:2] == ["urgent", "plain"] and order[-1] == "later"
    assert order[2:7] == [f"keyed{i}" for i in range(5)]


async def test_activities_inherit_their_runs_place(store: Store) -> None:
    await _start(store, "bulk", _key("bulk"))
    await _start(store, "vip", {"priority": 0, "key": None, "weight": 1.0})
    tasks = await store.claim_workflow_tasks(OWNER, [NS], [Q], 2, LEASE)
    by_id = {t.workflow_id: t for t in tasks}
    await store.complete_workflow_task(by_id["wf-bulk"], schedule(*range(1, 6)), LEASE)
    await store.complete_workflow_task(by_id["wf-vip"], schedule(1), LEASE)
    claimed = await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE)
    assert [t.workflow_id for t in claimed] == ["wf-vip"]


async def test_a_started_runs_first_activities_take_its_level(store: Store) -> None:
    """A start whose first workflow task already ran (eager execution) writes that
    task's activities with the start: they take the run's level, set by its fairness,
    or the default level without one (on PostgreSQL, two different paths)."""
    for name, level in LEVELS.items():  # low first: first come, first served
        started: dict[str, Any] = {"workflow_type": "flow", "args": [name], "task_queue": Q}
        if level is not None:
            started["fairness"] = {"priority": level, "key": None}
        run = NewRun(NS, f"wf-{name}", uuid.uuid4().hex, "flow", Q, started=started)
        _, result = await store.start_run_executed(run, time.time(), OWNER, LEASE, schedule(1))
        assert [a.step for a in result.activities] == []  # none leased: all to claim
    claimed = [(await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE))[0] for _ in LEVELS]
    assert [_name(t) for t in claimed] == ["vip", "plain", "low"]
    assert {t.step for t in claimed} == {1}


async def test_next_steps_keep_their_runs_level(store: Store) -> None:
    """A run's later tasks take its level too: those a workflow task's commit writes,
    and those an activity's outcome writes with the run's next step (the advances, here
    at once: on PostgreSQL one alone, the others in a batch)."""
    levels = {f"{name}{i}": level for name, level in LEVELS.items() for i in range(3)}
    for name, level in levels.items():
        await _start(store, name, None if level is None else {"priority": level, "key": None})
    claimed = await store.claim_workflow_tasks(OWNER, [NS], [Q], len(levels), LEASE)
    by_id = {t.workflow_id: t for t in claimed}
    for name in levels:  # low first: first come, first served would keep that order
        await store.complete_workflow_task(by_id[f"wf-{name}"], schedule(1), LEASE)
    first = [(await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE))[0] for _ in levels]
    expected = [0] * 3 + [None] * 3 + [7] * 3
    assert [levels[_name(t)] for t in first] == expected
    step = WorkflowCommit(
        events=[("ActivityScheduled", {"step": 2})], activities=[NewActivity(2, "next", Q, [], {})]
    )
    done = ActivityOutcome("ActivityCompleted", result=1)
    advanced = await asyncio.gather(
        *(
            store.advance_after_activity(
                t, done, expected_seq=2, ts=time.time(), commit=step, lease=LEASE
            )
            for t in sorted(first, key=lambda t: list(levels).index(_name(t)))  # low first
        )
    )
    assert all(a is not None for a in advanced)
    second = [(await store.claim_activity_tasks(OWNER, [NS], [Q], 1, LEASE))[0] for _ in levels]
    assert [levels[_name(t)] for t in second] == expected
    assert {t.step for t in second} == {2}


async def test_fairness_rows_go_with_their_namespace(store: Store) -> None:
    await store.create_namespace("tenant", {})
    started = {"workflow_type": "flow", "args": [], "task_queue": Q, "fairness": _key("cust-9")}
    run = NewRun("tenant", "wf", uuid.uuid4().hex, "flow", Q, started=started)
    await store.start_run(run)
    await store.delete_run("tenant", run.run_id)
    await store.start_run(NewRun("tenant", "wf2", uuid.uuid4().hex, "flow", Q, started=started))
    await store.delete_namespace("tenant")
    await store.create_namespace("tenant", {})
    # A new namespace of the same name starts with fresh fairness state.
    await store.start_run(NewRun("tenant", "wf3", uuid.uuid4().hex, "flow", Q, started=started))
    (task,) = await store.claim_workflow_tasks(OWNER, ["tenant"], [Q], 1, LEASE)
    assert task.workflow_id == "wf3"
