"""Writes issued together (in one turn of the event loop) are committed together on
every store: each one is applied or refused on its own, as if it had been alone.

On PostgreSQL they travel as one batch (``store/postgres/commits.py``); on SQLite the
writer thread groups them into one transaction. Either way a refused write (a lease
lost, a duplicate workflow id, an unknown namespace) must not take the others down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from tether.errors import (
    InvalidArgument,
    LeaseLost,
    NamespaceNotFound,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from tether.store import (
    ActivityOutcome,
    ActivityTask,
    NewActivity,
    RunClose,
    RunStatus,
    Store,
    WorkflowCommit,
    WorkflowTask,
)
from tether.store.postgres.commits import ADVANCE, INLINE_ITEMS, RESUME_AT_ONCE, START, GroupCommit

from .conftest import Harness
from .helpers import (
    LEASE,
    NS,
    OWNER,
    Q,
    claim_one,
    new_run,
    schedule,
    start,
    types,
    until_expired,
)

DONE = ActivityOutcome("ActivityCompleted", result=7)
N = 25


async def claimed_runs(store: Store, n: int, prefix: str) -> list[WorkflowTask]:
    """Start ``n`` runs and claim their first workflow tasks."""
    for i in range(n):
        await start(store, f"{prefix}-{i}")
    tasks = await store.claim_workflow_tasks(OWNER, [NS], [Q], n, LEASE)
    assert len(tasks) == n
    return tasks


async def claimed_activities(
    store: Store, n: int, prefix: str, lease: float = LEASE
) -> list[ActivityTask]:
    """Start ``n`` runs, each scheduling one activity (step 1), and claim those."""
    for task in await claimed_runs(store, n, prefix):
        await store.complete_workflow_task(task, schedule(1), LEASE)
    claimed = await store.claim_activity_tasks(OWNER, [NS], [Q], n, lease)
    assert len(claimed) == n
    return claimed


async def test_starts_together_are_refused_one_by_one(store: Store) -> None:
    await start(store, "taken")
    runs = [new_run(f"new-{i}") for i in range(N)]
    runs.insert(7, new_run("taken"))
    runs.insert(15, new_run("lost", namespace="no-such-namespace"))
    outcomes = await asyncio.gather(*(store.start_run(r) for r in runs), return_exceptions=True)
    assert isinstance(outcomes[7], WorkflowAlreadyStarted)
    assert isinstance(outcomes[15], NamespaceNotFound)
    fine = [o for i, o in enumerate(outcomes) if i not in (7, 15)]
    assert all(not isinstance(o, BaseException) for o in fine), fine
    for run in runs[:7]:
        events = await store.read_history(NS, run.run_id)
        assert types(events) == ["WorkflowStarted"]
    claimed = await store.claim_workflow_tasks(OWNER, [NS], [Q], 100, LEASE)
    assert len(claimed) == N + 1  # the new runs and the run that had the id first


async def test_completions_together_fence_only_the_stale_one(store: Store) -> None:
    (stale,) = await claimed_runs(store, 1, "stale")
    others = await claimed_runs(store, N, "other")
    # The first task goes back and another worker takes it: its old token is stale.
    await store.release_workflow_task(stale, delay=0, error="")
    (fresh,) = await store.claim_workflow_tasks("b", [NS], [Q], 5, LEASE)
    assert fresh.run_id == stale.run_id
    close = WorkflowCommit(
        events=[("WorkflowCompleted", {"result": 1})], close=RunClose(RunStatus.COMPLETED, 1)
    )
    outcomes = await asyncio.gather(
        *(store.complete_workflow_task(t, close, LEASE) for t in [*others, stale]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[-1], LeaseLost)
    assert all(not isinstance(o, BaseException) for o in outcomes[:-1]), outcomes
    for t in others:
        assert (await store.get_run(NS, "", t.run_id)).status == RunStatus.COMPLETED
    assert (await store.get_run(NS, "", stale.run_id)).status == RunStatus.RUNNING
    assert types(await store.read_history(NS, stale.run_id)) == ["WorkflowStarted"]
    await store.complete_workflow_task(fresh, close, LEASE)


async def test_completions_together_set_and_cancel_only_their_own_timers(store: Store) -> None:
    """A batch mixing writes with timers and writes without (which the PostgreSQL store
    sends as NULL, not as empty arrays) gives each run exactly its own timers, and a
    batch of cancels removes exactly the timers named."""
    tasks = await claimed_runs(store, N, "timers")
    due, later = time.time() - 1, time.time() + 3600
    setters = {tasks[i].run_id for i in range(0, N, 2)}
    started = WorkflowCommit(
        events=[("TimerStarted", {"step": 1, "fire_at": due}),
                ("TimerStarted", {"step": 2, "fire_at": later})],
        timers=[(1, due), (2, later)],
    )  # fmt: skip
    marker = WorkflowCommit(events=[("MarkerRecorded", {"step": 1})])
    await asyncio.gather(
        *(
            store.complete_workflow_task(t, started if t.run_id in setters else marker, LEASE)
            for t in tasks
        )
    )
    assert await store.fire_timers([NS], [Q], 10 * N) == len(setters)
    fired = await store.claim_workflow_tasks(OWNER, [NS], [Q], N, LEASE)
    assert {t.run_id for t in fired} == setters
    cancel = WorkflowCommit(events=[("TimerCanceled", {"step": 2})], cancel_timers=[2])
    await asyncio.gather(*(store.complete_workflow_task(t, cancel, LEASE) for t in fired))
    assert await store.next_due([NS], [Q]) is None  # the later timers went with the cancels
    for task in tasks:
        history = types(await store.read_history(NS, task.run_id))
        if task.run_id in setters:
            assert history == [
                "WorkflowStarted", "TimerStarted", "TimerStarted", "TimerFired", "TimerCanceled"
            ]  # fmt: skip
        else:
            assert history == ["WorkflowStarted", "MarkerRecorded"]


async def test_activity_outcomes_together_fence_only_the_expired_one(store: Store) -> None:
    acts = await claimed_activities(store, N, "other")
    (expired,) = await claimed_activities(store, 1, "expired", lease=0.2)
    await until_expired(store)  # the earliest lease is the short one
    close = WorkflowCommit(
        events=[("WorkflowCompleted", {"result": 7})], close=RunClose(RunStatus.COMPLETED, 7)
    )
    half = N // 2
    outcomes = await asyncio.gather(
        *(
            store.advance_after_activity(
                a, DONE, expected_seq=2, ts=time.time(), commit=close, lease=LEASE
            )
            for a in acts[:half]
        ),
        *(
            store.finish_activity(a, DONE, claim_for=None, local_queues=(), lease=LEASE)
            for a in acts[half:]
        ),
        store.advance_after_activity(
            expired, DONE, expected_seq=2, ts=time.time(), commit=close, lease=LEASE
        ),
        store.finish_activity(expired, DONE, claim_for=None, local_queues=(), lease=LEASE),
        return_exceptions=True,
    )
    assert isinstance(outcomes[-1], LeaseLost) and isinstance(outcomes[-2], LeaseLost)
    assert all(not isinstance(o, BaseException) for o in outcomes[:-2]), outcomes
    for a in acts[:half]:
        assert (await store.get_run(NS, "", a.run_id)).status == RunStatus.COMPLETED
    for a in acts[half:]:
        events = await store.read_history(NS, a.run_id, after_seq=2)
        assert types(events) == ["ActivityStarted", "ActivityCompleted"]
    assert types(await store.read_history(NS, expired.run_id, after_seq=2)) == []


async def test_activity_outcomes_together_apply_as_one_by_one(store: Store) -> None:
    """A batch mixing outcomes that apply, one whose run already has another outcome in
    the batch, and one whose history moved on: each gets what it would have alone, in
    the batch's order."""
    *plain, stale = await claimed_activities(store, 4, "plain")
    run = await start(store, "pair")
    await store.complete_workflow_task(await claim_one(store), schedule(1, 2), LEASE)
    first, second = await store.claim_activity_tasks(OWNER, [NS], [Q], 2, LEASE)
    assert first.run_id == second.run_id == run.run_id
    nxt = WorkflowCommit(
        events=[("ActivityScheduled", {"step": 3})],
        activities=[NewActivity(3, "next", Q, [], {})],
        claim_activities_for=OWNER,
        local_queues=[Q],
    )
    outcomes = await asyncio.gather(
        *(
            store.advance_after_activity(a, DONE, expected_seq=2, ts=1.0, commit=nxt, lease=LEASE)
            for a in plain
        ),
        store.advance_after_activity(first, DONE, expected_seq=3, ts=1.0, commit=nxt, lease=LEASE),
        store.advance_after_activity(second, DONE, expected_seq=3, ts=1.0, commit=nxt, lease=LEASE),
        store.advance_after_activity(  # its history ends at 2, not 9
            stale, DONE, expected_seq=9, ts=1.0, commit=nxt, lease=LEASE
        ),
    )
    *applied, applied_first, declined_second, declined_stale = outcomes
    for a, result in zip(plain, applied, strict=True):
        assert result is not None and result.last_seq == 5
        assert [x.step for x in result.activities] == [3]
        events = await store.read_history(NS, a.run_id, after_seq=2)
        assert types(events) == ["ActivityStarted", "ActivityCompleted", "ActivityScheduled"]
    assert applied_first is not None and applied_first.last_seq == 6
    assert declined_second is None and declined_stale is None
    assert types(await store.read_history(NS, stale.run_id, after_seq=2)) == []
    events = await store.read_history(NS, run.run_id, after_seq=3)
    assert types(events) == ["ActivityStarted", "ActivityCompleted", "ActivityScheduled"]
    # The declined outcome is still the worker's to report the slow way.
    await store.finish_activity(second, DONE, claim_for=None, local_queues=(), lease=LEASE)
    assert (await store.get_run(NS, "", run.run_id)).history_length == 8


