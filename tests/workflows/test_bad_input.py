"""Bad input gets a clear error naming the problem, and loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.conftest import AppFactory
from tether.store.sqlite import SqliteStore


def _failure_type(err: tether.ActivityError) -> str:
    """The type of the application error an activity failed with."""
    assert isinstance(err.__cause__, tether.ApplicationError)
    return err.__cause__.type


def _app(make_app: AppFactory, **options: object) -> tether.App:
    app = make_app(**options)

    @app.activity
    async def echo(text: str) -> str:
        return text

    @app.workflow
    async def typed(ctx: tether.Context, count: int, label: str = "x") -> str:
        return await ctx.activity(echo, label * count)

    return app


async def test_unknown_workflow_type(make_app: AppFactory) -> None:
    app = _app(make_app)
    async with app:
        with pytest.raises(tether.UnknownWorkflowType, match=r"'tpyed'.*known: typed"):
            await app.client.start("tpyed", 1)
        assert (await app.client.list()).runs == []


async def test_a_run_no_worker_knows_waits_and_says_why(make_app: AppFactory) -> None:
    starter = make_app()  # knows no workflows, like the CLI without --app
    app = _app(make_app)
    async with starter, app:
        handle = await starter.client.start("not_deployed_yet")
        async with app.worker(stuck_retry=0.05):
            for _ in range(500):
                run = await handle.describe()
                if run.stuck:
                    break
                await app.store.wait_for_work(["default"], ["default"], 0.01)
    assert run.status == tether.RunStatus.RUNNING
    assert run.stuck is not None and "not_deployed_yet" in run.stuck


async def test_wrong_argument_types_are_refused_before_anything_is_stored(
    make_app: AppFactory,
) -> None:
    app = _app(make_app)
    async with app:
        with pytest.raises(tether.InvalidArgument, match="argument 'count' of typed"):
            await app.client.start("typed", "three")
        with pytest.raises(tether.InvalidArgument, match="takes 1 to 2 argument"):
            await app.client.start("typed")
        with pytest.raises(tether.InvalidArgument, match="workflow id"):
            await app.client.start("typed", 1, id=42)  # type: ignore[arg-type]
        with pytest.raises(tether.InvalidArgument, match="unknown status"):
            await app.client.list(status="finished")
        assert (await app.client.list()).runs == []


async def test_wrong_types_in_client_calls_are_invalid_argument_on_both_stores(
    make_app: AppFactory,
) -> None:
    """Not a store error on one store and "not found" on the other."""
    app = _app(make_app)

    @app.workflow
    async def measured(ctx: tether.Context, seconds: float) -> float:
        return seconds

    async with app:
        handle = await app.client.start("typed", 1, id="one")
        calls = {
            "a namespace": lambda: app.client.start("typed", 1, namespace=5),  # type: ignore[arg-type]
            "a workflow id": lambda: app.client.get_handle(5).describe(),  # type: ignore[arg-type]
            "a run id": lambda: app.client.get_handle("one", run_id=7).describe(),  # type: ignore[arg-type]
            "timeout": lambda: handle.result(timeout="soon"),  # type: ignore[arg-type]
            "not a finite number": lambda: app.client.start(measured, float("nan")),
            "limit": lambda: app.client.list(limit=True),
        }
        for message, call in calls.items():
            with pytest.raises(tether.InvalidArgument, match=message):
                await call()
        with pytest.raises(tether.InvalidArgument, match="not a finite number"):
            await app.client.start(measured, float("inf"))
        for end in (handle.cancel, handle.terminate):
            with pytest.raises(tether.PayloadTooLarge, match="a reason holds at most 10000"):
                await end("why" * 3_334)
        assert [e.type for e in await handle.history()] == ["WorkflowStarted"]
        assert [r.workflow_id for r in (await app.client.list()).runs] == ["one"]


async def test_payloads_that_cannot_be_encoded(make_app: AppFactory) -> None:
    app = make_app()  # knows no workflow types, so nothing converts the arguments

    @app.workflow
    async def loose(ctx: tether.Context, value: object) -> None: ...

    async with app:
        with pytest.raises(tether.InvalidArgument, match="arguments of workflow loose"):
            await app.client.start(loose, object())
        with pytest.raises(tether.InvalidArgument, match="cannot be encoded"):
            await app.client.start(loose, {1, object()})
        assert (await app.client.list()).runs == []


async def test_a_payload_with_nan_or_infinity_is_refused_not_stored_as_null(
    make_app: AppFactory,
) -> None:
    """JSON has no NaN: encoded as null, the value would come back changed. Untyped
    arguments, an activity's result and a workflow's result holding one are refused,
    with ``None`` (a real null) still going through."""
    app = make_app()

    @app.activity
    async def sensor(text: str) -> Any:
        return {"celsius": float(text), "note": None}

    @app.workflow
    async def read(ctx: tether.Context, text: str) -> Any:
        try:
            return await ctx.activity(sensor, text)
        except tether.ActivityError as err:
            return [_failure_type(err), str(err.__cause__)]

    @app.workflow
    async def gives_back(ctx: tether.Context, value: Any) -> Any:
        return [value, float(value["text"])] if isinstance(value, dict) else value

    async with app, app.worker():
        for bad in ({"t": [float("nan")]}, (1.0, float("-inf")), [{"deep": {"x": float("inf")}}]):
            with pytest.raises(tether.InvalidArgument, match="not finite"):
                await app.client.start(gives_back, bad)
        assert (await app.client.list()).runs == []
        assert await app.client.execute(gives_back, None, timeout=30) is None
        assert await app.client.execute(read, "1.5", timeout=30) == {"celsius": 1.5, "note": None}
        kind, message = await app.client.execute(read, "nan", timeout=30)
        assert kind == "InvalidArgument" and "not finite" in message
        with pytest.raises(tether.WorkflowFailed) as failed:
            await app.client.execute(gives_back, {"text": "inf"}, timeout=30)
        cause = failed.value.__cause__
        assert isinstance(cause, tether.ApplicationError) and cause.type == "InvalidArgument"
        assert "not finite" in str(cause)


async def test_payload_limit_applies_everywhere(make_app: AppFactory) -> None:
    app = _app(make_app, max_payload=1_000)

    @app.activity
    async def bloat(n: int) -> str:
        return "y" * n

    @app.workflow
    async def big_result(ctx: tether.Context, n: int) -> str:
        return "z" * n

    @app.workflow
    async def big_step(ctx: tether.Context, n: int) -> str:
        try:
            return await ctx.activity(bloat, n)
        except tether.ActivityError as err:
            return _failure_type(err)

    async with app, app.worker():
        with pytest.raises(tether.PayloadTooLarge, match="over the limit of 1000 bytes"):
            await app.client.start("typed", 1, "w" * 2_000)
        assert await app.client.execute(big_step, 5_000, timeout=30) == "PayloadTooLarge"
        with pytest.raises(tether.WorkflowFailed) as failed:
            await app.client.execute(big_result, 5_000, timeout=30)
        cause = failed.value.__cause__
        assert isinstance(cause, tether.ApplicationError) and cause.type == "PayloadTooLarge"
        # Small payloads still go through on the same app.
        assert await app.client.execute("typed", 2, "ab", timeout=30) == "abab"


async def test_text_with_the_nul_character_is_refused_alike_on_every_store(
    make_app: AppFactory,
) -> None:
    """PostgreSQL's text cannot hold NUL: an id, name, key or reason with one is refused
    up front on both stores (not a store error, not stored on one store only), and a
    lookup with one finds nothing."""
    app = _app(make_app)

    @app.workflow
    async def waits(ctx: tether.Context) -> str:
        await ctx.wait_signal("go")
        return "done"

    async with app:
        nul = "a\x00b"
        refusals = [
            app.client.start("typed", 1, id=nul),
            app.client.start("typed", 1, task_queue=nul),
            app.client.start("typed", 1, search_attributes={"customer": nul}),
            app.client.start("typed", 1, search_attributes={"tags": ["x", nul]}),
            app.client.list(workflow_type=nul),
            app.client.list(search_attributes={"customer": nul}),
        ]
        for call in refusals:
            with pytest.raises(tether.InvalidArgument, match="NUL"):
                await call
        with pytest.raises(tether.InvalidArgument, match="NUL"):
            tether.Priority(fairness_key=nul)
        with pytest.raises(tether.InvalidArgument, match="task_queues"):
            await app.client.namespaces.create("odd", task_queues=[nul])
        handle = await app.client.start(waits, id="fine")
        for call in [
            handle.signal(nul, 1),
            handle.cancel(reason=nul),
            handle.terminate(reason="why", identity=nul),
            handle.update("anything", update_id=nul),
        ]:
            with pytest.raises(tether.InvalidArgument, match="NUL"):
                await call
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.get_handle(nul).describe()
        with pytest.raises(tether.WorkflowNotFound):
            await app.client.get_handle("fine", run_id=nul).describe()
        runs = (await app.client.list()).runs
        assert [(r.workflow_id, r.status) for r in runs] == [("fine", tether.RunStatus.RUNNING)]
        assert [e.type for e in await handle.history()] == ["WorkflowStarted"]


async def test_ids_and_names_longer_than_1000_bytes_are_refused_alike(
    make_app: AppFactory,
) -> None:
    """PostgreSQL indexes ids, task queues and keywords, and an index entry holds about
    2,700 bytes: the limit is in UTF-8 bytes, on both stores."""
    app = _app(make_app)
    async with app:
        longest = "\u00e9" * 500  # two bytes each: 1,000 bytes
        handle = await app.client.start("typed", 1, id=longest, task_queue=longest)
        assert (await handle.describe()).workflow_id == longest
        for call in [
            app.client.start("typed", 1, id=longest + "x"),
            app.client.start("typed", 1, task_queue="q" * 1001),
            app.client.start("not_a_type" * 101),
        ]:
            with pytest.raises(tether.InvalidArgument, match="at most 1000 bytes"):
                await call
        keyword = "\u4e00" * 342  # three bytes each: 1,026 bytes, 342 characters
        with pytest.raises(tether.PayloadTooLarge, match="at most 1024 bytes"):
            await app.client.start("typed", 1, search_attributes={"k": keyword})
        assert [r.workflow_id for r in (await app.client.list()).runs] == [longest]


async def test_workflow_code_naming_text_with_nul_fails_its_run_alike(
    make_app: AppFactory,
) -> None:
    """A task queue or child id with NUL, given by workflow code, fails the run with
    the reason on both stores (not a store error on one, a run waiting forever on a
    queue nobody serves on the other)."""
    app = _app(make_app)

    @app.workflow
    async def odd_queue(ctx: tether.Context) -> str:
        return await ctx.activity("echo", "x", task_queue="q\x00")

    @app.workflow
    async def odd_child(ctx: tether.Context) -> str:
        return await ctx.child(odd_queue, id="c\x00")

    @app.workflow
    async def odd_names(ctx: tether.Context) -> str:
        try:
            await ctx.activity("ech\x00", "x")
        except tether.InvalidArgument:
            return await ctx.child("typ\x00")
        return "not refused"

    async with app, app.worker():
        for workflow in (odd_queue, odd_child, odd_names):
            with pytest.raises(tether.WorkflowFailed) as failed:
                await app.client.execute(workflow, timeout=30)
            assert "NUL" in str(failed.value.__cause__)


def test_bad_options_are_named() -> None:
    app = tether.App("unused.db")
    with pytest.raises(tether.InvalidArgument, match=r"tether\.Retry"):
        app.activity(retry=3)  # type: ignore[call-overload]
    with pytest.raises(tether.InvalidArgument, match="backoff"):
        tether.Retry(backoff=0.5)
    with pytest.raises(tether.InvalidArgument, match="negative"):
        app.activity(start_to_close=-1)
    with pytest.raises(tether.InvalidArgument, match="async def"):

        @app.workflow
        def not_async(ctx: tether.Context) -> None: ...


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_file_that_is_not_ours_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my shopping list\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()
    for path in (notes, other):
        before = _digest(path)
        with pytest.raises(tether.IncompatibleStore, match=str(path)):
            await tether.App(str(path)).open()
        assert _digest(path) == before


async def test_a_store_url_that_names_no_store_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(tether.InvalidArgument, match="unsupported store URL scheme 'mysql'"):
        tether.App("mysql://user@host/db")
    with pytest.raises(tether.IncompatibleStore, match="is a directory"):
        await tether.App(str(tmp_path)).open()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []  # nothing written there


async def _store_with_one_run(tmp_path: Path) -> Path:
    """A SQLite store file holding one completed run, ``kept``."""
    path = tmp_path / "tether.db"
    app = tether.App(str(path))

    @app.workflow
    async def noop(ctx: tether.Context) -> int:
        return 1

    async with app, app.worker():
        await app.client.execute(noop, id="kept", timeout=30)
    return path


async def test_a_store_file_locked_by_another_process_is_unavailable_not_foreign(
    tmp_path: Path,
) -> None:
    """A lock held past the busy timeout is StoreUnavailable (try again), not
    IncompatibleStore ("not a SQLite database"), and the file is left as it was."""
    path = await _store_with_one_run(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        for _ in range(2):
            locked = tether.App(SqliteStore(path, busy_timeout=0.2))
            with pytest.raises(tether.StoreUnavailable, match="locked"):
                await locked.open()
    finally:
        holder.close()
    async with tether.App(str(path)) as again:
        assert (await again.client.get_handle("kept").describe()).status == "completed"


async def test_a_newer_schema_is_refused_and_its_data_kept(tmp_path: Path) -> None:
    path = await _store_with_one_run(tmp_path)
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.close()
    before = _digest(path)
    with pytest.raises(tether.IncompatibleStore, match="newer than this Tether"):
        await tether.App(str(path)).open()
    assert _digest(path) == before
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    async with tether.App(str(path)) as again:
        assert await again.client.get_handle("kept").result() == 1
