"""The ``# runnable`` blocks of docs/visibility.md run as shown, from a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runnable_docs import run_block, runnable_blocks

BLOCKS = runnable_blocks("visibility.md")


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_runnable_block(block: str, tmp_path: Path) -> None:
    assert run_block(block, tmp_path).splitlines() == ["['o-2'] shipped", "['o-0'] None"]


def test_there_is_a_runnable_block() -> None:
    assert BLOCKS
