"""Shared output for CLI commands: a rich table for people, ``--json`` for programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["console", "emit", "fail", "when"]

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def emit(
    data: Any, *, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    """Print ``data`` (a dict or a list of dicts) as JSON or as a table."""
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        console.print("(none)")
        return
    if isinstance(data, dict) and columns is None:
        table = Table(show_header=False, box=None, title=title)
        for key, value in data.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(value))
        console.print(table)
        return
    columns = columns or list(rows[0])
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def fail(message: str, code: int = 2) -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}")
    raise SystemExit(code)
