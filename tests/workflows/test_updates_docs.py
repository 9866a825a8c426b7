"""The ``# runnable`` block of docs/updates.md runs as shown, from a fresh directory."""

from __future__ import annotations

from pathlib import Path

from tests.runnable_docs import run_block, runnable_blocks


def test_runnable_block(tmp_path: Path) -> None:
    (block,) = runnable_blocks("updates.md")
    out = run_block(block, tmp_path)
    assert "revised plan: ['research tides', 'add tide tables']" in out
    assert "rejected: the plan is already approved" in out
    assert "again: ['research tides', 'add tide tables']" in out
    assert "started plan-43 with plan: ['research moss', 'map it']" in out
    assert (tmp_path / "tether.db").exists()
