"""The app the crash tests run in worker processes they SIGKILL.

Each activity execution appends a line to $TETHER_EFFECTS: the side effect whose
count proves that no recorded step ran again.
"""

from __future__ import annotations

import asyncio
import os
import sys

import tether

app = tether.App()


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def step(workflow_id: str, number: int, total: int) -> int:
    info = tether.activity_info()
    line = f"{workflow_id} {number} {info.attempt} {os.getpid()}\n"
    # One small O_APPEND write: lines from concurrent threads never interleave.
    fd = os.open(os.environ["TETHER_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return total + number


@app.workflow
async def five_steps(ctx: tether.Context, workflow_id: str) -> dict[str, object]:
    total, slept = 0, []
    for number in range(1, 6):
        total = await ctx.activity(step, workflow_id, number, total)
        if number in (2, 4):
            before = ctx.now()
            await ctx.sleep(0.3)
            slept.append((ctx.now() - before).total_seconds())
    return {"total": total, "slept": slept}


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
