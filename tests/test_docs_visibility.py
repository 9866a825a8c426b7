"""The ``# runnable`` blocks of docs/visibility.md run as shown, from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = [
    b
    for b in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "visibility.md").read_text(), re.S)
    if b.startswith("# runnable")
]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_runnable_block(block: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().splitlines() == ["['o-2'] shipped", "['o-0'] None"]


def test_there_is_a_runnable_block() -> None:
    assert BLOCKS
