"""``tether namespace ...`` and ``tether workflow delete`` end to end on every store."""

from __future__ import annotations

from examples.hello import app as hello_app
from tests.cli.test_cli import _tether


async def test_namespace_commands(store_url: str) -> None:
    db = ["--db", store_url]
    made = await _tether(
        "namespace", "create", "acme", "--set", "retention=7d", "--set", "weight=3",
        "--set", 'queue_activity_rates={"gpu": 2}', "--json", *db,
    )  # fmt: skip
    assert made["settings"] == {
        "retention": "P7D", "weight": 3, "queue_activity_rates": {"gpu": 2.0}
    }  # fmt: skip
    changed = await _tether(
        "namespace", "update", "acme", "--set", "max_running_activities=5",
        "--set", "retention=null", "--json", *db,
    )  # fmt: skip
    assert changed["settings"]["max_running_activities"] == 5
    assert changed["settings"]["retention"] is None and changed["settings"]["weight"] == 3
    listed = await _tether("namespace", "list", "--json", *db)
    assert [n["name"] for n in listed] == ["acme", "default"]
    table = await _tether("namespace", "list", *db)
    assert "acme" in table

    hello_app.use_store(store_url)
    async with hello_app, hello_app.worker(namespaces=["acme"]):
        await _tether(
            "workflow", "start", "greet", "--arg", '"Ada"', "--id", "g1", "--wait",
            "--namespace", "acme", *db,
        )  # fmt: skip
    described = await _tether("namespace", "describe", "acme", "--json", *db)
    assert described["runs"] == {"running": 0, "closed": 1, "by_status": {"completed": 1}}
    assert described["settings"]["weight"] == 3 and "limit_waits" in described
    assert "by_status" in await _tether("namespace", "describe", "acme", *db)

    bad = await _tether("namespace", "update", "acme", "--set", "weight=0", *db, code=2)
    assert "'weight'" in bad and "invalid_argument" in bad
    assert "expected KEY=VALUE" in await _tether(
        "namespace", "update", "acme", "--set", "weight", *db, code=2
    )
    dup = await _tether("namespace", "create", "acme", *db, code=2)
    assert "namespace_already_exists" in dup

    gone = await _tether("workflow", "delete", "g1", "--namespace", "acme", "--yes", *db)
    assert "g1" in gone
    missing = await _tether("workflow", "describe", "g1", "--namespace", "acme", *db, code=2)
    assert "workflow_not_found" in missing
    assert await _tether("namespace", "delete", "acme", "--yes", "--json", *db) == {
        "deleted": "acme"
    }
    assert "namespace_not_found" in await _tether("namespace", "describe", "acme", *db, code=2)
    await _tether("namespace", "delete", "default", *db, code=1)  # asks; no answer aborts
