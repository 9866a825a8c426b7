"""The app the child/continue-as-new crash test runs in worker processes it SIGKILLs.

Each activity execution appends a line to $TETHER_EFFECTS, so the test can tell which
steps ran and how often.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import tether

app = tether.App()
CHILDREN = 3


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def square(child_id: str, n: int) -> int:
    """A step long enough for the worker to die while it runs."""
    info = tether.activity_info()
    line = f"square {child_id} {n} {info.attempt} {os.getpid()}\n"
    fd = os.open(os.environ["TETHER_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    time.sleep(0.2)
    return n * n


@app.workflow
async def leaf(ctx: tether.Context, child_id: str, n: int) -> int:
    return await ctx.activity(square, child_id, n)


@app.workflow
async def chain(ctx: tether.Context, wid: str, generation: int, last: int, total: int) -> int:
    """Fan out CHILDREN children per generation, then continue as the next one."""
    ids = [f"{wid}-g{generation}-c{i}" for i in range(CHILDREN)]
    kids = [ctx.start_child(leaf, cid, generation * 10 + i, id=cid) for i, cid in enumerate(ids)]
    total += sum(await ctx.gather(*kids))
    if generation < last:
        ctx.continue_as_new(wid, generation + 1, last, total)
    return total


def expected(last: int) -> int:
    return sum((g * 10 + i) ** 2 for g in range(last + 1) for i in range(CHILDREN))


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
