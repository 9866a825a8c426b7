"""``tether workflow start --attr`` and ``tether workflow list`` filters, on every store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from examples.visibility import app as orders_app
from tether.cli import app as cli

runner = CliRunner()


async def _tether(*args: str, code: int = 0) -> Any:
    result = await asyncio.to_thread(runner.invoke, cli, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result.output


async def test_start_with_attributes_and_list_by_them(store_url: str) -> None:
    db = ["--db", store_url]
    orders_app.use_store(store_url)
    async with orders_app, orders_app.worker():
        for i, (customer, amount) in enumerate([("acme", 120), ("globex", 40), ("acme", 60)]):
            await _tether(
                "workflow", "start", "order", "--arg", f'"o{i}"', "--id", f"o{i}", "--wait",
                "--attr", f"customer={customer}", "--attr", f"amount:float={amount}",
                "--attr", "tags=[\"cli\", \"web\"]", "--attr", "due:datetime=2026-12-01T00:00Z",
                *db,
            )  # fmt: skip

        async def listed(*filters: str) -> list[str]:
            out = await _tether("workflow", "list", "--json", *filters, *db)
            return [r["workflow_id"] for r in out["runs"]]

        assert await listed("--attr", "customer=acme") == ["o2", "o0"]
        assert await listed("--attr", "amount=50.0..") == ["o2", "o0"]
        assert await listed("--attr", "amount=..50.0", "--attr", "stage=shipped") == ["o1"]
        assert await listed("--attr", "tags=web", "--type", "order", "--status", "completed") == [
            "o2",
            "o1",
            "o0",
        ]
        assert await listed("--attr", "due:datetime=2026-11-30T00:00Z..2026-12-02T00:00Z") == [
            "o2",
            "o1",
            "o0",
        ]
        assert await listed("--started-after", "2100-01-01T00:00Z") == []
        assert await listed("--closed-before", "4102444800") == ["o2", "o1", "o0"]
        described = await _tether("workflow", "describe", "o0", "--json", *db)
        attrs = described["search_attributes"]
        assert attrs["customer"] == "acme" and attrs["amount"] == 120.0
        assert attrs["due"] == "2026-12-01T00:00:00+00:00" and attrs["stage"] == "shipped"

        first = await _tether("workflow", "list", "--limit", "2", "--json", *db)
        rest = await _tether(
            "workflow", "list", "--limit", "2", "--cursor", first["next_cursor"], "--json", *db
        )
        assert [r["workflow_id"] for r in first["runs"] + rest["runs"]] == ["o2", "o1", "o0"]
        table = await _tether("workflow", "list", "--attr", "customer=globex", *db)
        assert "run_id" in table and "custome" in table  # the attributes, however narrow

        # Bad input: exit code 2 and a clear message, nothing started.
        bad = await _tether("workflow", "list", "--attr", "amount:int=lots", *db, code=2)
        assert "not of type int" in bad
        assert "NAME=VALUE" in await _tether("workflow", "list", "--attr", "oops", *db, code=2)
        assert "page token" in await _tether("workflow", "list", "--cursor", "zz", *db, code=2)
        out = await _tether(
            "workflow", "start", "order", "--arg", '"x"', "--attr", "when:datetime=2026-01-01",
            *db, code=2,
        )  # fmt: skip
        assert "timezone-aware" in out
        assert len((await _tether("workflow", "list", "--json", *db))["runs"]) == 3
