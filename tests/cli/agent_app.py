"""An app for the CLI tests of signals, queries, updates and cancellation (``--app``
loads it)."""

from __future__ import annotations

from typing import Any

import tether


def build(store: str | None = None) -> tether.App:
    """A fresh App with the workflow registered (the test's worker uses its own)."""
    app = tether.App(store)

    @app.workflow
    async def agent(ctx: tether.Context, topic: str) -> dict[str, Any]:
        notes: list[Any] = []
        ctx.set_query_handler("notes", lambda: notes)
        ctx.set_query_handler("count_above", lambda n: sum(1 for x in notes if x > n))

        def small(note: float) -> None:
            if note > 1000:
                raise ValueError("notes are at most 1000")

        @ctx.update("add_note", validator=small)
        def add_note(note: float) -> list[Any]:
            if note < 0:
                raise ValueError("a negative note")
            notes.append(note)
            return list(notes)

        while True:
            name, payload = await ctx.wait_signal(["note", "done"])
            if name == "done":
                return {"topic": topic, "notes": notes}
            notes.append(payload)

    return app


app = build()
