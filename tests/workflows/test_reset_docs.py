"""The ``# runnable`` block of docs/reset.md runs as shown, from a fresh directory."""

from __future__ import annotations

from pathlib import Path

from tests.runnable_docs import run_block, runnable_blocks


def test_the_reset_example_runs(tmp_path: Path) -> None:
    (block,) = runnable_blocks("reset.md")
    out = run_block(block, tmp_path)
    assert "reset run: ['o-17 reserved', 'o-17 charged']" in out
    assert "6 WorkflowReset from run" in out
