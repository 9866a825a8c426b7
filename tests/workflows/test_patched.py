"""Changing a workflow's code under running agents: ``ctx.patched`` and
``ctx.deprecate_patch``, on every store. Each "deployment" is an App with the same
workflow name on the same store; the previous one's worker is stopped first."""

from __future__ import annotations

import tether
from tests.conftest import AppFactory
from tests.store.helpers import eventually
from tether.history import EventType


def _app(make_app: AppFactory) -> tether.App:
    app = make_app()

    @app.activity
    async def net(x: int) -> str:
        return f"net {x}"

    @app.activity
    async def with_vat(x: int) -> str:
        return f"vat {x}"

    return app


def v1(make_app: AppFactory) -> tether.App:
    app = _app(make_app)

    @app.workflow(name="quote")
    async def quote(ctx: tether.Context, x: int) -> list[str]:
        first = await ctx.activity("net", x)
        await ctx.wait_signal("go")
        return [first, await ctx.activity("net", x + 1)]

    return app


def v2(make_app: AppFactory) -> tether.App:
    """The first step changes: runs from v1 passed it already, new runs take the new one."""
    app = _app(make_app)

    @app.workflow(name="quote")
    async def quote(ctx: tether.Context, x: int) -> list[str]:
        if ctx.patched("vat"):
            first = await ctx.activity("with_vat", x)
        else:
            first = await ctx.activity("net", x)
        await ctx.wait_signal("go")
        # Asked again, the answer is the run's first one.
        second = "with_vat" if ctx.patched("vat") else "net"
        return [first, await ctx.activity(second, x + 1)]

    return app


def v3(make_app: AppFactory) -> tether.App:
    """Every v1 run is gone: only the new path is left."""
    app = _app(make_app)

    @app.workflow(name="quote")
    async def quote(ctx: tether.Context, x: int) -> list[str]:
        ctx.deprecate_patch("vat")
        first = await ctx.activity("with_vat", x)
        await ctx.wait_signal("go")
        return [first, await ctx.activity("with_vat", x + 1)]

    return app


async def _until(handle: tether.WorkflowHandle[list[str]], name: str) -> None:
    """Until the run's history schedules the activity ``name``."""

    async def scheduled() -> bool:
        events = [e for e in await handle.history() if e.type == EventType.ACTIVITY_SCHEDULED]
        return any(e.attrs["name"] == name for e in events)

    await eventually(scheduled)


async def _left_waiting(
    app: tether.App, workflow_id: str, x: int, step: str, workflow: str = "quote"
) -> None:
    """Start a run on ``app``'s code; stop that deployment once the run scheduled ``step``."""
    async with app, app.worker():
        handle = await app.client.start(workflow, x, id=workflow_id)
        await _until(handle, step)


async def _patches(app: tether.App, workflow_id: str) -> list[str]:
    """The patch ids the run's history recorded."""
    history = await app.client.get_handle(workflow_id).history()
    return [e.attrs["patch_id"] for e in history if e.type == EventType.MARKER_RECORDED]


async def test_runs_from_before_a_patch_replay_their_old_path(make_app: AppFactory) -> None:
    await _left_waiting(v1(make_app), "before", 1, "net")
    new = v2(make_app)
    async with new, new.worker(cache_size=0):
        after = await new.client.start("quote", 10, id="after")
        await _until(after, "with_vat")
        for workflow_id in ("before", "after"):
            await new.client.get_handle(workflow_id).signal("go")
        # Without a cache each step replays the whole history on v2's code.
        assert await new.client.get_handle("before").result(timeout=30) == ["net 1", "net 2"]
        assert await new.client.get_handle("after").result(timeout=30) == [
            "vat 10",
            "vat 11",
        ]
        assert await _patches(new, "after") == ["vat"], "recorded once per run"
        assert await _patches(new, "before") == []


