"""``tether db ...``: the store's schema."""

from __future__ import annotations

from typing import Any

import typer

from .. import runtime
from ..store import open_store
from .common import DbOpt, JsonOpt
from .output import emit, fail

cli = typer.Typer(help="Inspect and upgrade the store's schema.", no_args_is_help=True)


def _status(db: str | None, *, upgrade: bool) -> dict[str, Any]:
    from ..errors import TetherError

    async def body() -> dict[str, Any]:
        store = open_store(db)
        # Opening applies pending migrations, under a lock on PostgreSQL, so
        # several processes may do it at once.
        await store.open(migrate=upgrade)
        try:
            status = await store.schema_status()
            return {
                "store": store.url,
                "current": status.current,
                "latest": status.latest,
                "pending": status.latest - status.current,
            }
        finally:
            await store.close()

    try:
        return runtime.run(body())
    except TetherError as exc:
        fail(f"{exc} [{exc.code}]", 2)
    raise AssertionError("unreachable")


@cli.command()
def upgrade(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Apply pending schema migrations."""
    emit(_status(db, upgrade=True), as_json=as_json)


@cli.command()
def status(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show the schema version of the store and the newest this Tether knows."""
    emit(_status(db, upgrade=False), as_json=as_json)