async def test_outcomes_together_that_close_runs_take_only_those_runs_other_tasks(
    store: Store,
) -> None:
    """Runs each with two activities out: outcomes that close three of them, written
    together, delete those runs' other activity tasks; the run that goes on keeps its
    own, and can still beat on it."""
    tasks = await claimed_runs(store, 4, "closing")
    for task in tasks:
        await store.complete_workflow_task(task, schedule(1, 2), LEASE)
    claimed = await store.claim_activity_tasks(OWNER, [NS], [Q], 8, LEASE)
    by_run: dict[str, dict[int, ActivityTask]] = {}
    for a in claimed:
        by_run.setdefault(a.run_id, {})[a.step] = a
    assert len(by_run) == 4 and all(sorted(steps) == [1, 2] for steps in by_run.values())
    *closing, going_on = (by_run[t.run_id] for t in tasks)
    close = WorkflowCommit(events=[("WorkflowCompleted", {"result": 1})])
    close.close = RunClose(RunStatus.COMPLETED, 1)
    more = WorkflowCommit(events=[("TimerStarted", {"step": 3})], timers=[(3, time.time() + 60)])
    seq = (await store.get_run(NS, "", going_on[1].run_id)).history_length
    results = await asyncio.gather(
        *(
            store.advance_after_activity(
                run[1], DONE, expected_seq=seq, ts=1.0, commit=close, lease=LEASE
            )
            for run in closing
        ),
        store.advance_after_activity(
            going_on[1], DONE, expected_seq=seq, ts=1.0, commit=more, lease=LEASE
        ),
    )
    assert all(result is not None for result in results)
    for run in closing:
        assert (await store.get_run(NS, "", run[2].run_id)).status == RunStatus.COMPLETED
        with pytest.raises(LeaseLost):
            await store.heartbeat_activity(run[2], {"at": 1}, LEASE)
    assert await store.heartbeat_activity(going_on[2], {"at": 1}, LEASE) is False


