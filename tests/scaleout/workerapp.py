"""The app the scale-out tests run in real worker processes, and its worker entry point.

    python -m tests.scaleout.workerapp --db URL --dir DIR --name w1 \\
        --workflow-lease 1.5 --activity-lease 1.5

runs a worker until SIGTERM (graceful) or SIGKILL. Everything a test needs to judge
the run afterwards goes to files in ``DIR`` (a shared folder: network namespaces do not
hide it), each written with one ``write()`` per line so a killed process leaves whole
lines only:

- ``ready-NAME.json``: the worker's identity and pid, once it serves;
- ``effects-NAME.jsonl``: one line per activity side effect ("effect"), and for the
  gated activity one line when an attempt begins ("begin");
- ``journal-NAME.jsonl``: how each fenced store call this worker made ended (ok,
  LeaseLost, StoreUnavailable, cancelled), from ``JournalStore``; an
  ``advance_after_activity`` that ended ok also says whether it ``applied`` (it does
  not when the run moved on elsewhere).

``gated`` is the slow activity: its first attempt waits until the file
``DIR/gate-open`` exists; later attempts (after a lost lease) run at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tether
from tether.errors import LeaseLost, StoreUnavailable
from tether.store import (
    ActivityOutcome,
    ActivityTask,
    CommitResult,
    WorkflowCommit,
    WorkflowTask,
)
from tether.store.postgres import PostgresStore

__all__ = ["GATE", "Effects", "JournalStore", "Recorder", "chain_result", "make_app", "step_value"]

T = TypeVar("T")
GATE = "gate-open"


def step_value(value: int, index: int) -> int:
    """What step ``index`` of a chain computes from ``value``."""
    return value * 3 + index + 1


def chain_result(n: int, steps: int) -> int:
    """The result ``chain(n, steps, ...)`` must return."""
    value = n
    for index in range(steps):
        value = step_value(value, index)
    return value


class Recorder:
    """Appends JSON lines to a file, one ``write()`` each (whole lines survive SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(record).encode() + b"\n")


