"""The ``# runnable`` block of docs/updates.md runs as shown, from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "updates.md").read_text()


def test_runnable_block(tmp_path: Path) -> None:
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.S) if b.startswith("# runnable")
    ]
    assert len(blocks) == 1
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = done.stdout.decode()
    assert "revised plan: ['research tides', 'add tide tables']" in out
    assert "rejected: the plan is already approved" in out
    assert "again: ['research tides', 'add tide tables']" in out
    assert "started plan-43 with plan: ['research moss', 'map it']" in out
    assert (tmp_path / "tether.db").exists()
