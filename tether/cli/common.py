"""Options and helpers every command shares: the store, the namespace, the app."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from .. import runtime
from ..app import App
from ..errors import TetherError, UsageError
from .output import fail

__all__ = [
    "AppOpt",
    "ArgsOpt",
    "DbOpt",
    "JsonOpt",
    "NsOpt",
    "YesOpt",
    "confirm",
    "load_app",
    "make_app",
    "parse_json_arg",
    "parse_json_args",
    "run",
]

T = TypeVar("T")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="TETHER_DATABASE_URL",
        help="Store URL: postgresql://... or a SQLite path (default ./tether.db).",
    ),
]
NsOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace (tenant).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ArgsOpt = Annotated[
    list[str] | None, typer.Option("--arg", "-a", help="An argument as JSON (repeatable).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        envvar="TETHER_APP",
        help="MODULE:APP whose workflows are checked before starting (optional).",
    ),
]


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question`` and abort on no, unless ``--yes`` answered it already."""
    if not yes:
        typer.confirm(question, abort=True)


def load_app(spec: str) -> App:
    """Import ``module:attribute`` and return the App it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        fail(f"expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"cannot import {module_name!r}: {exc}")
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        fail(f"{spec} is not a tether.App (got {type(app).__name__})")
    return app


def make_app(db: str | None, namespace: str, app_spec: str | None = None) -> App:
    """The user's App (its store replaced by --db when given), or a bare one on the store."""
    if not app_spec:
        return App(db, namespace=namespace)
    app = load_app(app_spec)
    if db:
        app.use_store(db)
    app.namespace = app.client.namespace = namespace
    return app


def run(app: App, body: Callable[[App], Awaitable[T]]) -> T:
    """Open the app's store, run ``body``, and turn Tether errors into exit codes
    (2 for usage errors, 1 for failures)."""

    async def main() -> T:
        async with app:
            return await body(app)

    try:
        return runtime.run(main())
    except UsageError as exc:
        fail(f"{exc} [{exc.code}]", 2)
    except TetherError as exc:
        fail(f"{exc} [{exc.code}]", 1)


def parse_json_args(values: list[str]) -> list[Any]:
    """Each ``--arg`` is one JSON value; a bare word that is not JSON is a string."""
    import orjson

    out: list[Any] = []
    for raw in values:
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            out.append(raw)
    return out


def parse_json_arg(raw: str | None) -> Any:
    """One optional JSON value, as :func:`parse_json_args` reads it (absent: None)."""
    return None if raw is None else parse_json_args([raw])[0]
