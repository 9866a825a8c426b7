"""The ``# runnable`` block of docs/versioning.md prints what the doc says it prints."""

from __future__ import annotations

import re
from pathlib import Path

from tests.runnable_docs import ROOT, run_block, runnable_blocks


def test_runnable_block_prints_what_the_doc_says(tmp_path: Path) -> None:
    (block,) = runnable_blocks("versioning.md")
    doc = (ROOT / "docs" / "versioning.md").read_text()
    printed = re.search(r"It prints:\n\n```\n(.*?)```", doc, re.S)
    assert printed is not None
    assert run_block(block, tmp_path) == printed.group(1)
    assert (tmp_path / "versioning.db").exists()
