"""Continue-as-new and child runs from the command line: results follow the chain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

import tether
from tether.cli import app as cli

runner = CliRunner()


async def _tether(*args: str) -> Any:
    result = await asyncio.to_thread(runner.invoke, cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


async def test_result_follows_continue_as_new_and_list_shows_the_chain(store_url: str) -> None:
    app = tether.App(store_url)

    @app.workflow
    async def leaf(ctx: tether.Context, n: int) -> int:
        return n * 2

    @app.workflow
    async def counter(ctx: tether.Context, total: int, left: int) -> int:
        total += await ctx.child(leaf, left)
        if left > 1:
            ctx.continue_as_new(total, left - 1)
        return total

    db = ["--db", store_url]
    async with app, app.worker():
        started = await _tether(
            "workflow", "start", "counter", "--arg", "0", "--arg", "3", "--id", "c1",
            "--wait", "--json", *db,
        )  # fmt: skip
        assert started["result"] == 2 * (3 + 2 + 1)
        assert (await _tether("workflow", "result", "c1", "--json", *db))["result"] == 12
        listed = await _tether("workflow", "list", "--status", "continued_as_new", "--json", *db)
        children = await _tether("workflow", "list", "--type", "leaf", "--json", *db)
    await app.close()
    assert [r["workflow_id"] for r in listed["runs"]] == ["c1", "c1"]
    kids = children["runs"]
    assert len(kids) == 3 and all(r["status"] == "completed" for r in kids)
