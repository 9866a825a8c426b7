"""The ``# runnable`` block of docs/reset.md runs as shown, from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_reset_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "reset.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith("# runnable")
    ]
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = done.stdout.decode()
    assert "reset run: ['o-17 reserved', 'o-17 charged']" in out
    assert "6 WorkflowReset from run" in out
