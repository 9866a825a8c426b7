"""The app the search-attribute crash test runs in worker processes it SIGKILLs.

Each run takes STEPS steps; after each it upserts its progress, adding the step's
name to a keyword list, so the test can tell whether an upsert was lost or applied
twice (a list that repeats or misses a step).
"""

from __future__ import annotations

import asyncio
import sys
import time

import tether

app = tether.App()
STEPS = 6


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def work(n: int) -> int:
    """A step long enough for the worker to die while it runs."""
    time.sleep(0.3)
    return n + 1


@app.workflow
async def progress(ctx: tether.Context) -> list[str]:
    done: list[str] = []
    for i in range(STEPS):
        await ctx.activity(work, i)
        done.append(f"s{i}")
        ctx.upsert_search_attributes({"progress": i + 1, "done": done, "last": ctx.now()})
    return done


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
