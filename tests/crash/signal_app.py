"""The app the signal crash test runs in worker processes it SIGKILLs.

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


def _effect(kind: str, workflow_id: str, value: int) -> None:
    info = tether.activity_info()
    line = f"{kind} {workflow_id} {value} {info.attempt} {os.getpid()}\n"
    # One small O_APPEND write: lines from concurrent threads never interleave.
    fd = os.open(os.environ["TETHER_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def slow(workflow_id: str, round: int) -> None:
    """A step long enough for signals to arrive, and the worker to die, while it runs."""
    _effect("slow", workflow_id, round)
    time.sleep(0.3)


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def consume(workflow_id: str, payload: int) -> int:
    _effect("consume", workflow_id, payload)
    return payload


@app.workflow
async def signalled(ctx: tether.Context, workflow_id: str, rounds: int) -> list[int]:
    consumed = []
    for round in range(rounds):
        await ctx.activity(slow, workflow_id, round)
        payload = await ctx.wait_signal("item")
        consumed.append(await ctx.activity(consume, workflow_id, payload))
    return consumed


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
