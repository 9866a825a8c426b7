"""Namespace policies that reach inside a run: the default retry policy, the payload
limit and the allowed task queues, on activities, children and signals."""

from __future__ import annotations

import tether
from tests.conftest import AppFactory


def _app(make_app: AppFactory, attempts: list[str]) -> tether.App:
    app = make_app()

    @app.activity
    async def flaky(tag: str) -> str:
        attempts.append(tag)
        raise RuntimeError(f"{tag} failed")

    @app.activity
    async def echo(text: str) -> str:
        return text

    @app.activity
    async def blow_up(size: int) -> str:
        return "x" * size

    @app.workflow
    async def try_flaky(ctx: tether.Context, explicit: bool) -> str:
        retry = tether.Retry(initial_interval=0, max_attempts=3) if explicit else None
        try:
            await ctx.activity(flaky, "explicit" if explicit else "default", retry=retry)
        except tether.ActivityError as exc:
            return f"gave up after {exc.attempt}"
        return "succeeded"

    @app.workflow
    async def probe(ctx: tether.Context, what: str, size: int) -> str:
        try:
            if what == "args":
                return await ctx.activity(echo, "y" * size)
            if what == "result":
                return await ctx.activity(blow_up, size)
            if what == "queue":
                return await ctx.activity(echo, "hi", task_queue="gpu")
            return str(await ctx.child(probe, "args", 1, task_queue="gpu"))
        except tether.ActivityError as exc:
            cause = exc.__cause__
            return f"activity error: {getattr(cause, 'type', None)}: {cause}"
        except tether.InvalidArgument as exc:
            return f"{exc.code}: {exc}"

    @app.workflow
    async def inbox(ctx: tether.Context) -> str:
        return str(await ctx.wait_signal("note"))

    return app


async def test_default_retry_applies_to_activities_without_their_own(
    make_app: AppFactory,
) -> None:
    attempts: list[str] = []
    app = _app(make_app, attempts)
    async with app:
        retry = {"initial_interval": 0, "max_attempts": 2}
        await app.client.namespaces.create("strict", default_retry=retry)
        async with app.worker(namespaces=["strict"]):
            got = await app.client.execute("try_flaky", False, namespace="strict", timeout=30)
            assert got == "gave up after 2"
            got = await app.client.execute("try_flaky", True, namespace="strict", timeout=30)
            assert got == "gave up after 3"
    assert attempts.count("default") == 2 and attempts.count("explicit") == 3


async def test_payload_limit_and_queues_hold_inside_runs(make_app: AppFactory) -> None:
    app = _app(make_app, [])
    async with app:
        await app.client.namespaces.create(
            "small", max_payload=1000, task_queues=["default"]
        )  # fmt: skip
        async with app.worker(namespaces=["small"]):

            async def probe(what: str, size: int) -> str:
                result = await app.client.execute("probe", what, size, namespace="small")
                return str(result)

            assert await probe("args", 10) == "y" * 10
            assert (await probe("args", 5000)).startswith("payload_too_large: arguments of")
            assert await probe("result", 10) == "x" * 10
            failed = await probe("result", 5000)
            assert failed.startswith("activity error: PayloadTooLarge: result of activity")
            assert "may not use task queue 'gpu'" in await probe("queue", 0)
            assert "child workflow probe" in await probe("child", 0)

            handle = await app.client.start("inbox", namespace="small")
            try:
                await handle.signal("note", "z" * 5000)
            except tether.PayloadTooLarge as exc:
                assert "namespace's limit of 1000" in str(exc)
            else:
                raise AssertionError("an oversized signal was accepted")
            await handle.signal("note", "fits")
            assert await handle.result(timeout=30) == "fits"
            history = await handle.history()
            assert sum(e.type == "SignalReceived" for e in history) == 1


async def test_runs_keep_the_limits_they_started_with(make_app: AppFactory) -> None:
    app = _app(make_app, [])
    async with app:
        await app.client.namespaces.create("moving", task_queues=["default"])
        handle = await app.client.start("probe", "queue", 0, namespace="moving")
        # Lifting the limit after the start does not change what this run meets, so
        # its history replays the same whatever the settings say later.
        await app.client.namespaces.update("moving", task_queues=None)
        async with app.worker(namespaces=["moving"]):
            assert "may not use task queue" in str(await handle.result(timeout=30))
            started = (await handle.history())[0]
            assert started.attrs["limits"] == {"task_queues": ["default"]}
            fresh = await app.client.start("probe", "queue", 0, namespace="moving")
            assert "limits" not in (await fresh.history())[0].attrs