async def test_a_deprecated_patch_replays_runs_that_recorded_it(make_app: AppFactory) -> None:
    await _left_waiting(v2(make_app), "patched-run", 5, "with_vat")
    final = v3(make_app)
    async with final, final.worker(cache_size=0):
        await final.client.get_handle("patched-run").signal("go")
        assert await final.client.get_handle("patched-run").result(timeout=30) == [
            "vat 5",
            "vat 6",
        ]
        fresh = await final.client.start("quote", 7, id="fresh")
        await fresh.signal("go")
        assert await fresh.result(timeout=30) == ["vat 7", "vat 8"]
        assert await _patches(final, "patched-run") == ["vat"]
        assert await _patches(final, "fresh") == [], "a deprecated patch records nothing"


async def test_changed_code_without_a_patch_is_refused_as_nondeterministic(
    make_app: AppFactory,
) -> None:
    """The case ``patched`` exists for: v2's first step without the branch."""
    await _left_waiting(v1(make_app), "unpatched", 1, "net")
    changed = _app(make_app)

    @changed.workflow(name="quote")
    async def quote(ctx: tether.Context, x: int) -> list[str]:
        first = await ctx.activity("with_vat", x)
        await ctx.wait_signal("go")
        return [first]

    async with changed, changed.worker(cache_size=0, stuck_retry=0.05):
        await changed.client.get_handle("unpatched").signal("go")
        handle = changed.client.get_handle("unpatched")

        async def stuck() -> tether.RunRecord | None:
            run = await handle.describe()
            return run if run.stuck is not None else None

        run = await eventually(stuck)
    assert "with_vat" in run.stuck and run.status == tether.RunStatus.RUNNING


async def test_a_patch_id_is_text_a_store_can_hold_and_its_marker_name_is_reserved(
    make_app: AppFactory,
) -> None:
    app = _app(make_app)

    @app.workflow
    async def odd(ctx: tether.Context, patch_id: str) -> str:
        try:
            ctx.patched(patch_id)
        except tether.InvalidArgument as err:
            return str(err)
        return "patched"

    @app.workflow
    async def posing(ctx: tether.Context) -> str:
        try:
            ctx.side_effect(lambda: 1, name="tether.patch")
        except tether.InvalidArgument as err:
            return str(err)
        return "recorded"

    async with app, app.worker():
        assert "reserved" in await app.client.execute(posing, timeout=30)
        assert "NUL" in await app.client.execute(odd, "a\x00b", timeout=30)
        assert "non-empty" in await app.client.execute(odd, "", timeout=30)
        assert await app.client.execute(odd, "fine", timeout=30) == "patched"


def _two(make_app: AppFactory, *, rounding: bool) -> tether.App:
    """``vat`` patched in; with ``rounding``, a second patch added later, before the
    first step."""
    app = _app(make_app)

    @app.workflow(name="two")
    async def two(ctx: tether.Context, x: int) -> list[str]:
        taken: list[str] = []
        ctx.set_query_handler("taken", lambda: list(taken))
        taken.append("vat" if ctx.patched("vat") else "net")
        if rounding:
            taken.append("rounding" if ctx.patched("rounding") else "plain")
        await ctx.activity("with_vat" if taken[0] == "vat" else "net", x)
        await ctx.wait_signal("go")
        return taken

    return app


async def test_patches_answer_queries_and_survive_a_reset_and_each_other(
    make_app: AppFactory,
) -> None:
    """A second patch added later answers False for a run that recorded only the first
    (its history has the step there); a query replays the run quietly and sees the
    answers it took; a reset to just after the start decides both anew, live."""
    await _left_waiting(_two(make_app, rounding=False), "two-1", 1, "with_vat", "two")
    app = _two(make_app, rounding=True)
    async with app, app.worker(cache_size=0):
        run = app.client.get_handle("two-1")
        assert await run.query("taken") == ["vat", "plain"]
        await run.signal("go")
        assert await run.result(timeout=30) == ["vat", "plain"]
        assert await _patches(app, "two-1") == ["vat"]
        # The reset run replays up to the start, then runs today's code live; the
        # signal after the point is applied again.
        new_run = await run.reset(1, reason="both patches, live")
        again = app.client.get_handle("two-1", new_run)
        assert await again.result(timeout=30) == ["vat", "rounding"]
        assert await again.query("taken") == ["vat", "rounding"]
        assert await _patches(app, "two-1") == ["vat", "rounding"]
