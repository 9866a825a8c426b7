"""``tether namespace ...``: namespaces (tenants), their settings and figures."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from ..app import App
from ..tenancy import NamespaceInfo
from .common import DbOpt, JsonOpt, YesOpt, confirm, make_app, run
from .output import emit, fail, when

cli = typer.Typer(
    help="Create, inspect, change and delete namespaces (tenants).", no_args_is_help=True
)

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="A setting as KEY=VALUE; VALUE is JSON or a bare word (repeatable).",
    ),
]


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _info(info: NamespaceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created": when(info.created_at),
        "settings": info.settings.model_dump(mode="json", exclude_defaults=True),
    }


def _in_store(db: str | None) -> App:
    return make_app(db, "default")


@cli.command()
def create(name: str, setting: SetOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Create namespace NAME, with settings (--set retention=7d --set weight=2)."""
    settings = _settings(setting)

    async def body(app: App) -> NamespaceInfo:
        return await app.client.namespaces.create(name, settings)

    emit(_info(run(_in_store(db), body)), as_json=as_json)


@cli.command()
def update(name: str, setting: SetOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Change some settings of NAME (others are kept; --set KEY=null resets one)."""
    settings = _settings(setting)

    async def body(app: App) -> NamespaceInfo:
        return await app.client.namespaces.update(name, settings)

    emit(_info(run(_in_store(db), body)), as_json=as_json)


@cli.command()
def describe(name: str, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show NAME's settings and figures: runs, backlog per task queue, limit waits."""

    async def body(app: App) -> dict[str, Any]:
        return (await app.client.namespaces.describe(name)).to_dict()

    data = run(_in_store(db), body)
    if not as_json:
        data["created_at"] = when(data["created_at"])
    emit(data, as_json=as_json)


@cli.command("list")
def list_namespaces(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List namespaces and the settings they change."""

    async def body(app: App) -> list[dict[str, Any]]:
        return [_info(info) for info in await app.client.namespaces.list()]

    emit(run(_in_store(db), body), as_json=as_json)


@cli.command()
def delete(name: str, yes: YesOpt = False, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Delete NAME and every byte of its data (runs, histories, payloads, tasks)."""
    confirm(f"Delete namespace {name!r} and all of its data?", yes=yes)

    async def body(app: App) -> dict[str, Any]:
        await app.client.namespaces.delete(name)
        return {"deleted": name}

    emit(run(_in_store(db), body), as_json=as_json)
