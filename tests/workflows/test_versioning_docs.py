"""The ``# runnable`` block of docs/versioning.md runs as shown, from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "versioning.md").read_text()


def test_runnable_block_prints_what_the_doc_says(tmp_path: Path) -> None:
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.S) if b.startswith("# runnable")
    ]
    assert len(blocks) == 1
    printed = re.search(r"It prints:\n\n```\n(.*?)```", DOC, re.S)
    assert printed is not None
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode() == printed.group(1)
    assert (tmp_path / "versioning.db").exists()
