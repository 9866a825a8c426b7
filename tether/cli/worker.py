"""``tether worker MODULE:APP``: serve task queues until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from .. import runtime
from ..errors import TetherError
from .common import DbOpt, load_app
from .output import errors, fail


def worker(
    app_spec: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app to serve.")],
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Namespace (repeatable).")
    ] = None,
    task_queue: Annotated[
        list[str] | None, typer.Option("--task-queue", "-q", help="Task queue (repeatable).")
    ] = None,
    identity: Annotated[str | None, typer.Option(help="Worker identity in leases.")] = None,
    max_activities: Annotated[int, typer.Option(help="Concurrent activity attempts.")] = 200,
    grace: Annotated[float, typer.Option(help="Seconds to finish work on SIGTERM.")] = 10.0,
    pace: Annotated[
        float | None,
        typer.Option(
            help="Serving several namespaces, claim new work only while the event loop"
            " lags less than this many seconds (default: the worker's, 0.002); 0 turns"
            " pacing off."
        ),
    ] = None,
    db: DbOpt = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run a worker for MODULE:APP's workflows and activities."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    app = load_app(app_spec)
    if db:
        app.use_store(db)

    async def main() -> None:
        async with app:
            w = app.worker(
                namespaces=namespace or None,
                task_queues=task_queue or None,
                identity=identity,
                max_activities=max_activities,
                **({} if pace is None else {"pace": pace or None}),
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await w.start()
            errors.print(
                f"worker {w.identity} serving namespaces {w.namespaces}"
                f" queues {w.task_queues} on {app.store.url}"
                f" (event loop: {runtime.event_loop()})"
            )
            await stop.wait()
            errors.print("stopping: finishing in-flight work")
            await w.stop(grace)

    try:
        runtime.run(main())
    except TetherError as exc:
        fail(f"{exc} [{exc.code}]", 2)
