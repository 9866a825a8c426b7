"""The ``# runnable`` blocks of the docs, and running one as a reader would: a fresh
directory, the default store (no ``TETHER_DATABASE_URL``), this checkout on the path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def runnable_blocks(doc: str) -> list[str]:
    """The Python blocks of ``docs/<doc>`` whose first line is ``# runnable...``."""
    text = (ROOT / "docs" / doc).read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith("# runnable")]


def run_block(block: str, cwd: Path) -> str:
    """Run ``block`` in ``cwd``; its standard output (the test fails if the block does)."""
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=cwd, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode()