@pytest.mark.parametrize("harness", ["postgres"], indirect=True)
async def test_postgres_text_with_nul_is_refused_alone_not_with_its_batch(
    harness: Harness,
) -> None:
    """PostgreSQL refuses a NUL character in any text parameter of a statement, so one
    such write (or read) in a batch would fail everyone's: it is refused before it
    joins one. A write sent alone gets the server's refusal, as the same error."""
    store = await harness.open()
    with pytest.raises(InvalidArgument, match="NUL"):
        await store.start_run(new_run("alone\x00id"))
    with pytest.raises(InvalidArgument, match="NUL"):
        await store.start_run(dataclasses.replace(new_run("alone"), workflow_type="fl\x00w"))
    await start(store, "after-alone")  # its connection went back to the pool, usable
    assert (await store.get_run(NS, "after-alone")).status is RunStatus.RUNNING
    runs = [new_run(f"ok-{i}") for i in range(N)]
    runs.insert(9, new_run("bad\x00id"))
    outcomes = await asyncio.gather(*(store.start_run(r) for r in runs), return_exceptions=True)
    assert isinstance(outcomes[9], InvalidArgument) and "NUL" in str(outcomes[9])
    assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 9)
    looks = [(NS, "", r.run_id) for r in runs if r.workflow_id != "bad\x00id"]
    looks.insert(4, (NS, "", "no\x00such"))
    found = await asyncio.gather(*(store.get_run(*k) for k in looks), return_exceptions=True)
    assert isinstance(found[4], WorkflowNotFound)
    assert all(not isinstance(f, BaseException) for i, f in enumerate(found) if i != 4)
    claimed = await store.claim_workflow_tasks(OWNER, [NS], [Q], 100, LEASE)
    assert len(claimed) == N + 1


