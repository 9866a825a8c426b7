"""Search attributes end to end on every store: set at start, upserted by workflow
code, carried by continue-as-new, given to children, and listed through the Client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tether
import tether.testing
from tests.conftest import AppFactory
from tether.history import EventType


def _app(make_app: AppFactory, **options: Any) -> tether.App:
    app = make_app(**options)

    @app.activity
    async def charge(amount: float) -> str:
        return f"charged {amount}"

    @app.workflow
    async def order(ctx: tether.Context, amount: float) -> dict[str, Any]:
        before = ctx.search_attributes
        receipt = await ctx.activity(charge, amount)
        ctx.upsert_search_attributes({"stage": "paid", "receipt": receipt, "draft": None})
        return {"before": sorted(before), "after": sorted(ctx.search_attributes)}

    return app


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_set_at_start_upserted_by_the_workflow_and_listed(
    make_app: AppFactory, cache_size: int
) -> None:
    app = _app(make_app)
    due = datetime(2026, 12, 1, tzinfo=UTC)
    async with app, app.worker(cache_size=cache_size):
        for i, customer in enumerate(["acme", "globex", "acme"]):
            result = await app.client.execute(
                "order", 10.0 * (i + 1), id=f"o{i}", timeout=30,
                search_attributes={"customer": customer, "priority": i, "due": due,
                                   "stage": "new", "draft": True, "tags": ["web", f"t{i}"]},
            )  # fmt: skip
            assert result == {
                "before": ["customer", "draft", "due", "priority", "stage", "tags"],
                "after": ["customer", "due", "priority", "receipt", "stage", "tags"],
            }
        run = await app.client.get_handle("o2").describe()
        assert run.search_attributes == {
            "customer": "acme", "priority": 2, "due": due, "stage": "paid",
            "receipt": "charged 30.0", "tags": ["web", "t2"],
        }  # fmt: skip

        async def listed(**kw: Any) -> list[str]:
            return [r.workflow_id for r in (await app.client.list(**kw)).runs]

        assert await listed(search_attributes={"customer": "acme"}) == ["o2", "o0"]
        assert await listed(search_attributes={"stage": "paid", "priority": tether.Range(1)}) == [
            "o2",
            "o1",
        ]
        assert await listed(search_attributes={"tags": "t1"}) == ["o1"]
        assert await listed(search_attributes={"draft": True}) == []
        assert await listed(search_attributes={"due": tether.Range(max=due)}) == ["o2", "o1", "o0"]
        assert await listed(workflow_type="order", status="completed", limit=1) == ["o2"]
        assert await listed(started_after=run.created_at) == ["o2"]
        assert await listed(closed_before=datetime.now(UTC) + timedelta(days=1)) == [
            "o2",
            "o1",
            "o0",
        ]
        history = await app.client.get_handle("o2").history()
    upserts = [e for e in history if e.type == EventType.SEARCH_ATTRIBUTES_UPSERTED]
    assert len(upserts) == 1  # replayed, never issued twice
    tether.testing.replay(app.registry.workflows["order"].fn, history)


async def test_wrong_types_at_start_are_refused_and_nothing_is_stored(
    make_app: AppFactory,
) -> None:
    app = _app(make_app)
    async with app:
        bad: list[Any] = [
            {"when": datetime(2026, 1, 1)},
            {"x": object()},
            {"x": None},
            {"bad name": 1},
            {"n": float("nan")},
            {"mixed": ["a", 1]},
            ["not", "a", "mapping"],
        ]
        for attrs in bad:
            with pytest.raises(tether.InvalidArgument):
                await app.client.start("order", 1.0, search_attributes=attrs)
        with pytest.raises(tether.PayloadTooLarge):
            await app.client.start("order", 1.0, search_attributes={"k": "x" * 5000})
        with pytest.raises(tether.PayloadTooLarge):
            await app.client.start("order", 1.0, search_attributes={f"a{i}": i for i in range(65)})
        assert (await app.client.list()).runs == []


async def test_bad_list_arguments_are_refused(make_app: AppFactory) -> None:
    app = _app(make_app)
    async with app:
        bad: list[dict[str, Any]] = [
            {"search_attributes": {"tags": ["a", "b"]}},
            {"search_attributes": {"n": tether.Range()}},
            {"search_attributes": {"n": tether.Range(1, 2.0)}},
            {"search_attributes": {"s": tether.Range("a", "b")}},
            {"search_attributes": "customer=acme"},
            {"started_after": datetime(2026, 1, 1)},
            {"closed_before": "yesterday"},
            {"cursor": "garbage"},
            {"status": "finished"},
            {"workflow_type": 3},
            {"limit": 0},
            {"search_attributes": {f"k{i}": i for i in range(65)}},  # SQLite: too deep
        ]
        for kwargs in bad:
            with pytest.raises(tether.InvalidArgument):
                await app.client.list(**kwargs)
        # As many filters as a run may hold attributes: a run that has them all matches.
        every = {f"k{i}": i for i in range(64)}
        await app.client.start("order", 1.0, id="all", search_attributes=every)
        await app.client.start("order", 1.0, id="one", search_attributes={"k0": 0})
        page = await app.client.list(search_attributes=every)
        assert [r.workflow_id for r in page.runs] == ["all"]


async def test_an_upsert_of_another_type_fails_the_run_clearly(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def retype(ctx: tether.Context) -> None:
        ctx.upsert_search_attributes({"priority": "high"})

    async with app, app.worker():
        handle = await app.client.start(retype, search_attributes={"priority": 1})
        with pytest.raises(tether.WorkflowFailed) as failed:
            await handle.result(timeout=30)
        assert isinstance(failed.value.__cause__, tether.ApplicationError)
        assert "has type int in this run" in str(failed.value.__cause__)
        assert (await handle.describe()).search_attributes == {"priority": 1}


async def test_continue_as_new_carries_attributes_and_children_get_their_own(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow
    async def child(ctx: tether.Context) -> dict[str, Any]:
        return ctx.search_attributes

    @app.workflow
    async def rounds(ctx: tether.Context, n: int) -> int:
        ctx.upsert_search_attributes({"round": n})
        if n < 3:
            ctx.continue_as_new(n + 1)
        kid = await ctx.child(child, id="kid", search_attributes={"role": "kid"})
        assert kid == {"role": "kid"}
        return n

    async with app, app.worker():
        handle = await app.client.start(rounds, 1, id="rounds", search_attributes={"team": "a"})
        assert await handle.result(timeout=30) == 3
        runs = (await app.client.list(workflow_type="rounds")).runs
        assert [r.search_attributes for r in runs] == [
            {"team": "a", "round": 3},
            {"team": "a", "round": 2},
            {"team": "a", "round": 1},
        ]
        team = await app.client.list(search_attributes={"team": "a", "round": 3})
        assert [r.status for r in team.runs] == ["completed"]
        kid = await app.client.get_handle("kid").describe()
        assert kid.search_attributes == {"role": "kid"}
        assert (await app.client.list(search_attributes={"role": "kid"})).runs[0].run_id == (
            kid.run_id
        )


async def test_a_reset_run_has_the_search_attributes_of_its_copied_history(
    make_app: AppFactory,
) -> None:
    app = _app(make_app)
    async with app, app.worker():
        handle = await app.client.start(
            "order", 5.0, id="o-reset", search_attributes={"customer": "initech", "priority": 7}
        )
        await handle.result(timeout=30)
        new_id = await handle.reset("step:1", reason="charge again")
        await app.client.get_handle("o-reset", new_id).result(timeout=30)
        new = await app.client.get_handle("o-reset", new_id).describe()
        listed = await app.client.list(search_attributes={"customer": "initech"})
    # The start's attributes come with the copy of its WorkflowStarted event; the code
    # after the point upserts the rest again.
    assert new.search_attributes == {
        "customer": "initech", "priority": 7, "stage": "paid", "receipt": "charged 5.0",
    }  # fmt: skip
    assert {r.run_id for r in listed.runs} == {handle.run_id, new_id}
