"""Fair scheduling between namespaces, and caps and rates that hold across workers."""

from __future__ import annotations

import asyncio
import time

import tether
from tests.conftest import AppFactory


class Gauge:
    """How many activities run at once, at most."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.busy = asyncio.Event()

    async def hold(self, seconds: float) -> None:
        self.busy.set()
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


def _app(make_app: AppFactory, gauge: Gauge) -> tether.App:
    app = make_app()

    @app.activity
    async def work(seconds: float) -> float:
        await gauge.hold(seconds)
        return seconds

    @app.workflow
    async def job(ctx: tether.Context, n: int, seconds: float) -> int:
        done = await ctx.gather(*(ctx.activity(work, seconds) for _ in range(n)))
        return len(done)

    return app


async def test_activity_cap_holds_across_workers(make_app: AppFactory) -> None:
    gauge = Gauge()
    first, second = _app(make_app, gauge), _app(make_app, gauge)
    async with first, second:
        await first.client.namespaces.create("capped", max_running_activities=3)
        async with (
            first.worker(namespaces=["capped"]),
            second.worker(namespaces=["capped"]),
        ):
            handles = [
                await first.client.start("job", 6, 0.05, namespace="capped") for _ in range(3)
            ]
            assert [await h.result(timeout=60) for h in handles] == [6, 6, 6]
        assert gauge.peak == 3
        figures = (await first.client.namespaces.describe("capped")).to_dict()
        assert figures["limit_waits"]["activity"] >= 1


async def test_workflow_cap_and_live_changes(make_app: AppFactory) -> None:
    gauge = Gauge()
    app = _app(make_app, gauge)
    async with app:
        await app.client.namespaces.create("one", max_running_activities=1)
        async with app.worker(namespaces=["one"]) as worker:
            assert await app.client.execute("job", 4, 0.02, namespace="one", timeout=60) == 4
            assert gauge.peak == 1
            await app.client.namespaces.update("one", max_running_activities=None)
            # Workers re-read settings every second; do now what that timer would do.
            await worker.scheduler.refresh(force=True)
            gauge.peak = 0
            assert await app.client.execute("job", 4, 0.1, namespace="one", timeout=60) == 4
            assert gauge.peak == 4
            await app.client.namespaces.update("one", max_running_workflows=1)
            await worker.scheduler.refresh(force=True)
            handles = [await app.client.start("job", 1, 0.01, namespace="one") for _ in range(5)]
            assert [await h.result(timeout=60) for h in handles] == [1] * 5


async def test_rates_delay_but_never_drop(make_app: AppFactory) -> None:
    gauge = Gauge()
    app = _app(make_app, gauge)
    async with app:
        await app.client.namespaces.create("slow", activity_rate=20, start_rate=10)
        async with app.worker(namespaces=["slow"]):
            began = time.monotonic()
            assert await app.client.execute("job", 40, 0.0, namespace="slow", timeout=60) == 40
            assert time.monotonic() - began >= 0.9  # 20 at once, then 20 a second
            began = time.monotonic()
            handles = [await app.client.start("job", 0, 0.0, namespace="slow") for _ in range(15)]
            assert time.monotonic() - began >= 0.4  # 10 at once, then 10 a second
            assert [await h.result(timeout=60) for h in handles] == [0] * 15
        waits = (await app.client.namespaces.describe("slow")).stats.limit_waits
        assert waits["start"] >= 4 and waits["activity"] >= 1


async def test_a_flood_does_not_starve_a_neighbour(make_app: AppFactory) -> None:
    gauge = Gauge()
    app = _app(make_app, gauge)
    async with app:
        await app.client.namespaces.create("flood")
        await app.client.namespaces.create("small")
        flood = [await app.client.start("job", 1, 0.02, namespace="flood") for _ in range(300)]
        async with app.worker(namespaces=["flood", "small"], max_activities=4):
            await gauge.busy.wait()  # the flood is being worked on
            assert await app.client.execute("job", 1, 0.0, namespace="small", timeout=60) == 1
            # In FIFO order the small run would come after all 300; fairly, it is done
            # while most of the flood still waits. (How fast is bench/noisy_neighbour.py's.)
            left = (await app.client.namespaces.describe("flood")).stats.runs["running"]
            assert left > 100, left
            assert [await h.result(timeout=120) for h in flood] == [1] * 300
