"""PostgreSQL claims keep one plan per connection, and it walks tasks_ready in order;
an idle worker's look at its next due task reads tasks_due, not the backlog.

Migration 0032 makes the claim functions' plans generic (made once, then reused): the
plan must not depend on the values of a call nor on the statistics of the moment. Here
a backlog of workflow tasks sits in a table whose statistics say it is empty (the case
of 0018: a new database flooded before autovacuum looks), and the plans of every
statement a claim runs are read with auto_explain (nested statements included).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.pg import PgTemplate, database_url
from tether.store.postgres import namespaces as nq
from tether.store.postgres import queries as q
from tether.store.sqlite import SqliteStore
from tether.store.sqlite.store import _NEXT_DUE

BACKLOG = 3000
#: Five workflow tasks of queue q, by a plain claim and by a fair one (a share of five,
#: a cap of 100 leased: its count and its limiter run too).
CLAIMS = {
    "plain": (q.CLAIM_WORKFLOW_TASKS, ("me", ["default"], ["q"], 5, 60.0)),
    "fair": (
        nq.CLAIM_FAIR,
        ("workflow", "me", ["q"], 60.0, 5, ["default"], [5], [100], [None], [], [], []),
    ),
}


@pytest.fixture
async def conn(pg_template: PgTemplate) -> AsyncIterator[asyncpg.Connection]:
    name = await pg_template.clone()
    connection = await asyncpg.connect(database_url(name))
    try:
        yield connection
    finally:
        await connection.close()
        await pg_template.drop_database(name)


async def _backlog(conn: asyncpg.Connection, analyzed_empty: bool, leased: bool = False) -> None:
    """BACKLOG runs, each with a workflow task, the oldest first by id: ready, or leased
    (visible again when its lease ends, far ahead)."""
    if analyzed_empty:
        await conn.execute("ANALYZE tether.runs; ANALYZE tether.tasks")
    await conn.execute(
        "INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,"
        " status, created_at, last_seq)"
        " SELECT 'default', 'r' || i, 'w' || i, 'T', 'q', 'running', i, 1"
        " FROM generate_series(1, $1::int) AS i",
        BACKLOG,
    )
    await conn.execute(
        "INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,"
        " scheduled_at, priority, owner, token)"
        " SELECT 'default', 'r' || i, 'workflow', 'q', i + $2::float8, i, 2, $3, $4"
        " FROM generate_series(1, $1::int) AS i",
        BACKLOG,
        1e10 if leased else 0.0,
        "w" if leased else None,
        1 if leased else 0,
    )


async def _explained(conn: asyncpg.Connection, *, analyze: bool = False) -> list[str]:
    """From now on, the plan of every statement this connection runs (functions' nested
    statements included) is appended to the list returned."""
    logged: list[str] = []
    conn.add_log_listener(lambda _, message: logged.append(str(message)))
    await conn.execute(
        "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
        " SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = 'notice';"
        f" SET auto_explain.log_analyze = {'on' if analyze else 'off'}"
    )
    return logged


async def _claim_plans(
    conn: asyncpg.Connection, claim: str, claims: int
) -> tuple[list[list[str]], str]:
    """The run ids of each claim (five tasks each), and every plan logged meanwhile
    (with the rows each step read)."""
    logged = await _explained(conn, analyze=True)
    claimed = []
    for _ in range(claims):
        sql, args = CLAIMS[claim]
        rows = await conn.fetch(sql, *args)
        claimed.append([row["run_id"] for row in rows])
    await conn.execute("SET auto_explain.log_min_duration = -1")
    # Tether's statements only: asyncpg's own look at the catalog (the type of a
    # claim's rows, on first use) is logged too.
    return claimed, "\n".join(plan for plan in logged if "tether." in plan)


@pytest.mark.parametrize("claim", sorted(CLAIMS))
@pytest.mark.parametrize("stats", ["never-analyzed", "analyzed-empty", "stale-runs"])
async def test_claims_walk_the_ready_index_in_order(
    conn: asyncpg.Connection, stats: str, claim: str
) -> None:
    await _backlog(conn, analyzed_empty=stats != "never-analyzed")
    if stats == "stale-runs":  # tasks' statistics fresh, runs' still say it is empty
        await conn.execute("ANALYZE tether.tasks")
    # More than five calls: past PL/pgSQL's five custom plans, were it choosing.
    claimed, plans = await _claim_plans(conn, claim, 8)

    # Each claim takes the five oldest tasks still unclaimed.
    assert claimed == [[f"r{i}" for i in range(5 * c + 1, 5 * c + 6)] for c in range(8)]
    assert "Index Scan using tasks_ready on tasks" in plans
    assert "Seq Scan" not in plans
    # The walk stops at its limit: no statement reads the backlog whole.
    walks = [line for line in plans.splitlines() if "tasks_ready" in line]
    assert walks
    assert all(f"rows={BACKLOG}" not in line for line in walks)
    # The walk is planned without a sort (0018): every Sort node is the merge of the
    # lanes' few candidates, in claim_ready's statement, never inside ready_tasks.
    for block in plans.split("Query Text:"):
        if "tasks_ready" in block and "FROM tether.tasks t" in block:
            assert "Sort" not in block
    # Each claimed task's run is read by its key, never runs whole (a join that put
    # runs first would read all 3,000).
    reads = [
        re.search(r"actual .* rows=(\d+) loops=(\d+)", line)
        for line in plans.splitlines()
        if " on runs " in line
    ]
    assert reads and all(read is not None for read in reads)
    assert all(int(r[1]) <= 1 and int(r[2]) <= 5 for r in reads if r is not None)


async def test_an_empty_claim_reads_no_backlog(conn: asyncpg.Connection) -> None:
    """A claim of the other kind passes over the workflow backlog by the index."""
    await _backlog(conn, analyzed_empty=True)
    rows = await conn.fetch(q.CLAIM_ACTIVITY_TASKS, "me", ["default"], ["q"], 5, 60.0)
    assert rows == []
    assert await conn.fetchval("SELECT count(*) FROM tether.tasks WHERE owner IS NOT NULL") == 0


@pytest.mark.parametrize("analyzed_empty", [False, True], ids=["never-analyzed", "analyzed-empty"])
async def test_the_next_due_look_reads_one_entry_per_queue(
    conn: asyncpg.Connection, analyzed_empty: bool
) -> None:
    """An idle worker's look at its next due task (0033): with every task of the
    backlog leased (each holds its lease's end as visible_at), the look reads the
    first entry of each of its (namespace, queue) pairs in tasks_due, not the backlog."""
    await _backlog(conn, analyzed_empty, leased=True)
    logged = await _explained(conn, analyze=True)
    for _ in range(7):
        assert await conn.fetchval(q.NEXT_DUE, ["default"], ["q", "other"]) == 1e10 + 1
    plans = "\n".join(plan for plan in logged if "tether." in plan)
    assert "Seq Scan" not in plans
    # Two pairs, two entries read at most (each read goes to the heap: the pages are
    # not all-visible yet), not BACKLOG.
    fetches = [
        int(line.split("Heap Fetches:")[1])
        for block in plans.split("Query Text:")
        if "using tasks_due on tasks" in block
        for line in block.splitlines()
        if "Heap Fetches:" in line
    ]
    assert len(fetches) == 7
    assert all(fetched <= 2 for fetched in fetches)


async def test_the_sqlite_look_is_an_index_lookup(tmp_path: Path) -> None:
    """The same look on SQLite (its 0033): one search of tasks_due per pair."""
    path = tmp_path / "t.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {_NEXT_DUE}", ("default", "q", "timer")).fetchall()
    finally:
        conn.close()
    assert [row[3] for row in plan] == [
        "SEARCH tasks USING COVERING INDEX tasks_due (namespace=? AND task_queue=? AND kind=?)"
    ]


async def test_a_fair_claim_visits_only_namespaces_with_work_due(
    conn: asyncpg.Connection,
) -> None:
    """Of twenty namespaces, one has tasks due: the fair claim walks its queue alone
    (0034), and still takes its oldest tasks, up to its share and then the rest."""
    await _backlog(conn, analyzed_empty=True)
    idle = [f"idle{i}" for i in range(19)]
    namespaces = [*idle[:10], "default", *idle[10:]]
    n = len(namespaces)
    logged = await _explained(conn)
    rows = await conn.fetch(
        nq.CLAIM_FAIR,
        *("workflow", "me", ["q"], 60.0, 6, namespaces, [2] * n, [100] * n, [None] * n),
        *([], [], []),
    )
    assert [row["run_id"] for row in rows] == [f"r{i}" for i in range(1, 7)]
    # ready_tasks' walk of one namespace's queues, as logged at each of its runs.
    walks = [plan for plan in logged if "SELECT c.id, c.lost, c.priority, c.pass" in plan]
    assert len(walks) == 2  # default's share (2), then the rest (4): no other namespace
    # No limiter row was made (nor locked) for a namespace that had nothing due.
    limited = await conn.fetch("SELECT DISTINCT namespace FROM tether.namespace_limits")
    assert [row["namespace"] for row in limited] == ["default"]


async def test_a_plain_claim_walks_only_namespaces_with_work_due(
    conn: asyncpg.Connection,
) -> None:
    """The plain claim over twenty namespaces walks the one with work due (0034)."""
    await _backlog(conn, analyzed_empty=True)
    namespaces = [*(f"idle{i}" for i in range(19)), "default"]
    logged = await _explained(conn)
    rows = await conn.fetch(q.CLAIM_WORKFLOW_TASKS, "me", namespaces, ["q"], 3, 60.0)
    assert [row["run_id"] for row in rows] == ["r1", "r2", "r3"]
    walks = [plan for plan in logged if "SELECT c.id, c.lost, c.priority, c.pass" in plan]
    assert len(walks) == 1


async def test_the_look_for_due_timers_reads_only_due_ones(conn: asyncpg.Connection) -> None:
    """Timers set for later do not slow the look for due ones (0035): with 3,000 of
    them, the walk of tasks_due reads the two that are due and stops. The statistics
    of tasks are fresh and those of runs say it is empty: a plan joining the two put
    runs first and read it whole; each due timer's run is read by its key."""
    await _backlog(conn, analyzed_empty=True)
    await conn.execute(
        "UPDATE tether.tasks SET kind = 'timer', visible_at = CASE WHEN id <= 2 THEN 1"
        " ELSE 1e10 END"
    )
    await conn.execute("ANALYZE tether.tasks")
    logged = await _explained(conn, analyze=True)
    assert await conn.fetchval(q.FIRE_TIMERS, ["default"], ["q"], 100) == 2
    fired = await conn.fetch(
        "SELECT run_id FROM tether.events WHERE type = 'TimerFired' ORDER BY run_id"
    )
    assert [row["run_id"] for row in fired] == ["r1", "r2"]
    plans = "\n".join(plan for plan in logged if "tether." in plan)
    # (Waking an idle worker for the runs' new workflow tasks reads idle_listeners,
    # one row per waiting worker, whole.)
    assert "Seq Scan on tasks" not in plans and "Seq Scan on runs" not in plans
    walks = [line for line in plans.splitlines() if "using tasks_due" in line]
    assert walks
    assert all("actual" in line and "rows=2 " in line for line in walks), walks
    runs = [line for line in plans.splitlines() if " on runs " in line]
    assert runs
    assert all("rows=1 loops=1)" in line for line in runs), runs


@pytest.mark.parametrize("claim", sorted(CLAIMS))
@pytest.mark.parametrize("analyzed_empty", [False, True], ids=["never-analyzed", "analyzed-empty"])
async def test_a_claim_with_nothing_due_reads_no_leased_task(
    conn: asyncpg.Connection, analyzed_empty: bool, claim: str
) -> None:
    """Every task leased (none due): the claim's probe (0034) reads no index entry,
    whatever the statistics say, and no walk of tasks_ready runs."""
    await _backlog(conn, analyzed_empty, leased=True)
    claimed, plans = await _claim_plans(conn, claim, 7)
    assert claimed == [[]] * 7
    assert "tasks_ready" not in plans
    probes = [line for line in plans.splitlines() if "using tasks_due" in line]
    assert probes
    assert all("actual" in line and " rows=0 " in line for line in probes), probes
