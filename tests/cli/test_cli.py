"""The CLI end to end on every store: thin commands over the same Client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

import tether
import tether.testing
from examples.hello import app as hello_app
from tether.cli import app as cli

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


async def _tether(*args: str, code: int = 0) -> Any:
    """Run a command in a thread (it runs its own event loop); return its JSON output."""
    result = await asyncio.to_thread(runner.invoke, cli, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result.output


async def test_workflow_commands(store_url: str) -> None:
    db = ["--db", store_url]
    hello_app.use_store(store_url)
    async with hello_app, hello_app.worker():
        started = await _tether(
            "workflow", "start", "greet", "--arg", '"Grace"', "--id", "g1", "--wait",
            "--json", *db,
        )  # fmt: skip
        assert started["result"] == "HELLO GRACE, ADMIRAL"
        described = await _tether("workflow", "describe", "g1", "--json", *db)
        assert described["status"] == "completed" and described["type"] == "greet"
        events = await _tether("workflow", "history", "g1", "--json", *db)
        assert events[0]["type"] == "WorkflowStarted" and events[-1]["type"] == (
            "WorkflowCompleted"
        )
        table = await _tether("workflow", "history", "g1", *db)
        assert "TimerFired" in table and "lookup('Grace')" in table
        assert (await _tether("workflow", "result", "g1", "--json", *db))["result"].startswith(
            "HELLO"
        )
        listed = await _tether("workflow", "list", "--status", "completed", "--json", *db)
        assert [r["workflow_id"] for r in listed["runs"]] == ["g1"]

        again = await _tether(
            "workflow", "start", "greet", "--arg", '"Ada"', "--id", "g1", "--id-reuse", "reject",
            *db, code=2,
        )  # fmt: skip
        assert "id_reuse='reject'" in again
        await _tether("workflow", "start", "greet", "--arg", '"Ada"', "--id", "g2", *db)
        same = await _tether(
            "workflow", "start", "greet", "--arg", '"Ada"', "--id", "g2",
            "--id-conflict", "use_existing", "--json", *db,
        )  # fmt: skip
        assert same["workflow_id"] == "g2"
        ended = await _tether("workflow", "terminate", "g2", "--reason", "test", "--json", *db)
        assert ended["status"] == "terminated"
        failed = await _tether("workflow", "result", "g2", *db, code=1)
        assert "terminated" in failed


async def test_errors_exit_with_a_code_and_a_message(store_url: str) -> None:
    db = ["--db", store_url]
    missing = await _tether("workflow", "describe", "nope", *db, code=2)
    assert "No such workflow run" in missing and "workflow_not_found" in missing
    checked = await _tether(
        "workflow", "start", "greet", "--arg", "42", "--app", "examples.hello:app", *db, code=2
    )
    assert "argument 'name' of greet" in checked
    bad_app = await _tether("workflow", "start", "greet", "--app", "examples.hello", *db, code=2)
    assert "MODULE:APP" in bad_app


async def test_db_status_and_upgrade(store_url: str, tmp_path: Path) -> None:
    fresh = str(tmp_path / "fresh.db") if not store_url.startswith("postgres") else store_url
    status = await _tether("db", "upgrade", "--db", fresh, "--json")
    assert status["current"] == status["latest"] >= 1 and status["pending"] == 0
    again = await _tether("db", "status", "--db", fresh, "--json")
    assert again == status


def _commands(group: Any, prefix: str = "tether") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            names.extend(_commands(command, f"{prefix} {name}"))
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_command_is_documented() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))
    )
    group = typer.main.get_command(cli)
    missing = [c for c in _commands(group) if c not in docs]
    assert not missing, f"commands missing from README.md/docs: {missing}"


def test_public_names_are_pinned() -> None:
    assert sorted(tether.__all__) == sorted(
        [
            "ActivityError", "ActivityInfo", "App", "ApplicationError", "BudgetExceeded",
            "CancelledFailure", "ChildWorkflowError", "ModelError",
            "Client", "Context", "Event", "EventType", "Failure", "IncompatibleStore",
            "InvalidArgument", "LeaseLost", "NamespaceNotFound", "NonDeterminismError",
            "NotFound", "PayloadTooLarge", "Priority", "Range", "Retry", "RunInfo", "RunRecord",
            "RunStatus",
            "Store", "StoreUnavailable", "TerminatedFailure", "TetherError", "TimeoutFailure",
            "UnknownActivityType", "UnknownWorkflowType", "UpdateFailed", "UpdateNotFound",
            "UpdateRejected", "UsageError", "Worker",
            "WorkflowAlreadyStarted", "WorkflowFailed", "WorkflowHandle", "WorkflowNotFound",
            "activity_info", "heartbeat", "open_store",
        ]
    )  # fmt: skip
    assert sorted(tether.testing.__all__) == ["dump_history", "load_history", "replay"]
