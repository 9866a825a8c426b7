"""A throwaway PostgreSQL server of a test's own, to stop, restart and firewall at will.

Tests that restart the database or reach it from other network namespaces must never
touch the machine's shared server (``TETHER_TEST_PG``, usually port 5432). This module
runs a private one: ``initdb`` into a fresh temp folder, its own port, ``pg_ctl`` to
start and stop it. Under root the binaries run as the ``postgres`` user (``initdb``
refuses root). Speed is bought with ``fsync=off`` (an OS crash could lose data), but
``synchronous_commit`` stays on: a commit is in the WAL before it is acknowledged, so
a fast or an immediate shutdown (a crash of the server) keeps every acknowledged
commit, as a real server's does; that is what the tests exercise.

The binaries are found in ``$TETHER_PG_BINDIR``, ``pg_config --bindir`` or the newest
``/usr/lib/postgresql/*/bin``. When they are missing the test is skipped locally and
fails under CI (``CI`` set), like ``tests/support/pg.py``.

Use the ``pg_server_factory`` fixture (import it into a conftest), or ``PgServer``
directly and call ``destroy()``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest

__all__ = ["PgServer", "find_bindir", "pg_server_factory", "require"]

RUN_AS = "postgres"  # the account the server runs as when the tests run as root


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` fails, or fail it under CI, where nothing
    the tests need may be missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must not skip these tests)", pytrace=False)
    pytest.skip(reason)


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, if any."""
    candidates: list[str] = []
    if env := os.environ.get("TETHER_PG_BINDIR"):
        candidates.append(env)
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(out.stdout.strip())
    candidates.extend(
        sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    )
    for folder in candidates:
        path = Path(folder)
        if all((path / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One private PostgreSQL cluster: its folder, port and listen addresses.

    ``trust`` lists extra client networks (CIDR) allowed in without a password, for
    clients in other network namespaces; loopback is always trusted.
    """

    def __init__(
        self,
        bindir: Path,
        *,
        listen: Sequence[str] = ("127.0.0.1",),
        trust: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.bindir = bindir
        self.listen = list(listen)
        self.trust = list(trust)
        self.port = port or free_port(self.listen[0])
        self.root = Path(tempfile.mkdtemp(prefix="tether-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user = _run_as()

    # -- lifecycle ----------------------------------------------------------------------

    def init(self) -> None:
        """Create the cluster (``initdb``) and write its settings."""
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": f"'{','.join(self.listen)}'",
            "unix_socket_directories": f"'{self.data}'",
            "max_connections": "200",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            # %a is the client's application_name: tests tell workers apart by it.
            "log_line_prefix": "'%m [%p] app=%a '",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.writelines(f"host all all {cidr} trust\n" for cidr in self.trust)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate) and wait until it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        result = subprocess.run(
            self._argv("pg_ctl", "-D", str(self.data), "status"), capture_output=True
        )
        return result.returncode == 0

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self.data.exists() and self.running:
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- use ----------------------------------------------------------------------------

    def url(
        self, database: str = "postgres", *, host: str | None = None, application: str = ""
    ) -> str:
        """A connection URL; ``application`` becomes the connection's application_name
        (shown in the server log by ``log_text``)."""
        query = f"?application_name={quote(application)}" if application else ""
        return f"postgresql://postgres@{host or self.listen[0]}:{self.port}/{database}{query}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _argv(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bindir / program), *args]
        if self._user is not None:
            argv = ["runuser", "-u", self._user.pw_name, "--", *argv]
        return argv

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self._argv(program, *args), capture_output=True, text=True, cwd=self.root
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode,
                result.args,
                output=result.stdout,
                stderr=f"{result.stderr}\n--- server log ---\n{self.log_text()[-3000:]}",
            )


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as: None if we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        return None


@pytest.fixture
def pg_server_factory() -> Iterator[Callable[..., PgServer]]:
    """Make started private servers (``PgServer`` arguments); all destroyed afterwards."""
    bindir = find_bindir()
    require(bindir is not None, "PostgreSQL server binaries (initdb, pg_ctl) not found")
    assert bindir is not None
    if os.geteuid() == 0:
        require(_run_as() is not None, f"running as root and no {RUN_AS!r} user to run initdb as")
        require(shutil.which("runuser") is not None, "running as root and no runuser")
    servers: list[PgServer] = []

    def make(**options: object) -> PgServer:
        server = PgServer(bindir, **options)  # type: ignore[arg-type]
        servers.append(server)
        server.init()
        server.start()
        return server

    try:
        yield make
    finally:
        for server in reversed(servers):
            server.destroy()
