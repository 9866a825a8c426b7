"""``tether server [MODULE:APP]``: serve the HTTP API over a store."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer

from ..app import App
from ..errors import TetherError
from .common import DbOpt, load_app
from .output import errors, fail

__all__ = ["server"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server(
    app_spec: Annotated[
        str | None,
        typer.Argument(
            metavar="[MODULE:APP]",
            help="The app whose workflow code answers queries (and runs, with --worker).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8233,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="Bearer tokens, one TOKEN:NAMESPACE a line (TOKEN:* for an admin);"
            " also read from $TETHER_SERVER_TOKENS (comma-separated).",
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker", help="Also run a worker for MODULE:APP (default: with an app)."
        ),
    ] = True,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace the worker serves (repeatable)."),
    ] = None,
    db: DbOpt = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Serve the HTTP API (see docs/http.md). Without tokens it is open, so it listens
    on loopback only."""
    import uvicorn

    from ..server import Tokens, create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    try:
        tokens = Tokens.load(tokens_file)
    except TetherError as exc:
        fail(f"{exc} [{exc.code}]", 2)
        raise
    if tokens.open and not _loopback(host):
        fail(
            f"no tokens are configured, so the server is open to anyone who reaches it and"
            f" listens on loopback only; refusing --host {host}: set $TETHER_SERVER_TOKENS"
            " or --tokens-file",
            2,
        )
    app = load_app(app_spec) if app_spec else App(db)
    if app_spec and db:
        app.use_store(db)
    asgi = create_app(
        app, tokens=tokens, worker=worker and app_spec is not None, namespaces=namespace
    )
    errors.print(
        f"serving the HTTP API on http://{host}:{port}"
        + (" (open: no tokens configured)" if tokens.open else "")
    )
    uvicorn.run(asgi, host=host, port=port, log_level=log_level.lower(), lifespan="on")
