"""Nothing crosses namespaces: every public call on a run of one namespace, made from
another, is refused; listing never mixes them; the same workflow id is two runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import tether
from tests.conftest import AppFactory


def _app(make_app: AppFactory) -> tether.App:
    app = make_app()

    @app.workflow
    async def inbox(ctx: tether.Context, owner: str) -> list[Any]:
        got: list[Any] = []
        ctx.set_query_handler("owner", lambda: owner)
        ctx.set_query_handler("got", lambda: list(got))
        while len(got) < 2:
            got.append(await ctx.wait_signal("mail"))
        return [owner, *got]

    return app


async def test_every_call_is_refused_across_namespaces(make_app: AppFactory) -> None:
    app = _app(make_app)
    client = app.client
    async with app, app.worker(namespaces=["a", "b"]):
        await client.namespaces.create("a")
        await client.namespaces.create("b")
        a = await client.start("inbox", "alice", id="same", namespace="a")
        b = await client.start("inbox", "bob", id="same", namespace="b")
        assert a.run_id != b.run_id
        assert await a.query("owner") == "alice" and await b.query("owner") == "bob"

        # A handle naming A's run by id and run id, but in namespace B, reaches nothing.
        foreign = client.get_handle("same", a.run_id, namespace="b")
        calls: list[Callable[[], Awaitable[Any]]] = [
            foreign.describe,
            foreign.history,
            lambda: foreign.result(timeout=1),
            lambda: foreign.signal("mail", "stolen"),
            lambda: foreign.query("got"),
            lambda: foreign.cancel("no"),
            lambda: foreign.terminate("no"),
            lambda: client.delete_run("same", a.run_id, namespace="b"),
        ]
        for call in calls:
            with pytest.raises(tether.WorkflowNotFound):
                await call()
        # A namespace that does not exist reaches nothing either.
        ghost = client.get_handle("same", namespace="ghost")
        for call in [ghost.describe, ghost.history, lambda: ghost.signal("mail", 1)]:
            with pytest.raises(tether.WorkflowNotFound):
                await call()
        for start in [
            lambda: client.start("inbox", "x", id="same", namespace="ghost"),
            lambda: client.signal_with_start(
                "inbox", "x", id="same", signal="mail", payload=1, namespace="ghost"
            ),
        ]:
            with pytest.raises(tether.NamespaceNotFound):
                await start()
        with pytest.raises(tether.NamespaceNotFound):
            await client.namespaces.describe("ghost")

        # Signals reach only their own namespace's run of the id.
        await client.signal_with_start(
            "inbox", "unused", id="same", signal="mail", payload="for bob", namespace="b"
        )
        await b.signal("mail", "also bob")
        assert await b.result(timeout=30) == ["bob", "for bob", "also bob"]
        assert await a.query("got") == []
        await a.signal("mail", "for alice")
        await a.signal("mail", "again")
        assert await a.result(timeout=30) == ["alice", "for alice", "again"]

        # Listing never mixes namespaces; figures count their own runs only.
        await client.start("inbox", "carol", id="only-a", namespace="a")
        listed_a = [(r.namespace, r.workflow_id) for r in (await client.list(namespace="a")).runs]
        listed_b = [(r.namespace, r.workflow_id) for r in (await client.list(namespace="b")).runs]
        assert sorted(listed_a) == [("a", "only-a"), ("a", "same")]
        assert listed_b == [("b", "same")]
        with pytest.raises(tether.NamespaceNotFound):  # a typo is not an empty namespace
            await client.list(namespace="ghost")
        figures_b = (await client.namespaces.describe("b")).to_dict()["runs"]
        assert figures_b == {"running": 0, "closed": 1, "by_status": {"completed": 1}}

        # Deleting a run or a namespace touches only its own.
        await client.delete_run("same", namespace="b")
        assert (await a.describe()).status == tether.RunStatus.COMPLETED
        await client.namespaces.delete("b")
        assert len((await client.list(namespace="a")).runs) == 2
