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
    # A step ran again only when an earlier attempt's lease was lost: in flight on the
    # victim at the kill, or (on a loaded machine, with 1.5 s leases) an attempt whose
    # worker was too slow to renew its lease. Every extra run is an earlier attempt
    # than the recorded one, so nothing ran after its completion was recorded.
    repeated = report.repeated()
    for key, ran in repeated.items():
        recorded = report.completions[key]
        assert recorded["by"] != victim.identity or len(ran) == 1, (key, ran)
        others = [
            r for r in ran if (r["by"], r["attempt"]) != (recorded["by"], recorded["attempt"])
        ]
        assert len(others) == len(ran) - 1, (key, ran, recorded)
        assert all(r["attempt"] < recorded["attempt"] for r in others), (key, ran, recorded)
    # At the kill the victim held at most MAX_ACTIVITIES attempts running, and at most
    # as many whose code was done and whose outcome was on its way to the store (an
    # attempt's slot is free once its code is done).
    in_flight = [k for k, ran in repeated.items() if any(r["by"] == victim.identity for r in ran)]
    assert len(in_flight) <= 2 * MAX_ACTIVITIES, in_flight
    # The survivors took over the victim's leased attempts once the leases expired.
    taken_over = [r for r in cluster.effects() if r["attempt"] > 1 and r["by"] != victim.identity]
    assert taken_over, "no attempt of the killed worker was taken over"
    assert all(w.alive() for w in survivors)
