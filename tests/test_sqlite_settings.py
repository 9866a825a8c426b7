"""The embedded store's durability setting, as documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.store.sqlite import SqliteStore


@pytest.mark.parametrize(("durable", "level"), [(False, 1), (True, 2)])
async def test_durability_level(tmp_path: Path, durable: bool, level: int) -> None:
    # synchronous: 1 = NORMAL (survives process crashes), 2 = FULL (also power loss).
    app = tether.App(str(tmp_path / "t.db"), durable=durable)
    async with app:
        assert isinstance(app.store, SqliteStore)
        connections = app.store._connections
        assert connections
        for conn in connections:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
