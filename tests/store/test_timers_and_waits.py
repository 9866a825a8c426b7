"""Timers, next_due, and the waits: wait_for_work and wait_closed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tether.store import RunClose, RunStatus, Store, WorkflowCommit

from .conftest import Harness
from .helpers import LEASE, NS, Q, claim_one, eventually, schedule, start, types


def sleep_commit(*timers: tuple[int, float]) -> WorkflowCommit:
    return WorkflowCommit(
        events=[("TimerStarted", {"step": s, "fire_at": at}) for s, at in timers],
        timers=list(timers),
    )


async def test_timer_fires_once_when_due(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    fire_at = time.time() + 0.3
    await store.complete_workflow_task(task, sleep_commit((1, fire_at)), LEASE)
    assert await store.fire_timers([NS], [Q], 10) == 0
    assert await store.next_due([NS], [Q]) == fire_at
    assert await store.next_due(["acme"], [Q]) is None
    assert await store.next_due([NS], ["other"]) is None
    assert await eventually(lambda: store.fire_timers([NS], [Q], 10)) == 1
    assert time.time() >= fire_at
    assert await store.fire_timers([NS], [Q], 10) == 0
    events = await store.read_history(NS, run.run_id)
    assert types(events)[-1] == "TimerFired" and events[-1].attrs == {"step": 1}
    assert (await claim_one(store)).run_id == run.run_id


async def test_concurrent_fire_timers_fire_each_exactly_once(harness: Harness) -> None:
    stores = [await harness.open(), await harness.open()]
    runs = [await start(stores[0]) for _ in range(12)]
    due = time.time() - 1
    for _ in runs:
        task = await claim_one(stores[0])
        await stores[0].complete_workflow_task(task, sleep_commit((1, due), (2, due)), LEASE)
    counts = await asyncio.gather(*(stores[i % 2].fire_timers([NS], [Q], 5) for i in range(16)))
    while sum(counts) < 24:  # a run busy in another call is left for the next round
        counts.append(await stores[0].fire_timers([NS], [Q], 100))
    assert sum(counts) == 24
    for run in runs:
        fired = [e for e in await stores[1].read_history(NS, run.run_id) if e.type == "TimerFired"]
        assert sorted(e.attrs["step"] for e in fired) == [1, 2]
    tasks = await stores[1].claim_workflow_tasks("w", [NS], [Q], 100, LEASE)
    assert sorted(t.run_id for t in tasks) == sorted(r.run_id for r in runs)


async def test_fire_timers_respects_namespace_and_queue(store: Store) -> None:
    await store.ensure_namespace("acme")
    await start(store, namespace="acme", queue="q2")
    task = await claim_one(store, namespace="acme", queue="q2")
    await store.complete_workflow_task(task, sleep_commit((1, time.time() - 1)), LEASE)
    assert await store.fire_timers([NS], ["q2"], 10) == 0
    assert await store.fire_timers(["acme"], [Q], 10) == 0
    assert await store.fire_timers(["acme"], ["q2"], 10) == 1


async def test_cancel_timers(store: Store) -> None:
    run = await start(store)
    task = await claim_one(store)
    soon = time.time() + 0.2
    await store.complete_workflow_task(task, sleep_commit((1, soon), (2, soon + 1e6)), LEASE)
    (act_task,) = await store.claim_workflow_tasks("w", [NS], [Q], 1, LEASE) or [None]
    assert act_task is None
    # A signal-like input: fire timer 1, then cancel timer 2 from the next task.
    await eventually(lambda: store.fire_timers([NS], [Q], 10))
    task = await claim_one(store)
    await store.complete_workflow_task(
        task, WorkflowCommit(events=[("TimerCanceled", {"step": 2})], cancel_timers=[2]), LEASE
    )
    assert await store.next_due([NS], [Q]) is None
    assert types(await store.read_history(NS, run.run_id))[-2:] == ["TimerFired", "TimerCanceled"]


async def test_next_due_covers_delayed_and_leased_tasks(store: Store) -> None:
    assert await store.next_due([NS], [Q]) is None
    run = await start(store)
    assert await store.next_due([NS], [Q]) == run.created_at
    task = await claim_one(store, lease=100)
    due = await store.next_due([NS], [Q])
    assert due is not None and due > time.time() + 50  # the lease end
    await store.complete_workflow_task(task, schedule(1, queue="gpu"), LEASE)
    assert await store.next_due([NS], [Q]) is None
    assert await store.next_due([NS], ["gpu", Q]) is not None


# The waits below run on a store whose fallback poll (PostgreSQL's, normally 5 s) is far
# longer than the bound they are given: only their own timeout can end them in time.
QUIET = 600.0


async def test_wait_for_work_times_out_without_work(harness: Harness) -> None:
    store = await harness.open(poll_interval=QUIET)
    began = time.monotonic()
    await asyncio.wait_for(store.wait_for_work([NS], [Q], 0.2), 10)
    assert time.monotonic() - began >= 0.15  # not before its timeout


async def test_wait_for_work_wakes_on_work_from_another_process(harness: Harness) -> None:
    waiter, writer = await harness.open(), await harness.open()
    waiting = asyncio.ensure_future(waiter.wait_for_work([NS], [Q], 30))
    await asyncio.sleep(0)  # the wait has begun: work from now on must wake it
    await start(writer)
    # Under PostgreSQL's fallback poll (5 s): only the notification can wake it.
    await asyncio.wait_for(waiting, 4)
    assert len(await waiter.claim_workflow_tasks("w", [NS], [Q], 10, LEASE)) == 1


async def test_wait_for_work_wakes_on_work_from_this_store(store: Store) -> None:
    waiting = asyncio.ensure_future(store.wait_for_work([NS], [Q], 30))
    await asyncio.sleep(0)
    await start(store)
    await asyncio.wait_for(waiting, 4)


async def _first_look(store: Store) -> None:
    """Return once ``store`` has read a run (wait_closed's look before it waits)."""
    looked = asyncio.Event()
    read = store.get_run

    async def traced(*args: Any, **kwargs: Any) -> Any:
        try:
            return await read(*args, **kwargs)
        finally:
            looked.set()

    store.get_run = traced  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(looked.wait(), 4)
    finally:
        del store.get_run  # the class's method again


async def test_wait_closed_wakes_on_close(harness: Harness) -> None:
    waiter, worker = await harness.open(), await harness.open()
    run = await start(worker)
    waiting = asyncio.ensure_future(waiter.wait_closed(NS, run.run_id, 30))
    await _first_look(waiter)  # it saw the run open: only a wake-up can end it now
    assert not waiting.done()
    task = await claim_one(worker)
    await worker.complete_workflow_task(
        task,
        WorkflowCommit(
            events=[("WorkflowCompleted", {"result": [1]})],
            close=RunClose(RunStatus.COMPLETED, [1]),
        ),
        LEASE,
    )
    closed = await asyncio.wait_for(waiting, 4)
    assert closed.status == RunStatus.COMPLETED and closed.result == [1]


async def test_wait_closed_wakes_on_terminate(harness: Harness) -> None:
    # Started by another store: this one looks at the run before it waits (a store may
    # skip the look for a run it started, see test_postgres.py).
    waiter, starter = await harness.open(), await harness.open()
    run = await start(starter)
    waiting = asyncio.ensure_future(waiter.wait_closed(NS, run.run_id, None))
    await _first_look(waiter)
    assert not waiting.done()
    await waiter.terminate_run(NS, run.run_id, reason="r", identity="i")
    assert (await asyncio.wait_for(waiting, 4)).status == RunStatus.TERMINATED


async def test_wait_closed_returns_the_open_run_on_timeout(harness: Harness) -> None:
    store = await harness.open(poll_interval=QUIET)
    run = await start(store)
    began = time.monotonic()
    got = await asyncio.wait_for(store.wait_closed(NS, run.run_id, 0.2), 10)
    assert got.status == RunStatus.RUNNING and time.monotonic() - began >= 0.15
    done = await store.terminate_run(NS, run.run_id, reason="r", identity="i")
    assert (await store.wait_closed(NS, run.run_id, 0)).closed_at == done.closed_at
