"""Priority and fairness keys end to end: through the Client, children and the CLI."""

from __future__ import annotations

import pytest

import tether
from tests.cli.test_cli import _tether
from tests.conftest import AppFactory


def _app(make_app: AppFactory, done: list[str]) -> tether.App:
    app = make_app()

    @app.activity
    async def note(tag: str) -> str:
        done.append(tag)
        return tag

    @app.workflow
    async def job(ctx: tether.Context, tag: str) -> str:
        return await ctx.activity(note, tag)

    @app.workflow
    async def parent(ctx: tether.Context, tag: str) -> str:
        return await ctx.child(job, tag)

    return app


async def test_a_customer_flood_does_not_hold_back_another(make_app: AppFactory) -> None:
    done: list[str] = []
    app = _app(make_app, done)
    async with app:
        big, small = tether.Priority(fairness_key="big"), tether.Priority(fairness_key="small")
        flood = [await app.client.start("job", f"big{i}", priority=big) for i in range(60)]
        late = [await app.client.start("job", f"small{i}", priority=small) for i in range(3)]
        # One slot of each kind: the order tasks are claimed in is the order they run.
        async with app.worker(max_workflow_tasks=1, max_activities=1):
            for handle in late + flood:
                await handle.result(timeout=60)
    assert max(done.index(f"small{i}") for i in range(3)) < 15, done


async def test_priority_goes_first_and_children_keep_it(make_app: AppFactory) -> None:
    done: list[str] = []
    app = _app(make_app, done)
    async with app:
        normal = [await app.client.start("job", f"n{i}") for i in range(10)]
        urgent = await app.client.start("parent", "urgent", priority=tether.Priority(level=0))
        async with app.worker(max_workflow_tasks=1, max_activities=1):
            assert await urgent.result(timeout=60) == "urgent"
            for handle in normal:
                await handle.result(timeout=60)
        assert done[0] == "urgent"
        history = await urgent.history()
        child_id = next(e for e in history if e.type == "ChildWorkflowStarted").attrs["workflow_id"]
        child_started = (await app.client.get_handle(child_id).history())[0]
        assert child_started.attrs["fairness"] == {"priority": 0, "key": None, "weight": 1.0}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"level": 10}, "0 to 9"),
        ({"level": "high"}, "must be an int"),
        ({"fairness_key": ""}, "1 to 200 characters"),
        ({"fairness_weight": 0}, "0.001 to 1000"),
    ],
)
def test_bad_priorities_are_refused(given: dict[str, object], message: str) -> None:
    with pytest.raises(tether.InvalidArgument, match=message):
        tether.Priority(**given)  # type: ignore[arg-type]


async def test_cli_start_with_a_fairness_key(store_url: str) -> None:
    db = ["--db", store_url]
    await _tether(
        "workflow", "start", "greet", "--arg", '"Ada"', "--id", "f1", "--priority", "1",
        "--fairness-key", "cust-7", "--fairness-weight", "3", *db,
    )  # fmt: skip
    events = await _tether("workflow", "history", "f1", "--json", *db)
    assert events[0]["attrs"]["fairness"] == {"priority": 1, "key": "cust-7", "weight": 3.0}
    bad = await _tether("workflow", "start", "greet", "--priority", "12", *db, code=2)
    assert "0 to 9" in bad