class Effects:
    """Where this worker's activities record their side effects."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.identity = f"{name}:{os.getpid()}"
        self._out = Recorder(folder / f"effects-{name}.jsonl")

    def record(self, kind: str) -> dict[str, Any]:
        info = tether.activity_info()
        record = {
            "kind": kind,
            "wf": info.workflow_id,
            "run": info.run_id,
            "step": info.step,
            "name": info.name,
            "attempt": info.attempt,
            "by": self.identity,
            "t": time.time(),
        }
        self._out.write(record)
        return record


def make_app(store: str | tether.Store, effects: Effects | None = None) -> tether.App:
    """The test app on ``store``; activities record into ``effects`` (workers only)."""
    app = tether.App(store, task_queue="scaleout")

    def effect(kind: str) -> dict[str, Any]:
        if effects is None:
            raise RuntimeError("activities run only in worker processes")
        return effects.record(kind)

    @app.activity
    async def work(value: int, index: int, delay: float) -> dict[str, Any]:
        # The side effect first, then the rest of the work: a worker killed meanwhile
        # leaves an effect whose completion is never recorded.
        done = effect("effect")
        await asyncio.sleep(delay)
        return {"value": step_value(value, index), "by": done["by"], "attempt": done["attempt"]}

    @app.activity
    async def gated(value: int) -> dict[str, Any]:
        begun = effect("begin")
        if begun["attempt"] == 1:
            assert effects is not None
            gate = effects.folder / GATE
            # The gate is a file another process creates: nothing to await but the disk.
            while not gate.exists():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        done = effect("effect")
        return {"value": value, "by": done["by"], "attempt": done["attempt"]}

    @app.workflow
    async def chain(ctx: tether.Context, n: int, steps: int, delay: float, slow: bool) -> int:
        value = n
        if slow:
            value = (await ctx.activity(gated, value))["value"]
        for index in range(steps):
            value = (await ctx.activity(work, value, index, delay))["value"]
        return value

    return app


class JournalStore(PostgresStore):
    """A PostgresStore that journals how each fenced write of this worker ended."""

    def __init__(self, url: str, journal: Recorder, **options: Any) -> None:
        super().__init__(url, **options)
        self._journal = journal

    async def _logged(
        self,
        op: str,
        facts: dict[str, Any],
        call: Awaitable[T],
        result_facts: Callable[[T], dict[str, Any]] = lambda _: {},
    ) -> T:
        entry = {"op": op, **facts}
        try:
            result = await call
        except LeaseLost:
            self._journal.write({**entry, "outcome": "LeaseLost", "t": time.time()})
            raise
        except StoreUnavailable:
            self._journal.write({**entry, "outcome": "StoreUnavailable", "t": time.time()})
            raise
        except asyncio.CancelledError:
            self._journal.write({**entry, "outcome": "cancelled", "t": time.time()})
            raise
        self._journal.write({**entry, **result_facts(result), "outcome": "ok", "t": time.time()})
        return result

    @staticmethod
    def _activity(task: ActivityTask) -> dict[str, Any]:
        return {"run": task.run_id, "step": task.step, "attempt": task.attempt, "token": task.token}

    async def complete_workflow_task(
        self, task: WorkflowTask, commit: WorkflowCommit, lease: float
    ) -> CommitResult:
        facts = {"run": task.run_id, "token": task.token}
        return await self._logged(
            "complete_workflow_task", facts, super().complete_workflow_task(task, commit, lease)
        )

    async def advance_after_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        expected_seq: int,
        ts: float,
        commit: WorkflowCommit,
        lease: float,
    ) -> CommitResult | None:
        call = super().advance_after_activity(
            task, outcome, expected_seq=expected_seq, ts=ts, commit=commit, lease=lease
        )
        return await self._logged(
            "advance_after_activity",
            self._activity(task),
            call,
            lambda result: {"applied": result is not None},
        )

    async def finish_activity(
        self,
        task: ActivityTask,
        outcome: ActivityOutcome,
        *,
        claim_for: str | None,
        local_queues: Sequence[str],
        lease: float,
    ) -> WorkflowTask | None:
        call = super().finish_activity(
            task, outcome, claim_for=claim_for, local_queues=local_queues, lease=lease
        )
        return await self._logged("finish_activity", self._activity(task), call)

    async def extend_leases(self, tasks: Sequence[ActivityTask], lease: float) -> list[int]:
        lost = await self._logged(
            "extend_leases", {"tasks": len(tasks)}, super().extend_leases(tasks, lease)
        )
        for task in tasks:
            if task.task_id in lost:
                self._journal.write(
                    {
                        "op": "lease_lost",
                        **self._activity(task),
                        "outcome": "LeaseLost",
                        "t": time.time(),
                    }
                )
        return lost


async def serve(options: argparse.Namespace) -> None:
    folder = Path(options.dir)
    effects = Effects(folder, options.name)
    store = JournalStore(
        options.db, Recorder(folder / f"journal-{options.name}.jsonl"), pool_size=options.pool_size
    )
    app = make_app(store, effects)
    async with app:
        worker = app.worker(
            identity=effects.identity,
            workflow_lease=options.workflow_lease,
            activity_lease=options.activity_lease,
            max_activities=options.max_activities,
            max_workflow_tasks=options.max_workflow_tasks,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        ready = {"identity": effects.identity, "pid": os.getpid()}
        (folder / f"ready-{options.name}.json").write_text(json.dumps(ready))
        await stop.wait()
        await worker.stop(grace=5.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--workflow-lease", type=float, default=10.0)
    parser.add_argument("--activity-lease", type=float, default=30.0)
    parser.add_argument("--max-activities", type=int, default=200)
    parser.add_argument("--max-workflow-tasks", type=int, default=200)
    parser.add_argument("--pool-size", type=int, default=5)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(options))


if __name__ == "__main__":
    main()
