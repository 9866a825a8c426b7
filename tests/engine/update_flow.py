"""A workflow with an update whose handler runs a step: its recorded history is
``golden/approve.json`` (made by running this module), guarding replay of updates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import tether
import tether.testing

app = tether.App()


@app.activity
async def revise(plan: list[str], edits: list[str]) -> list[str]:
    return [*plan, *edits]


@app.workflow
async def approval(ctx: tether.Context, topic: str) -> list[str]:
    state: dict[str, Any] = {"plan": [f"research {topic}"]}

    def check(edits: list[str]) -> None:
        if not edits:
            raise ValueError("no edits")

    @ctx.update("approve", validator=check)
    async def approve(edits: list[str]) -> list[str]:
        state["plan"] = await ctx.activity(revise, state["plan"], edits)
        return list(state["plan"])

    ctx.set_update_handler("size", lambda: len(state["plan"]))
    await ctx.wait_signal("publish")
    return list(state["plan"])


async def _record(path: Path) -> None:
    async with app, app.worker():
        handle = await app.client.start(approval, "tides", id="golden-approval")
        await handle.update("approve", ["tables"], update_id="approve-1")
        await handle.update("size", update_id="size-1")
        await handle.signal("publish")
        await handle.result()
        tether.testing.dump_history(await handle.history(), path)


if __name__ == "__main__":
    asyncio.run(_record(Path(__file__).parent / "golden" / "approve.json"))
