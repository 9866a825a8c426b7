"""``tether workflow reset`` on every store: a thin command over ``WorkflowHandle.reset``."""

from __future__ import annotations

from collections import Counter

import tether
from tests.cli.test_cli import _tether
from tests.store.helpers import eventually
from tether.history import EventType


async def test_reset_from_the_command_line(store_url: str) -> None:
    db = ["--db", store_url]
    app = tether.App(store_url)
    ran: Counter[str] = Counter()

    @app.activity
    async def step(name: str) -> str:
        ran[name] += 1
        return name

    @app.workflow
    async def pair(ctx: tether.Context) -> list[str]:
        first = await ctx.activity(step, "first")
        note = await ctx.wait_signal("note")
        return [first, note, await ctx.activity(step, "second")]

    async with app, app.worker():
        handle = await app.client.start(pair, id="p1")

        async def first_done() -> int | None:
            events = await handle.history()
            done = [e.seq for e in events if e.type == EventType.ACTIVITY_COMPLETED]
            return done[0] if done else None

        point = await eventually(first_done)
        await handle.signal("note", "hi")
        assert await handle.result(timeout=30) == ["first", "hi", "second"]
        bad = await _tether("workflow", "reset", "p1", "--to", "later", *db, code=2)
        assert "unknown reset point 'later'" in bad
        closing = await _tether("workflow", "reset", "p1", "--to", "999", *db, code=2)
        assert "not in its history" in closing
        new = await _tether(
            "workflow", "reset", "p1", "--to", str(point), "--reason", "again",
            "--no-reapply-signals", "--json", *db,
        )  # fmt: skip
        assert new["workflow_id"] == "p1" and new["run_id"] != handle.run_id
        await app.client.get_handle("p1").signal("note", "bye")
        assert await app.client.get_handle("p1").result(timeout=30) == ["first", "bye", "second"]
        history = await _tether("workflow", "history", "p1", "--json", *db)
        marker = history[point]
        assert marker["type"] == "WorkflowReset"
        assert marker["attrs"]["base_run_id"] == handle.run_id
        assert marker["attrs"]["identity"] == "cli" and marker["attrs"]["reason"] == "again"
        assert "WorkflowReset" in await _tether("workflow", "history", "p1", *db)
        again = await _tether("workflow", "reset", "p1", "--to", "step:1", "--json", *db)
        assert await app.client.get_handle("p1", again["run_id"]).result(timeout=30) == [
            "first",
            "bye",  # the signal the base run got after the point, sent again
            "second",
        ]
    assert ran == {"first": 2, "second": 3}
