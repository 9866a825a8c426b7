"""Network namespaces joined to this host by veth pairs: one address per simulated host.

Each ``Namespace`` gets a /30: the host end of its veth pair holds ``host_ip``, the end
inside the namespace holds ``ip``. A process started with ``ns.argv([...])`` sees only
that link, so ``cut()`` (the host end goes down) partitions it from everything on this
host, e.g. a PostgreSQL server listening on ``host_ip``, and ``restore()`` heals it.
While the link is down TCP segments are not lost but held and retransmitted, as in a
real partition: requests sent meanwhile arrive late once the link is back.

Needs root and iproute2. ``netns_factory`` skips locally (fails under CI) when network
namespaces cannot be made, with the command's error text; everything it made is removed
afterwards, processes still inside a namespace included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from .pgserver import require

__all__ = ["Namespace", "netns_factory", "netns_unavailable"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


class Namespace:
    """A network namespace with one veth link to the host."""

    def __init__(self, name: str, network: ipaddress.IPv4Network) -> None:
        self.name = name
        self.network = network
        self.host_ip, self.ip = (str(a) for a in list(network.hosts())[:2])
        tag = name.removeprefix("tt")
        self.host_link = f"tth{tag}"  # interface names are at most 15 characters
        self.ns_link = f"ttn{tag}"
        self._made: list[Callable[[], None]] = []

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self._made.append(self._delete_namespace)
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.ns_link)
        self._made.append(self._delete_link)
        _ip("link", "set", self.ns_link, "netns", self.name)
        prefix = self.network.prefixlen
        _ip("addr", "add", f"{self.host_ip}/{prefix}", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ip}/{prefix}", "dev", self.ns_link)
        _ip("-n", self.name, "link", "set", self.ns_link, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Partition the namespace from the host (in-flight TCP data waits, as on a
        real network)."""
        _ip("link", "set", self.host_link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_link, "up")

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def destroy(self) -> None:
        # Processes still inside (a test failed before stopping them) were started by
        # the test: end them by pid, then remove what was made, newest first.
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self._made:
            with contextlib.suppress(RuntimeError):
                self._made.pop()()

    def _delete_namespace(self) -> None:
        _ip("netns", "del", self.name, check=False)

    def _delete_link(self) -> None:
        _ip("link", "del", self.host_link, check=False)


def _free_network() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no interface of this host uses, to split into /30s."""
    used = _ip("-o", "-4", "addr", "show", check=False).stdout
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if f" {'.'.join(str(net.network_address).split('.')[:3])}." not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 for test namespaces")


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed (apt-get install -y iproute2)"
    probe = f"ttp{uuid.uuid4().hex[:8]}"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"'ip netns add' failed: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@pytest.fixture
def netns_factory() -> Iterator[Callable[[], Namespace]]:
    """Make namespaces (each on its own /30 of one free /24); all removed afterwards."""
    reason = netns_unavailable()
    require(reason is None, f"cannot create network namespaces: {reason}")
    network = _free_network()
    subnets = network.subnets(new_prefix=30)
    made: list[Namespace] = []

    def make() -> Namespace:
        ns = Namespace(f"tt{uuid.uuid4().hex[:8]}", next(subnets))
        made.append(ns)
        ns.create()
        return ns

    try:
        yield make
    finally:
        for ns in reversed(made):
            ns.destroy()
