"""``tether usage`` on every store: the ledger per model, workflow type, day, tenant;
``tether llm-limits``: the shared limits' state."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

import tether
from tether.cli import app as cli
from tether.llm import LLMConfig, Price, StepInfo
from tether.store.llm_limits import CallLimits, CallStart

runner = CliRunner()


async def _usage(*args: str, code: int = 0) -> Any:
    result = await asyncio.to_thread(runner.invoke, cli, ["usage", *args])
    assert result.exit_code == code, (result.output, result.exception)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result.output


async def test_usage_command(store_url: str) -> None:
    config = LLMConfig.simulated(prices={"sim:sim-fast": Price(input=1.0, output=2.0)})
    app = tether.App(store_url, namespace="acme", llm=config)

    @app.workflow
    async def chat(ctx: tether.Context, n: int) -> int:
        for i in range(n):
            await ctx.llm("fast", f"message {i}")
        return n

    try:
        async with app:
            await app.client.namespaces.create("acme")
            async with app.worker():
                await app.client.execute(chat, 3, timeout=30)
    finally:
        await app.close()
    db = ["--db", store_url]
    by_model = await _usage("--namespace", "acme", "--json", *db)
    assert [(r["model"], r["calls"]) for r in by_model] == [("sim:sim-fast", 3)]
    row = by_model[0]
    expected = (row["input_tokens"] * 1.0 + row["output_tokens"] * 2.0) / 1e6
    assert abs(row["cost_usd"] - expected) < 1e-6
    grouped = await _usage("-n", "acme", "--by", "workflow_type", "--by", "day", "--json", *db)
    assert grouped[0]["workflow_type"] == "chat" and len(grouped[0]["day"]) == 10
    tenants = await _usage("--all-namespaces", "--by", "namespace", "--json", *db)
    assert [(r["namespace"], r["calls"]) for r in tenants] == [("acme", 3)]
    assert await _usage("--json", "--since", "1d", *db) == [], "the default namespace spent nothing"
    table = await _usage("-n", "acme", "--since", "2020-01-01", *db)
    assert "sim:sim-fast" in table and "LLM usage" in table
    bad = await _usage("--by", "colour", *db, code=2)
    assert "cannot group usage by colour" in bad


async def test_limits_command_and_calls_in_flight(store_url: str) -> None:
    app = tether.App(store_url)
    step = StepInfo("default", "w1", "r1", step=1, attempt=1)
    limits = CallLimits(concurrency=4, requests_per_minute=60)
    try:
        async with app:
            start = CallStart(step.record(0, "oa", "oa:m"), 10, 0.0, limits)
            assert (await app.store.begin_llm_call(start)).admitted
    finally:
        await app.close()
    db = ["--db", store_url]
    [state] = await _limits("--json", *db)
    assert (state["provider"], state["in_flight"], state["blocked_for"]) == ("oa", 1, 0)
    assert state["requests_left"] == 59
    table = await _limits(*db)
    assert "LLM limits" in table and "oa" in table
    assert await _limits("-n", "acme", "--json", *db) == []
    assert "in_flight" in await _usage(*db), "a call in flight is shown"
    [row] = await _usage("--json", *db)
    assert (row["calls"], row["in_flight"], row["failed"]) == (1, 1, 0)


async def _limits(*args: str) -> Any:
    result = await asyncio.to_thread(runner.invoke, cli, ["llm-limits", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout) if "--json" in args else result.output