@pytest.mark.parametrize("harness", ["postgres"], indirect=True)
async def test_postgres_sends_writes_of_one_turn_as_one_batch(harness: Harness) -> None:
    """After the first, which leaves at once (its namespace had no batch out)."""
    store = await harness.open()
    sent: list[int] = []
    send = store._commits._send  # type: ignore[attr-defined]

    async def counting(sql: str, ops: list[tuple[object, ...]]) -> object:
        sent.append(len(ops))
        return await send(sql, ops)

    store._commits._send = counting  # type: ignore[attr-defined]
    await asyncio.gather(*(store.start_run(new_run(f"b-{i}")) for i in range(50)))
    assert sent == [1, 49]
    # A write cancelled before its batch left is not written: the second write of a
    # namespace in one turn waits for the end of the turn, the first being out.
    run = new_run("cancelled")
    first = asyncio.ensure_future(store.start_run(new_run("first")))
    pending = asyncio.ensure_future(store.start_run(run))
    await asyncio.sleep(0)  # the first leaves; the second's batch runs at the next turn
    pending.cancel()
    await first
    await asyncio.gather(store.start_run(new_run("after")))
    assert sent == [1, 49, 1, 1]
    with pytest.raises(WorkflowNotFound):
        await store.get_run(NS, "cancelled")


async def test_postgres_batches_take_from_each_namespace_in_turn() -> None:
    """The batching policy alone (no server: ``send`` is where the batch would go)."""
    sent: list[list[str]] = []
    out, release = asyncio.Event(), asyncio.Event()

    async def send(sql: str, ops: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        sent.append([f"{op[0]}:{op[1]}" for op in ops])
        out.set()
        await release.wait()
        return [(None, None, None, op[1]) for op in ops]

    commits = GroupCommit(send, max_in_flight=1, max_ops=10)
    first = asyncio.ensure_future(commits.submit(START, ("a", "00")))
    await out.wait()  # the first batch leaves alone, at once
    backlog = [asyncio.ensure_future(commits.submit(START, ("a", f"{i:02}"))) for i in range(1, 31)]
    late = asyncio.ensure_future(commits.submit(START, ("b", "0")))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *backlog, late)
    assert sent[0] == ["a:00"]
    assert "b:0" in sent[1], sent  # not behind the thirty writes of a
    assert [op for batch in sent for op in batch if op.startswith("a")] == [
        f"a:{i:02}" for i in range(31)
    ]
    assert (await late)[3] == "0"


