"""The ``tether`` command line: thin commands over ``Client`` and the store."""

from __future__ import annotations

import typer

from . import db, namespace, workflow
from .server import server
from .usage import llm_limits, usage
from .worker import worker

app = typer.Typer(
    name="tether",
    help="Durable, tenant-isolated orchestration for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(worker)
app.command()(usage)
app.command()(server)
app.command("llm-limits")(llm_limits)
app.add_typer(workflow.cli, name="workflow")
app.add_typer(db.cli, name="db")
app.add_typer(namespace.cli, name="namespace")

__all__ = ["app", "main"]


def main() -> None:
    app()
