"""docs/http.md's ``# runnable`` curl blocks run as shown against a real
``tether server examples.hello:app`` process; the command refuses to serve an open API
beyond loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tether.cli import app as cli

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [
    b
    for b in re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "http.md").read_text(), re.S)
    if b.startswith("# runnable")
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """A ``tether server`` process with the hello example's code and a worker."""
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TETHER_DATABASE_URL", "TETHER_SERVER_TOKENS")
    }
    env["PYTHONPATH"] = str(ROOT)
    command = [
        sys.executable, "-m", "tether.cli", "server", "examples.hello:app",
        "--db", str(tmp_path / "tether.db"), "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        # Another process: poll its readiness, with a deadline.
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
            errors = process.stderr.read().decode() if process.stderr else ""
            assert "Traceback" not in errors, errors
        finally:
            if process.poll() is None:
                process.kill()
            if process.stderr:
                process.stderr.close()


def test_runnable_blocks(server_url: str) -> None:
    script = "set -euo pipefail\n" + "\n".join(BLOCKS)
    env = {**os.environ, "TETHER_URL": server_url}
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, timeout=120, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert '"result":"HELLO ADA, MATHEMATICIAN"' in out
    assert "['WorkflowStarted'," in out and "'WorkflowCompleted']" in out
    assert '"code":"invalid_argument"' in out and "argument 'name' of greet" in out
    assert '"code":"workflow_not_found"' in out
    assert 'tether_runs{namespace="default",status="completed"} 1' in out
    assert '"deleted":{"workflow_id":"hello-1"' in out


def test_there_are_runnable_blocks() -> None:
    assert len(BLOCKS) >= 4


def test_an_open_server_stays_on_loopback(tmp_path: Path) -> None:
    env = {"TETHER_SERVER_TOKENS": ""}
    db = ["--db", str(tmp_path / "t.db")]
    refused = CliRunner().invoke(cli, ["server", "--host", "0.0.0.0", *db], env=env)
    assert refused.exit_code == 2 and "loopback only" in refused.output
    missing = CliRunner().invoke(
        cli, ["server", "--tokens-file", str(tmp_path / "none"), *db], env=env
    )
    assert missing.exit_code == 2 and "cannot read the tokens file" in missing.output