class HeldBatches:
    """A ``send`` that records each batch as ``namespace:run`` strings and holds the
    batches of ``held`` namespaces until ``release`` is set (no server)."""

    def __init__(self, held: set[str]) -> None:
        self.sent: list[list[str]] = []
        self.held = held
        self.release = asyncio.Event()
        self._out = asyncio.Condition()

    async def send(self, sql: str, ops: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        async with self._out:
            self.sent.append([f"{op[0]}:{op[1]}" for op in ops])
            self._out.notify_all()
        if ops[0][0] in self.held:
            await self.release.wait()
        return [(None, None, None, op[1]) for op in ops]

    async def batches_sent(self, n: int) -> None:
        async with self._out:
            await self._out.wait_for(lambda: len(self.sent) >= n)


async def test_postgres_a_flooding_namespace_leaves_a_batch_for_the_others() -> None:
    """A namespace fills at most ``lane_in_flight`` of the batches out; another
    namespace's write leaves at once on the spare one (no server, as above)."""
    batches = HeldBatches({"a"})
    sent = batches.sent
    commits = GroupCommit(batches.send, max_in_flight=2, lane_in_flight=1, max_ops=10)
    flood = [asyncio.ensure_future(commits.submit(START, ("a", f"{i:02}"))) for i in range(30)]
    await batches.batches_sent(1)
    await asyncio.sleep(0)  # the end of the turn: the others would gather for a batch now
    assert sent == [["a:00"]]  # one batch of a out (the first, alone), not two
    late = await commits.submit(START, ("b", "0"))  # while a's batch is still out
    assert late[3] == "0"
    assert sent[1] == ["b:0"]
    batches.release.set()
    await asyncio.gather(*flood)
    assert [op for batch in sent for op in batch if op.startswith("a")] == [
        f"a:{i:02}" for i in range(30)
    ]
    assert commits._lane_batches == {}  # type: ignore[attr-defined]


async def test_postgres_a_quiet_namespace_does_not_ride_in_a_floods_batch() -> None:
    """While several namespaces wait, the one with the most writes waiting goes in a
    batch after the others' (no server, as above)."""
    batches = HeldBatches({"a", "b"})
    sent = batches.sent
    commits = GroupCommit(batches.send, max_in_flight=3, max_ops=10)
    flood = [asyncio.ensure_future(commits.submit(START, ("a", f"{i:02}"))) for i in range(30)]
    quiet = asyncio.ensure_future(commits.submit(START, ("b", "0")))
    await batches.batches_sent(3)
    # Each namespace's first write leaves at once; then b's does not wait for a's.
    assert sent[:2] == [["a:00"], ["b:0"]], sent
    assert sent[2] == [f"a:{i:02}" for i in range(1, 11)]
    batches.release.set()
    await asyncio.gather(*flood, quiet)
    assert [op for batch in sent for op in batch if op.startswith("a")] == [
        f"a:{i:02}" for i in range(30)
    ]


async def test_postgres_callers_of_a_batch_resume_a_few_each_turn() -> None:
    """Sixty callers resumed in one turn of the loop would make every other task of the
    process wait that turn out (no server, as above)."""
    batches = HeldBatches({"a"})
    commits = GroupCommit(batches.send, max_in_flight=1, max_ops=30)
    first = asyncio.ensure_future(commits.submit(START, ("a", "first")))
    await batches.batches_sent(1)
    batch = [asyncio.ensure_future(commits.submit(START, ("a", f"{i:02}"))) for i in range(24)]
    batches.release.set()
    await first
    await batches.batches_sent(2)
    done_per_turn: list[int] = []
    while not all(f.done() for f in batch):
        await asyncio.sleep(0)
        done_per_turn.append(sum(f.done() for f in batch))
    steps = [b - a for a, b in zip([0, *done_per_turn], done_per_turn, strict=False)]
    assert max(steps) <= RESUME_AT_ONCE < len(batch), done_per_turn
    assert [(await f)[3] for f in batch] == [f"{i:02}" for i in range(24)]


def test_postgres_a_batch_of_one_calls_the_operations_own_function() -> None:
    op = ("ns", "run", *range(19))
    sql, params = ADVANCE.statement([op])
    assert "tether.advance_after_activity(" in sql and params == op
    sql, params = ADVANCE.statement([op, op])
    assert "advance_after_activities" in sql and params == ([op, op],)
    start = ("ns", "run", *range(22))
    sql, params = START.statement([start])
    assert "tether.start_run_one(" in sql and params == start


def test_postgres_small_arrays_go_as_scalars_in_a_write_alone() -> None:
    """A write alone sends each array of up to INLINE_ITEMS items as that many scalars,
    which its statement makes into the array again; longer arrays and NULLs go as they
    are, and a batch's operations are not touched."""
    events = (["A", "B", "C"], ["{}", "{}", "{}"])
    activity = ([3], ["step"], ["q"], ["[1]"], ["{}"], [None])
    op = ("ns", "run", 1, 1, 5, 0.0, 30.0, *events, *activity, None, None, None, *range(4))
    sql, params = ADVANCE.statement([op])
    assert "$7, ARRAY[$8::text, $9::text, $10::text], ARRAY[$11::text, $12::text, $13::text]" in sql
    assert "ARRAY[$14::integer], ARRAY[$15::text]" in sql and "ARRAY[$19::text], $20," in sql
    assert sql.endswith("$26) f")
    assert params == (*op[:7], "A", "B", "C", "{}", "{}", "{}", 3, "step", "q", "[1]", "{}", None,
                      *op[15:])  # fmt: skip
    many = [[i] * (INLINE_ITEMS + 1) for i in range(2)]
    plain = ("ns", "run", 1, 1, 5, 0.0, 30.0, *many, *(None,) * 11, True)
    sql, params = ADVANCE.statement([plain])
    assert "ARRAY[" not in sql and sql.endswith("$22) f") and params == plain
    # A long array beside a short one: only the short one goes inline.
    mixed = ("ns", "run", 1, 1, 5, 0.0, 30.0, many[0], ["a"] * INLINE_ITEMS, *(None,) * 10, True)
    sql, params = ADVANCE.statement([mixed])
    inline = ", ".join(f"${n}::text" for n in range(9, 9 + INLINE_ITEMS))
    assert f"$7, $8, ARRAY[{inline}], ${9 + INLINE_ITEMS}," in sql
    assert params == (*mixed[:8], *["a"] * INLINE_ITEMS, *mixed[9:])
    sql, params = ADVANCE.statement([op, op])
    assert "advance_after_activities" in sql and params == ([op[:21], op[:21]],)


async def test_postgres_callers_of_a_batch_cancelled_while_resuming_get_their_rows() -> None:
    """Their writes are done: a batch's task stopped midway (the process shutting down)
    resumes the rest at once rather than leave them waiting (no server, as above)."""
    batches = HeldBatches({"a"})
    commits = GroupCommit(batches.send, max_in_flight=1, max_ops=60)
    first = asyncio.ensure_future(commits.submit(START, ("a", "first")))
    await batches.batches_sent(1)  # the first leaves alone; the others gather behind it
    callers = [asyncio.ensure_future(commits.submit(START, ("a", f"{i:02}"))) for i in range(60)]
    batches.release.set()
    await first
    await asyncio.wait(callers, return_when=asyncio.FIRST_COMPLETED)
    (batch,) = commits._batches  # type: ignore[attr-defined]
    assert not batch.done()  # still resuming, a few a turn
    batch.cancel()
    # Without the rows, the rest would wait for ever: the bound is the failure.
    rows = await asyncio.wait_for(asyncio.gather(*callers), 5.0)
    assert [row[3] for row in rows] == [f"{i:02}" for i in range(60)]
