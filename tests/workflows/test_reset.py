"""Reset end to end on every store: a new run from a point of a run's history goes on
with the code of today, re-running only what came after the point."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import Event, EventType


def seq_of(events: list[Event], event_type: str, step: int) -> int:
    return next(e.seq for e in events if e.type == event_type and e.attrs.get("step") == step)


def steps_app(make_app: AppFactory) -> tuple[tether.App, Counter[str], Any]:
    """An app whose workflow runs steps a, b, c; ``ran`` counts executions."""
    app = make_app()
    ran: Counter[str] = Counter()

    @app.activity
    async def step(name: str) -> str:
        ran[name] += 1
        return name.upper()

    @app.workflow
    async def three(ctx: tether.Context) -> list[str]:
        return [await ctx.activity(step, n) for n in "abc"]

    return app, ran, three


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_reset_of_a_completed_run_reruns_only_the_steps_after_the_point(
    make_app: AppFactory, cache_size: int
) -> None:
    app, ran, three = steps_app(make_app)
    async with app, app.worker(cache_size=cache_size):
        handle = await app.client.start(three, id="three")
        assert await handle.result(timeout=30) == ["A", "B", "C"]
        old = await handle.history()
        new_id = await handle.reset("step:2", reason="redo b and c")
        assert await app.client.get_handle("three", new_id).result(timeout=30) == ["A", "B", "C"]
        assert await app.client.get_handle("three").result(timeout=30) == ["A", "B", "C"]
        new = await app.client.get_handle("three", new_id).history()
        before = await app.client.get_handle("three", handle.run_id).describe()
    assert ran == {"a": 1, "b": 2, "c": 2}
    point = seq_of(old, EventType.ACTIVITY_COMPLETED, 1)
    assert [e.to_dict() for e in new[:point]] == [e.to_dict() for e in old[:point]]
    marker = new[point]
    assert marker.type == EventType.WORKFLOW_RESET
    assert marker.attrs["base_run_id"] == handle.run_id and marker.attrs["seq"] == point
    assert marker.attrs["reason"] == "redo b and c" and marker.attrs["identity"] == "client"
    assert marker.attrs["terminated_run_id"] is None
    # The completed run is left exactly as it was.
    assert before.status == "completed" and before.history_length == len(old)
    assert new[-1].type == EventType.WORKFLOW_COMPLETED
    tether.testing.replay(three, new)


async def test_reset_of_a_failed_run_to_its_first_failed_activity_runs_it_with_fixed_code(
    make_app: AppFactory,
) -> None:
    app = make_app()
    ran: Counter[str] = Counter()
    broken = {"charge": True}

    @app.activity
    async def act(name: str) -> str:
        ran[name] += 1
        if broken.get(name):
            raise tether.ApplicationError(f"{name} is broken", type="Bug", non_retryable=True)
        return name

    @app.workflow
    async def order(ctx: tether.Context) -> list[str]:
        return [await ctx.activity(act, n) for n in ("reserve", "charge", "ship")]

    async with app, app.worker():
        handle = await app.client.start(order, id="order")
        with pytest.raises(tether.WorkflowFailed):
            await handle.result(timeout=30)
        broken.clear()  # the fix is deployed
        new_id = await app.client.reset("order", "first_failed_activity", reason="bug fixed")
        result = await app.client.get_handle("order", new_id).result(timeout=30)
    assert result == ["reserve", "charge", "ship"]
    assert ran == {"reserve": 1, "charge": 2, "ship": 1}


@pytest.mark.parametrize("reapply", [True, False], ids=["reapply", "no-reapply"])
async def test_reset_of_a_running_run_terminates_it_and_reapplies_its_signals(
    make_app: AppFactory, reapply: bool
) -> None:
    app = make_app()
    ran: Counter[str] = Counter()

    @app.activity
    async def act(name: str) -> str:
        ran[name] += 1
        return name

    @app.workflow
    async def inbox(ctx: tether.Context) -> list[Any]:
        a = await ctx.activity(act, "a")
        first = await ctx.wait_signal("msg")
        b = await ctx.activity(act, "b")
        second = await ctx.wait_signal("msg")
        return [a, first, b, second]

    async with app, app.worker():
        handle = await app.client.start(inbox, id="inbox")

        def completed(count: int) -> Any:
            async def probe() -> list[Event] | None:
                events = await handle.history()
                done = [e for e in events if e.type == EventType.ACTIVITY_COMPLETED]
                return events if len(done) == count else None

            return probe

        await eventually(completed(1))
        await handle.signal("msg", 1)  # after the point: reapplied, or not
        old = await eventually(completed(2))
        point = seq_of(old, EventType.ACTIVITY_COMPLETED, 1)
        new_id = await handle.reset(point, reason="again", reapply_signals=reapply)
        replaced = await app.client.get_handle("inbox", handle.run_id).describe()
        ended = (await app.client.get_handle("inbox", handle.run_id).history())[-1]
        latest = app.client.get_handle("inbox")
        if not reapply:
            await latest.signal("msg", 3)
        await latest.signal("msg", 4)
        result = await latest.result(timeout=30)
        # A handle on the replaced run follows the reset to the run that goes on.
        assert await handle.result(timeout=30) == result
        new = await app.client.get_handle("inbox", new_id).history()
    assert replaced.status == "terminated"
    assert ended.type == EventType.WORKFLOW_TERMINATED
    assert ended.attrs == {"reason": "reset: again", "identity": "client", "new_run_id": new_id}
    assert "reset" in (replaced.failure or {}).get("message", "")
    marker = new[point]
    assert marker.type == EventType.WORKFLOW_RESET
    assert marker.attrs["terminated_run_id"] == handle.run_id
    assert marker.attrs["signals"] == (1 if reapply else 0)
    assert result == (["a", 1, "b", 4] if reapply else ["a", 3, "b", 4])
    assert ran == {"a": 1, "b": 2}


async def test_reset_into_a_gather_runs_the_pending_branch_again(make_app: AppFactory) -> None:
    app = make_app()
    ran: Counter[str] = Counter()
    gate = asyncio.Event()

    @app.activity
    async def act(name: str) -> str:
        ran[name] += 1
        if name == "slow" and ran[name] == 1:
            await gate.wait()  # the old run's attempt, left hanging
        return name

    @app.workflow
    async def fan(ctx: tether.Context) -> list[str]:
        both = await ctx.gather(ctx.activity(act, "fast"), ctx.activity(act, "slow"))
        return [*both, await ctx.activity(act, "after")]

    async with app, app.worker():
        handle = await app.client.start(fan, id="fan")

        async def fast_done() -> list[Event] | None:
            events = await handle.history()
            return events if any(e.type == EventType.ACTIVITY_COMPLETED for e in events) else None

        old = await eventually(fast_done)
        point = seq_of(old, EventType.ACTIVITY_COMPLETED, 1)
        new_id = await handle.reset(point, reason="unstick")
        result = await app.client.get_handle("fan", new_id).result(timeout=30)
        gate.set()
        new = await app.client.get_handle("fan", new_id).history()
    assert result == ["fast", "slow", "after"]
    assert ran == {"fast": 1, "slow": 2, "after": 1}
    tether.testing.replay(fan, new)


async def test_a_timer_pending_at_the_point_is_created_again(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def nap(ctx: tether.Context) -> str:
        await ctx.sleep(0.3)
        return await ctx.wait_signal("go")

    async with app, app.worker():
        handle = await app.client.start(nap, id="nap")

        async def slept() -> list[Event] | None:
            events = await handle.history()
            return events if any(e.type == EventType.TIMER_FIRED for e in events) else None

        started = seq_of(await eventually(slept), EventType.TIMER_STARTED, 1)
        new_id = await handle.reset(started, reason="sleep again")
        new = app.client.get_handle("nap", new_id)

        async def fired_again() -> bool:
            return any(e.type == EventType.TIMER_FIRED for e in await new.history())

        await eventually(fired_again)
        await new.signal("go", "done")
        assert await new.result(timeout=30) == "done"


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_code_after_the_point_reads_the_time_of_the_reset_on_every_replay(
    make_app: AppFactory, cache_size: int
) -> None:
    app = make_app()

    @app.activity
    async def echo(value: Any) -> Any:
        return value

    @app.workflow
    async def clock(ctx: tether.Context) -> float:
        await ctx.activity(echo, "first")
        now = ctx.now().timestamp()
        await ctx.activity(echo, now)  # recorded; the result is computed on a later replay
        return now

    async with app, app.worker(cache_size=cache_size):
        handle = await app.client.start(clock, id="clock")
        old_time = await handle.result(timeout=30)
        old = await handle.history()
        new_id = await handle.reset(seq_of(old, EventType.ACTIVITY_COMPLETED, 1))
        new_handle = app.client.get_handle("clock", new_id)
        new_time = await new_handle.result(timeout=30)
        new = await new_handle.history()
    marker = next(e for e in new if e.type == EventType.WORKFLOW_RESET)
    assert new_time == pytest.approx(marker.ts, abs=1e-5) and new_time > old_time
    assert seq_of(new, EventType.ACTIVITY_SCHEDULED, 2) > marker.seq
    assert next(e for e in new if e.attrs.get("step") == 2).attrs["args"] == [new_time]
    tether.testing.replay(clock, new)


async def test_resetting_a_run_that_continued_as_new_resets_that_run_only(
    make_app: AppFactory,
) -> None:
    app = make_app()
    ran: Counter[int] = Counter()

    @app.activity
    async def work(generation: int) -> int:
        ran[generation] += 1
        return generation

    @app.workflow
    async def chain(ctx: tether.Context, generation: int) -> int:
        await ctx.activity(work, generation)
        if generation < 2:
            ctx.continue_as_new(generation + 1)
        return int(await ctx.wait_signal("stop"))

    async with app, app.worker():
        handle = await app.client.start(chain, 0, id="chain")

        async def last_waiting() -> Any:
            run = await app.client.get_handle("chain").describe()
            events = await app.client.get_handle("chain", run.run_id).history()
            done = any(e.type == EventType.ACTIVITY_COMPLETED for e in events)
            return run if run.run_id != handle.run_id and done and ran[2] else None

        await eventually(last_waiting)
        runs = {r.run_id: r for r in (await app.client.list()).runs}
        first, second = sorted(
            (r for r in runs.values() if r.status == "continued_as_new"), key=lambda r: r.created_at
        )
        current = next(r for r in runs.values() if r.status == "running")
        new_id = await app.client.reset("chain", 1, run_id=second.run_id, reason="from gen 1")

        async def next_waiting() -> Any:
            latest = await app.client.get_handle("chain").describe()
            return latest if latest.run_id not in (*runs, new_id) and ran[2] == 2 else None

        latest = await eventually(next_waiting)
        await app.client.get_handle("chain").signal("stop", 7)
        assert await app.client.get_handle("chain").result(timeout=30) == 7
        after = {r.run_id: r for r in (await app.client.list()).runs}
    # Generation 1 ran again from the reset run, which continued as new into generation 2.
    assert ran == {0: 1, 1: 2, 2: 2}
    assert after[first.run_id] == runs[first.run_id]
    assert after[second.run_id] == runs[second.run_id]
    assert after[current.run_id].status == "terminated"
    assert after[new_id].status == "continued_as_new"
    assert after[latest.run_id].status == "completed"


async def test_bad_reset_points_are_refused_and_change_nothing(make_app: AppFactory) -> None:
    app, _, three = steps_app(make_app)

    @app.workflow
    async def parent(ctx: tether.Context) -> str:
        await ctx.child(waiter, id="kid")
        return "done"

    @app.workflow
    async def waiter(ctx: tether.Context) -> str:
        return str(await ctx.wait_signal("go"))

    async with app, app.worker():
        handle = await app.client.start(three, id="three")
        await handle.result(timeout=30)
        events = await handle.history()
        started = seq_of(events, EventType.ACTIVITY_STARTED, 1)
        bad: list[Any] = [0, len(events) + 1, len(events), started, True, 2.5, "soon", "step:9"]
        for point in bad:
            with pytest.raises(tether.InvalidArgument) as info:
                await handle.reset(point)
            assert info.value.code == "invalid_argument"
        with pytest.raises(tether.InvalidArgument, match="reason must be a string"):
            await handle.reset(1, reason=3)  # type: ignore[arg-type]
        with pytest.raises(tether.InvalidArgument, match="reapply_signals"):
            await handle.reset(1, reapply_signals="yes")  # type: ignore[arg-type]
        with pytest.raises(tether.InvalidArgument, match="closes the run"):
            await handle.reset(len(events))
        with pytest.raises(tether.InvalidArgument, match="none of its activities failed"):
            await handle.reset("first_failed_activity")
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.reset("nobody", 1)
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.reset("three", 1, namespace="elsewhere")
        # A child started and not closed at the point: its outcome belongs to the old run.
        p = await app.client.start(parent, id="parent")

        async def child_started() -> list[Event] | None:
            history = await p.history()
            return history if len(history) >= 2 else None

        history = await eventually(child_started)
        with pytest.raises(tether.InvalidArgument, match="child run 'kid'"):
            await p.reset(history[-1].seq)
        runs = (await app.client.list()).runs
        assert [r.status for r in runs if r.workflow_id == "three"] == ["completed"]
        assert len(runs) == 3  # three, parent, kid: no run was made by a refused reset
        await app.client.get_handle("kid").signal("go", 1)
        assert await p.result(timeout=30) == "done"


async def test_reset_stays_in_its_namespace(make_app: AppFactory) -> None:
    app, ran, three = steps_app(make_app)
    async with app:
        await app.client.namespaces.create("acme")
        await app.client.namespaces.create("globex")
    async with app, app.worker(namespaces=["acme", "globex"]):
        a = await app.client.start(three, id="same", namespace="acme")
        g = await app.client.start(three, id="same", namespace="globex")
        await a.result(timeout=30)
        await g.result(timeout=30)
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.reset("same", 1, run_id=a.run_id, namespace="globex")
        new_id = await app.client.reset("same", "step:3", namespace="acme")
        await app.client.get_handle("same", new_id, namespace="acme").result(timeout=30)
        acme = (await app.client.list(namespace="acme")).runs
        globex = (await app.client.list(namespace="globex")).runs
    assert sorted(r.run_id for r in acme) == sorted([a.run_id or "", new_id])
    assert [r.run_id for r in globex] == [g.run_id]
    assert ran == {"a": 2, "b": 2, "c": 3}


async def test_a_run_stuck_on_changed_code_goes_on_after_a_reset(make_app: AppFactory) -> None:
    app = make_app()
    ran: Counter[str] = Counter()
    version = {"deployed": 1}

    @app.activity
    async def first() -> str:
        ran["first"] += 1
        return "first"

    @app.activity
    async def old_tool() -> str:
        ran["old_tool"] += 1
        return "old"

    @app.activity
    async def new_tool() -> str:
        ran["new_tool"] += 1
        return "new"

    @app.workflow
    async def agent(ctx: tether.Context) -> list[Any]:
        one = await ctx.activity(first)
        two = await ctx.activity(old_tool if version["deployed"] == 1 else new_tool)
        return [one, two, await ctx.wait_signal("go")]

    async with app, app.worker(cache_size=0, stuck_retry=0.05):
        handle = await app.client.start(agent, id="agent")

        async def waiting() -> bool:
            events = await handle.history()
            return sum(e.type == EventType.ACTIVITY_COMPLETED for e in events) == 2

        await eventually(waiting)
        version["deployed"] = 2  # a change that no longer replays the old history
        await handle.signal("go", "now")

        async def stuck() -> str | None:
            return (await handle.describe()).stuck

        assert "step 2" in await eventually(stuck)
        new_id = await handle.reset("step:2", reason="replace the tool")
        result = await app.client.get_handle("agent", new_id).result(timeout=30)
    assert result == ["first", "new", "now"]
    assert ran == {"first": 1, "old_tool": 1, "new_tool": 1}
