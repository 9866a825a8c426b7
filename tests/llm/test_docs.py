"""The ``# runnable`` blocks of docs/llm.md run as shown, from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [
    b
    for b in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "llm.md").read_text(), re.S)
    if b.startswith("# runnable")
]
# The block that shows two workers sharing one concurrency cap of 2.
SHARED_LIMITS = [b for b in BLOCKS if 'print("most calls at once:", sim.peak_in_flight)' in b]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_runnable_block(block: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"simulated" in done.stdout or b"rate_limited" in done.stdout
    if block in SHARED_LIMITS:  # chosen by its source: its output must show the cap held
        assert b"most calls at once: 2" in done.stdout, done.stdout


def test_there_are_runnable_blocks() -> None:
    assert len(BLOCKS) >= 3
    assert len(SHARED_LIMITS) == 1
