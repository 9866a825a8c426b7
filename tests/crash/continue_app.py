"""The app the continue-as-new crash test runs in worker processes that kill themselves.

``TETHER_CRASH_AT`` picks the moment a worker SIGKILLs itself, once per workflow id (a
file in ``$TETHER_CRASH_MARKS`` remembers it), when a workflow task continues its run
as new: ``before_commit`` (the code decided, nothing is written yet) or
``after_commit`` (the new run is written, its first task has not run). Each activity
execution appends a line to ``$TETHER_EFFECTS``, so the test can tell which steps ran
and how often.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import tether
from tether.store import Store, WorkflowCommit

app = tether.App()
SIGNALS = 3


@app.activity(retry=tether.Retry(initial_interval=0.05, max_interval=0.2))
def record(workflow_id: str, generation: int) -> int:
    info = tether.activity_info()
    line = f"{workflow_id} {generation} {info.run_id} {info.attempt} {os.getpid()}\n"
    # One small O_APPEND write: lines from concurrent threads never interleave.
    fd = os.open(os.environ["TETHER_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return generation


@app.workflow
async def relay(ctx: tether.Context, workflow_id: str, generation: int, seen: list[int]) -> Any:
    """Generation 0 takes one signal and continues as new, leaving the others for
    generation 1, which waits for all of them."""
    await ctx.activity(record, workflow_id, generation)
    if generation == 0:
        seen.append(await ctx.wait_signal("msg"))
        ctx.continue_as_new(workflow_id, 1, seen)
    while len(seen) < SIGNALS:
        seen.append(await ctx.wait_signal("msg"))
    return seen


def _die_once(workflow_id: str) -> None:
    """SIGKILL this process the first time it gets here for ``workflow_id``."""
    mark = Path(os.environ["TETHER_CRASH_MARKS"]) / workflow_id
    try:
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def arm(store: Store, moment: str) -> None:
    """Make the worker die at ``moment`` of a commit that continues a run as new (both
    ways a workflow task commits: after a workflow task, and the local fast path)."""
    complete, advance = store.complete_workflow_task, store.advance_after_activity

    async def around(workflow_id: str, commit: WorkflowCommit, write: Any) -> Any:
        if commit.continue_as_new is not None and moment == "before_commit":
            _die_once(workflow_id)
        result = await write()
        if commit.continue_as_new is not None and moment == "after_commit":
            _die_once(workflow_id)  # no await in between: the new run's task has not run
        return result

    async def complete_workflow_task(task: Any, commit: WorkflowCommit, lease: float) -> Any:
        return await around(task.workflow_id, commit, lambda: complete(task, commit, lease))

    async def advance_after_activity(task: Any, outcome: Any, **kw: Any) -> Any:
        commit = kw["commit"]
        return await around(task.workflow_id, commit, lambda: advance(task, outcome, **kw))

    store.complete_workflow_task = complete_workflow_task  # type: ignore[method-assign]
    store.advance_after_activity = advance_after_activity  # type: ignore[method-assign]


async def serve(url: str) -> None:
    app.use_store(url)
    arm(app.store, os.environ["TETHER_CRASH_AT"])
    async with app:
        # Short leases so that the work of a killed worker moves on quickly.
        await app.worker(workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
