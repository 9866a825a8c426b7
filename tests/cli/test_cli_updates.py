"""Updates from the command line, on every store: plain, idempotent, with start, refused."""

from __future__ import annotations

from tests.cli import agent_app
from tests.cli.test_cli import _tether


async def test_update_and_update_with_start(store_url: str) -> None:
    db = ["--db", store_url]
    worker_app = agent_app.build(store_url)
    async with worker_app, worker_app.worker():
        started = await _tether(
            "workflow", "update", "u1", "add_note", "5", "--start", "agent",
            "--start-arg", '"llamas"', "--update-id", "first", "--timeout", "30", "--json", *db,
        )  # fmt: skip
        assert started["result"] == [5] and started["update_id"] == "first"
        again = await _tether(
            "workflow", "update", "u1", "add_note", "7", "--start", "agent",
            "--start-arg", '"ignored"', "--timeout", "30", "--json", *db,
        )  # fmt: skip
        assert again["result"] == [5, 7] and again["run_id"] == started["run_id"]
        same = await _tether(
            "workflow", "update", "u1", "add_note", "9", "--update-id", "first", "--json", *db
        )
        assert same["result"] == [5]  # the same update id: the first outcome, not run again
        table = await _tether("workflow", "history", "u1", *db)
        assert "UpdateAccepted" in table and "add_note(5) id first" in table
        assert "UpdateCompleted" in table

        rejected = await _tether("workflow", "update", "u1", "add_note", "1001", *db, code=2)
        assert "update_rejected" in rejected and "notes are at most 1000" in rejected
        mistyped = await _tether("workflow", "update", "u1", "add_note", '"x"', *db, code=2)
        assert "update_rejected" in mistyped and "argument 'note'" in mistyped
        unknown = await _tether("workflow", "update", "u1", "nope", *db, code=2)
        assert "no update handler 'nope'" in unknown
        # A negative number is not an option after "--".
        failed = await _tether("workflow", "update", "u1", "add_note", *db, "--", "-1", code=1)
        assert "update_failed" in failed
        missing = await _tether("workflow", "update", "zzz", "add_note", "1", *db, code=2)
        assert "workflow_not_found" in missing
        conflict = await _tether(
            "workflow", "update", "u1", "add_note", "1", "--start", "agent",
            "--start-arg", '"x"', "--id-conflict", "fail", *db, code=2,
        )  # fmt: skip
        assert "workflow_already_started" in conflict
        stray = await _tether(
            "workflow", "update", "u1", "add_note", "--start-arg", "1", *db, code=2
        )
        assert "need --start" in stray
        await _tether("workflow", "signal", "u1", "done", *db)
        result = await _tether("workflow", "result", "u1", "--json", *db)
        assert result["result"] == {"topic": "llamas", "notes": [5, 7]}
        closed = await _tether("workflow", "update", "u1", "add_note", "1", *db, code=2)
        assert "already completed" in closed
