"""A worker cut off from PostgreSQL by a network partition is fenced.

Two workers run as two hosts: each in its own network namespace with its own address,
joined to this host by a veth pair, and a private PostgreSQL server listens on the
host ends. Worker A is cut off (its link goes down) while it holds leases and runs
slow activities. Its leases expire by the database clock, worker B takes the work and
finishes every run while A is still cut off. Then A's slow activities finish and the
link comes back: A's late writes reach the database and are refused (lease lost), and
nothing it did during the partition is recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.support.netns import Namespace
from tests.support.pgserver import PgServer

from .cluster import Cluster, audit, eventually, wait_all_closed
from .workerapp import make_app

pytestmark = pytest.mark.scaleout

GATED = 3  # slow runs that worker A holds when it is cut off
PLAIN = 40
LEASE = 1.5
_COMPLETIONS = {"complete_workflow_task", "advance_after_activity", "finish_activity"}
_FUNCTIONS = "|".join(sorted(_COMPLETIONS))
# A refused write in the server log: as the group commit's batch function logs it, or,
# for a write sent alone (a call of its own function, commits.py), as PostgreSQL
# reports the function's error.
_REFUSED = re.compile(
    rf"app=worker-a LOG:  tether refused ({_FUNCTIONS})\(.*lease lost"
    rf"|app=worker-a ERROR:  lease lost\n[^\n]*app=worker-a CONTEXT:  PL/pgSQL function"
    rf" tether\.({_FUNCTIONS})\("
)


async def test_partitioned_worker_is_fenced(
    cluster: Cluster,
    netns_factory: Callable[[], Namespace],
    pg_server_factory: Callable[..., PgServer],
) -> None:
    host_a, host_b = netns_factory(), netns_factory()
    server = pg_server_factory(
        listen=["127.0.0.1", host_a.host_ip, host_b.host_ip],
        trust=[str(host_a.network), str(host_b.network)],
    )
    url = server.url()
    expected = {f"slow-{n}": (n, 2) for n in range(GATED)}
    expected.update({f"wf-{n}": (n, 3) for n in range(PLAIN)})

    async with make_app(url) as app:  # migrates the database before the workers start
        a = cluster.spawn(
            "a",
            server.url(host=host_a.host_ip, application="worker-a"),
            netns=host_a,
            workflow_lease=LEASE,
            activity_lease=LEASE,
        )
        await cluster.wait_ready(a)
        # A alone is up: it takes the slow runs and begins their gated first step.
        for n in range(GATED):
            await app.client.start("chain", n, 2, 0.02, True, id=f"slow-{n}")
        await eventually(
            lambda: len(cluster.effects("begin")) == GATED,
            timeout=15,
            what="A to begin the slow steps",
            diagnostics=cluster.diagnostics,
        )
        b = cluster.spawn(
            "b",
            server.url(host=host_b.host_ip, application="worker-b"),
            netns=host_b,
            workflow_lease=LEASE,
            activity_lease=LEASE,
        )
        await cluster.wait_ready(b)
        for n in range(PLAIN):
            await app.client.start("chain", n, 3, 0.05, False, id=f"wf-{n}")

        def done_by(worker: str) -> int:
            return sum(1 for r in cluster.effects() if r["by"].startswith(f"{worker}:"))

        # Cut A off while it is busy with plain runs too.
        await eventually(lambda: done_by("a") >= 5, timeout=15, what="A to work on plain runs")
        host_a.cut()
        cut_at = time.time()

        # Every run finishes on B while A is still cut off: A's leases expired.
        await wait_all_closed(app.store, len(expected), timeout=30, diagnostics=cluster.diagnostics)
        taken_over = [
            r for r in cluster.effects() if r["name"] == "gated" and r["by"] == b.identity
        ]
        assert len(taken_over) == GATED
        assert all(r["attempt"] == 2 and r["t"] > cut_at for r in taken_over), taken_over

        # A's slow attempts now finish, while it is cut off: what it sends waits in TCP.
        cluster.open_gate()

        def slow_done_by_a() -> int:
            return sum(
                1 for r in cluster.effects() if r["name"] == "gated" and r["by"] == a.identity
            )

        await eventually(
            lambda: slow_done_by_a() == GATED, timeout=10, what="A's slow attempts to finish"
        )
        host_a.restore()

        # A learns that it lost each slow attempt's lease (its lease renewal or the
        # attempt's completion is refused with LeaseLost) and never records it.
        held = {(r["run"], r["step"]) for r in cluster.effects("begin") if r["by"] == a.identity}
        assert len(held) == GATED

        def refused_to_a() -> set[tuple[str, int]]:
            return {
                (j["run"], j["step"])
                for j in cluster.journal(a)
                if j["outcome"] == "LeaseLost" and (j.get("run"), j.get("step")) in held
            }

        # The server refused A's late completions (workflow tasks and activities it
        # was finishing at the cut): each is an error "lease lost" under A's name.
        def refused_by_server() -> list[str]:
            return re.findall(_REFUSED, server.log_text())

        await eventually(
            lambda: refused_to_a() == held and len(refused_by_server()) > 0,
            timeout=20,
            what="A's late writes to be refused",
            diagnostics=cluster.diagnostics,
        )
        report = await audit(app.store, cluster.effects(), expected)

    assert report.problems == []
    # Each slow step ran twice, A's attempt (1) and B's (2): only B's result is recorded.
    for key in held:
        assert sorted((r["by"], r["attempt"]) for r in report.effects[key]) == [
            (a.identity, 1),
            (b.identity, 2),
        ]
        assert report.completions[key]["by"] == b.identity
    # Nothing A did after the cut is recorded.
    for key, result in report.completions.items():
        if result["by"] == a.identity:
            ran = [r for r in report.effects[key] if r["by"] == a.identity]
            assert all(r["t"] < cut_at for r in ran), (key, ran)
    assert a.alive() and b.alive()
