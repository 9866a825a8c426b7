"""Several worker processes on one PostgreSQL database: sharing work, and one crashing.

Workers are real processes (``tests.scaleout.workerapp``) with short leases; the test
process only starts runs and reads histories back. Every activity records its side
effect with the worker's identity, so the audit can tell who ran what and how often.
"""

from __future__ import annotations

import time

import pytest

from .cluster import Cluster, audit, eventually, wait_all_closed
from .workerapp import make_app

pytestmark = pytest.mark.scaleout

WORKERS = 3
LEASE = 1.5
MAX_ACTIVITIES = 8


async def test_workers_share_runs_exactly_once(cluster: Cluster, pg_url: str) -> None:
    workers = [
        cluster.spawn(f"w{i}", pg_url, max_activities=MAX_ACTIVITIES) for i in range(WORKERS)
    ]
    await cluster.wait_ready(*workers)
    expected = {f"wf-{n}": (n, 3) for n in range(210)}
    async with make_app(pg_url) as app:
        for wf, (n, steps) in expected.items():
            await app.client.start("chain", n, steps, 0.02, False, id=wf)
        await wait_all_closed(app.store, len(expected), timeout=60, diagnostics=cluster.diagnostics)
        report = await audit(app.store, cluster.effects(), expected)

    assert report.problems == []
    assert report.runs == len(expected)
    assert len(report.completions) == 3 * len(expected)
    # Nothing ran twice: no lease expired, no worker died.
    assert report.repeated() == {}
    # The work was spread: every worker recorded a fair share of the steps.
    identities = {w.identity for w in workers}
    assert set(report.recorded_by) == identities
    assert min(report.recorded_by.values()) >= 0.05 * len(report.completions), report.recorded_by
    assert all(w.alive() for w in workers)


async def test_killed_worker_leases_expire_and_others_finish(cluster: Cluster, pg_url: str) -> None:
    workers = [
        cluster.spawn(f"w{i}", pg_url, max_activities=MAX_ACTIVITIES) for i in range(WORKERS)
    ]
    await cluster.wait_ready(*workers)
    expected = {f"wf-{n}": (n, 4) for n in range(240)}
    async with make_app(pg_url) as app:
        for wf, (n, steps) in expected.items():
            await app.client.start("chain", n, steps, 0.03, False, id=wf)

        # Kill a worker in full flight: once a fifth of the steps are done, the one
        # that did most of them.
        await eventually(
            lambda: len(cluster.effects()) >= 200,
            timeout=30,
            what="200 side effects",
            diagnostics=cluster.diagnostics,
        )
        done_by = {w.identity: 0 for w in workers}
        for record in cluster.effects():
            done_by[record["by"]] += 1
        victim = max(workers, key=lambda w: done_by[w.identity])
        cluster.kill(victim)
        killed_at = time.time()
        survivors = [w for w in workers if w is not victim]

        await wait_all_closed(app.store, len(expected), timeout=60, diagnostics=cluster.diagnostics)
        report = await audit(app.store, cluster.effects(), expected)

    assert report.problems == []
    assert len(report.completions) == 4 * len(expected)
    assert all(r["t"] <= killed_at for r in cluster.effects() if r["by"] == victim.identity)
    # A step whose completion the victim recorded never ran again.
    for key, result in report.completions.items():
        if result["by"] == victim.identity:
            assert len(report.effects[key]) == 1, (key, report.effects[key])
    # Only steps in flight at the kill ran twice: once on the victim (whose completion
    # was lost with it), once more on a survivor after the lease expired.
    repeated = report.repeated()
    assert len(repeated) <= MAX_ACTIVITIES, repeated
    for key, ran in repeated.items():
        assert len(ran) == 2, (key, ran)
        assert [r["by"] for r in ran].count(victim.identity) == 1, (key, ran)
        assert report.completions[key]["by"] != victim.identity
    # The survivors took over the victim's leased attempts once the leases expired.
    taken_over = [r for r in cluster.effects() if r["attempt"] > 1 and r["by"] != victim.identity]
    assert taken_over, "no attempt of the killed worker was taken over"
    assert all(w.alive() for w in survivors)
