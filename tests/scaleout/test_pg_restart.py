"""PostgreSQL restarts under running workers: they reconnect and every run completes.

The server is a private one (``tests/support/pgserver.py``), never the shared test
server. It is stopped mid-run, ``fast`` (sessions are ended cleanly) or ``immediate``
(the server crashes and recovers from its WAL on start), while activities keep running
on the workers, then started again on the same port. Either way no commit the server
acknowledged may be lost.

When the runs do not all close in time, the failure says why: the runs still open
with their tasks, histories and journal entries, the workers' logs and the server's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
import pytest

from tests.support.pgserver import PgServer

from .cluster import Cluster, audit, eventually, open_runs, wait_all_closed
from .workerapp import make_app

pytestmark = pytest.mark.scaleout

WORKERS = 3
RUNS = 150
STEPS = 4
MAX_ACTIVITIES = 8
# Longer than the server is down: a worker holds its activities' leases through the
# restart, and records what finished meanwhile once the server is back.
ACTIVITY_LEASE = 20.0


async def test_an_immediate_stop_keeps_every_acknowledged_commit(
    pg_server_factory: Callable[..., PgServer],
) -> None:
    """The private server crashes as a real one does: what it acknowledged is in its
    WAL. (With ``synchronous_commit=off`` it lost the last commits before the crash: a
    worker told that its workflow task committed then kept a cached copy of the run
    ahead of the store, and could leave the run open with no task.)"""
    server = pg_server_factory()
    conn = await asyncpg.connect(server.url())
    await conn.execute("CREATE TABLE acknowledged (n integer)")
    for n in range(200):  # one commit each, the last ones just before the crash
        await conn.execute("INSERT INTO acknowledged VALUES ($1)", n)
    server.stop("immediate")
    conn.terminate()
    server.start()
    conn = await asyncpg.connect(server.url())
    try:
        assert await conn.fetchval("SELECT count(*) FROM acknowledged") == 200
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_workers_survive_database_restart(
    cluster: Cluster, pg_server_factory: Callable[..., PgServer], mode: str
) -> None:
    server = pg_server_factory()
    expected = {f"wf-{n}": (n, STEPS) for n in range(RUNS)}
    async with make_app(server.url()) as app:  # migrates before the workers start
        workers = [
            cluster.spawn(
                f"w{i}",
                server.url(application=f"w{i}"),
                max_activities=MAX_ACTIVITIES,
                activity_lease=ACTIVITY_LEASE,
            )
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
        restarted = time.time()

        async def diagnosis() -> str:
            return "\n".join(
                [
                    f"--- the server restarted {restarted - time.time():+.1f}s from now ---",
                    await open_runs(server.url(), cluster),
                    cluster.diagnostics(),
                    "--- server log ---",
                    *server.log_text().splitlines()[-40:],
                ]
            )

        await wait_all_closed(app.store, RUNS, timeout=60, diagnostics=diagnosis)
        report = await audit(app.store, cluster.effects(), expected)

    assert report.problems == []
    assert report.unrecorded(cluster.acknowledged()) == []
    assert len(report.completions) == total
    # No step ran twice: an outcome whose write failed while the server was down (or
    # on a pooled connection the server had ended) was written again once it was back,
    # within the attempt's lease. A write that landed but whose answer was lost is
    # refused the second time, and the step is recorded once.
    assert report.repeated() == {}, report.repeated()
    assert all(w.alive() for w in workers), cluster.diagnostics()
