"""The app the update crash test runs in worker processes it SIGKILLs.

Each execution of the update handler's activity appends a line to $TETHER_EFFECTS; the
first attempts block until the file $TETHER_RELEASE exists, so the test can kill the
worker while updates are accepted but not completed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import tether

app = tether.App()


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def stamp(workflow_id: str, value: int) -> int:
    info = tether.activity_info()
    line = f"stamp {workflow_id} {value} {info.attempt} {os.getpid()}\n"
    fd = os.open(os.environ["TETHER_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    while not os.path.exists(os.environ["TETHER_RELEASE"]):
        time.sleep(0.02)  # another process decides when this step may end
    return value * 10


@app.workflow
async def approver(ctx: tether.Context, workflow_id: str) -> dict[str, int]:
    state = {"approvals": 0, "stamped": 0}

    @ctx.update("approve")
    async def approve(value: int) -> int:
        state["stamped"] = await ctx.activity(stamp, workflow_id, value)
        state["approvals"] += 1
        return state["stamped"] + state["approvals"]

    await ctx.wait_signal("finish")
    return state


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
