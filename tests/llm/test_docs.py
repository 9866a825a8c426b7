"""The ``# runnable`` blocks of docs/llm.md run as shown, from a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runnable_docs import run_block, runnable_blocks

BLOCKS = runnable_blocks("llm.md")
# The block that shows two workers sharing one concurrency cap of 2.
SHARED_LIMITS = [b for b in BLOCKS if 'print("most calls at once:", sim.peak_in_flight)' in b]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_runnable_block(block: str, tmp_path: Path) -> None:
    out = run_block(block, tmp_path)
    assert "simulated" in out or "rate_limited" in out
    if block in SHARED_LIMITS:  # chosen by its source: its output must show the cap held
        assert "most calls at once: 2" in out, out


def test_there_are_runnable_blocks() -> None:
    assert len(BLOCKS) >= 3
    assert len(SHARED_LIMITS) == 1
