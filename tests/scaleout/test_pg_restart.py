"""PostgreSQL restarts under running workers: they reconnect and every run completes.

The server is a private one (``tests/support/pgserver.py``), never the shared test
server. It is stopped mid-run, ``fast`` (sessions are ended cleanly) or ``immediate``
(the server crashes and recovers from its WAL on start), while activities keep running
on the workers, then started again on the same port.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.pgserver import PgServer

from .cluster import Cluster, audit, eventually, wait_all_closed
from .workerapp import make_app

pytestmark = pytest.mark.scaleout

WORKERS = 3
RUNS = 150
STEPS = 4
MAX_ACTIVITIES = 8
POOL_SIZE = 5  # the workers' connection pool (workerapp's default)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_workers_survive_database_restart(
    cluster: Cluster, pg_server_factory: Callable[..., PgServer], mode: str
) -> None:
    server = pg_server_factory()
    expected = {f"wf-{n}": (n, STEPS) for n in range(RUNS)}
    async with make_app(server.url()) as app:  # migrates before the workers start
        workers = [
            cluster.spawn(f"w{i}", server.url(application=f"w{i}"), max_activities=MAX_ACTIVITIES)
            for i in range(WORKERS)
        ]
        await cluster.wait_ready(*workers)
        for wf, (n, steps) in expected.items():
            await app.client.start("chain", n, steps, 0.03, False, id=wf)

        # Stop the server in full flight: once a quarter of the steps are done.
        total = RUNS * STEPS
        await eventually(
            lambda: len(cluster.effects()) >= total // 4,
            timeout=30,
            what="a quarter of the steps",
            diagnostics=cluster.diagnostics,
        )
        server.stop(mode)
        # Keep it down until the workers felt it: a write of theirs failed.
        await eventually(
            lambda: any(
                j["outcome"] == "StoreUnavailable" for w in workers for j in cluster.journal(w)
            ),
            timeout=10,
            what="a worker's write to fail while the server is down",
        )
        server.start()

        await wait_all_closed(app.store, RUNS, timeout=60, diagnostics=cluster.diagnostics)
        report = await audit(app.store, cluster.effects(), expected)

    assert report.problems == []
    assert len(report.completions) == total
    # At least once: a step ran again only if its completion failed at the restart,
    # because it was in flight while the server was down, or because it went out on a
    # pooled connection the server had ended (each such connection fails once).
    assert all(len(ran) <= 2 for ran in report.repeated().values()), report.repeated()
    assert len(report.repeated()) <= WORKERS * (MAX_ACTIVITIES + POOL_SIZE)
    assert all(w.alive() for w in workers), cluster.diagnostics()
