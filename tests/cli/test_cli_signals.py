"""Signals, queries and cancellation from the command line, on every store."""

from __future__ import annotations

from tests.cli import agent_app
from tests.cli.test_cli import _tether
from tests.store.helpers import eventually


async def test_signal_query_and_signal_with_start(store_url: str) -> None:
    db = ["--db", store_url]
    app = ["--app", "tests.cli.agent_app:app"]
    worker_app = agent_app.build(store_url)
    async with worker_app, worker_app.worker():
        started = await _tether(
            "workflow", "start", "agent", "--arg", '"llamas"', "--id", "a1",
            "--signal", "note", "--signal-arg", "5", "--json", *db,
        )  # fmt: skip
        again = await _tether(
            "workflow", "start", "agent", "--arg", '"llamas"', "--id", "a1",
            "--signal", "note", "--signal-arg", "7", "--json", *db,
        )  # fmt: skip
        assert again["run_id"] == started["run_id"]  # the open run was signalled
        sent = await _tether("workflow", "signal", "a1", "note", "--arg", "1", "--json", *db)
        assert sent == {"workflow_id": "a1", "signal": "note", "payload": 1}

        async def notes() -> bool:
            answer = await _tether("workflow", "query", "a1", "notes", "--json", *app, *db)
            return bool(answer["result"] == [5, 7, 1])

        await eventually(notes)
        above = await _tether(
            "workflow", "query", "a1", "count_above", "--arg", "4", "--json", *app, *db
        )
        assert above == {"result": 2}
        await _tether("workflow", "signal", "a1", "done", *db)
        result = await _tether("workflow", "result", "a1", "--json", *db)
        assert result["result"] == {"topic": "llamas", "notes": [5, 7, 1]}
        table = await _tether("workflow", "history", "a1", *db)
        assert "SignalReceived" in table and "note: 5" in table


async def test_cancel_and_refusals(store_url: str) -> None:
    db = ["--db", store_url]
    worker_app = agent_app.build(store_url)
    async with worker_app, worker_app.worker():
        await _tether("workflow", "start", "agent", "--arg", '"x"', "--id", "c1", *db)
        ended = await _tether("workflow", "cancel", "c1", "--reason", "no longer needed", *db)
        assert "running" in ended  # asked to cancel; the run closes shortly after
        failed = await _tether("workflow", "result", "c1", *db, code=1)
        assert "canceled" in failed
        described = await _tether("workflow", "describe", "c1", "--json", *db)
        assert described["status"] == "canceled"
        assert "no longer needed" in described["failure"]["message"]

        late = await _tether("workflow", "signal", "c1", "note", "--arg", "1", *db, code=2)
        assert "already canceled" in late
        again = await _tether("workflow", "cancel", "c1", *db, code=2)
        assert "already canceled" in again
        missing = await _tether("workflow", "signal", "nope", "note", *db, code=2)
        assert "workflow_not_found" in missing
        no_app = await _tether("workflow", "query", "c1", "notes", *db, code=2)
        assert "--app" in no_app
        unknown = await _tether(
            "workflow", "query", "c1", "nope", "--app", "examples.hello:app", *db, code=2
        )
        assert "does not register workflow 'agent'" in unknown
        no_id = await _tether("workflow", "start", "agent", "--signal", "note", *db, code=2)
        assert "--signal needs --id" in no_id
