"""The PostgreSQL store analyzes its young tables as they grow (planner_stats.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from tests.support.pg import PgTemplate, database_url
from tether.store.postgres import PostgresStore, planner_stats
from tether.store.postgres.planner_stats import (
    EARLY_TRIES,
    FIRST_RUNS,
    FIRST_TASKS,
    LOCK_KEY,
    MIN_PAGES,
    PlannerStats,
)

from .helpers import eventually, new_run


@pytest.fixture
async def database(pg_template: PgTemplate) -> AsyncIterator[str]:
    name = await pg_template.clone()
    yield name
    await pg_template.drop_database(name)


async def add_runs(conn: asyncpg.Connection, first: int, count: int) -> None:
    """Closed runs written straight to the table: only its size matters here."""
    await conn.execute(
        "INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,"
        " status, created_at, closed_at, last_seq)"
        " SELECT 'default', 'r' || i, 'w' || i, 'T', 'q', 'completed', 0, 1, 3"
        " FROM generate_series($1::int, $2::int) AS i",
        first,
        first + count - 1,
    )


async def add_leased_tasks(conn: asyncpg.Connection, first: int, count: int) -> None:
    """Activity tasks leased to a worker, one per run, as a burst leaves them; then the
    server's live-row counters are brought up to date (flushed as this session idles;
    pg_stat_force_next_flush, PostgreSQL 15 and later)."""
    await conn.execute(
        "INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,"
        " owner, token, scheduled_at, name, priority)"
        " SELECT 'default', 'r' || i, 'activity', 'q', 1, 4e9, 'w', 1, 0, 'a', 2"
        " FROM generate_series($1::int, $2::int) AS i",
        first,
        first + count - 1,
    )
    await conn.execute("SELECT pg_stat_force_next_flush()")


def analyze_recording(rows: float) -> Callable[..., Awaitable[float | None]]:
    """The store's ANALYZE, after which the statistics hold ``rows`` rows: as one taken
    while the rows were elsewhere (in transactions still open, or deleted and not yet
    counted) leaves them."""
    real = planner_stats._analyze

    async def analyze(conn: asyncpg.Connection, *, table: str) -> float | None:
        if await real(conn, table=table) is None:
            return None
        await conn.execute(
            "UPDATE pg_class SET reltuples = $2 WHERE oid = $1::regclass", table, rows
        )
        return rows

    return analyze


async def analyzed(conn: asyncpg.Connection, table: str = "runs") -> tuple[int, float]:
    row = await conn.fetchrow(
        "SELECT relpages, reltuples FROM pg_class WHERE oid = $1::regclass", f"tether.{table}"
    )
    assert row is not None
    return row[0], row[1]


@pytest.fixture
async def opened(database: str) -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection]]:
    """The store on the fresh database, and a connection of the test's own."""
    store = PostgresStore(database_url(database), pool_size=2)
    await store.open()
    conn = await asyncpg.connect(database_url(database))
    try:
        yield store, conn
    finally:
        await conn.close()
        await store.close()


async def test_a_table_is_analyzed_once_it_doubled(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, conn = opened
    keeper = store._planner_stats
    await keeper.stop()  # checked by hand here
    assert "runs" not in await keeper.check()  # empty: nothing to learn yet
    assert (await analyzed(conn))[1] < 0  # never analyzed

    await add_runs(conn, 1, 3000)
    assert "runs" in await keeper.check()
    pages, tuples = await analyzed(conn)
    assert pages >= MIN_PAGES and tuples == 3000
    assert "runs" not in await keeper.check()  # not grown since

    await add_runs(conn, 3001, 3000)  # twice the pages of the last ANALYZE
    assert "runs" in await keeper.check()
    assert (await analyzed(conn))[1] == 6000


async def test_runs_are_analyzed_early_so_a_run_is_looked_up_by_its_primary_key(
    opened: tuple[PostgresStore, asyncpg.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FIRST_RUNS runs are enough (not MIN_PAGES): without statistics a lookup by a run's
    key ties between the primary key and the other indexes that start with the
    namespace, and may read every entry of the namespace."""
    store, conn = opened
    keeper = store._planner_stats
    await keeper.stop()  # checked by hand here
    await add_runs(conn, 1, FIRST_RUNS - 1)
    assert "runs" not in await keeper.check()  # one fewer: not yet
    await add_runs(conn, FIRST_RUNS, 1)
    pages = (await conn.fetchval("SELECT pg_relation_size('tether.runs')")) // 8192
    assert pages < MIN_PAGES
    assert "runs" in await keeper.check()
    assert (await analyzed(conn))[1] == FIRST_RUNS
    assert "runs" not in await keeper.check()  # analyzed with as many: not again
    # As the store's writing functions plan (0017, "Plans"), and its sessions.
    await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
    await conn.execute(
        "PREPARE step(text, text) AS UPDATE tether.runs SET last_seq = last_seq + 1"
        " WHERE namespace = $1 AND run_id = $2"
    )
    plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN EXECUTE step('default', 'r1')"))
    assert "runs_pkey" in plan, plan
    # An ANALYZE taken during a burst may count almost none of the runs (the others
    # written by transactions still open). One that is not this process's is answered at
    # once; one of this process's is redone at the next checks, a few times. Each
    # ANALYZE here is made to count one run (the statistics set as it left them).
    monkeypatch.setattr(planner_stats, "_analyze", analyze_recording(1))
    await conn.execute("UPDATE pg_class SET reltuples = 1 WHERE oid = 'tether.runs'::regclass")
    assert "runs" in await keeper.check()  # autovacuum's, say
    for _ in range(EARLY_TRIES):
        assert "runs" in await keeper.check()
        assert (await analyzed(conn))[1] == 1
    assert "runs" not in await keeper.check()  # then it waits for the table to double


async def test_a_queue_that_outgrew_its_statistics_is_analyzed_by_its_rows(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    """A drained queue keeps its pages and its statistics next to no rows; the next burst
    fills those pages without growing the table. Its live rows make it due: without
    statistics of them a task looked up by its id ties between every index of tasks,
    and the one that wins reads all the namespace's leased tasks."""
    store, conn = opened
    keeper = store._planner_stats
    await keeper.stop()  # checked by hand here
    await add_leased_tasks(conn, 1, 2000)
    # Drained but for the last task, which keeps VACUUM (autovacuum's, say) from
    # truncating the pages before it: the table keeps them, its statistics one row.
    await conn.execute("DELETE FROM tether.tasks WHERE run_id <> 'r2000'")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("VACUUM tether.tasks")
    pages, tuples = await analyzed(conn, "tasks")
    assert pages >= MIN_PAGES and tuples == 1

    await add_leased_tasks(conn, 1, FIRST_TASKS - 2)
    assert "tasks" not in await keeper.check()  # one fewer: not yet
    await add_leased_tasks(conn, FIRST_TASKS, 1)
    assert "tasks" in await keeper.check()
    assert (await analyzed(conn, "tasks")) == (pages, FIRST_TASKS)  # in the same pages
    assert "tasks" not in await keeper.check()  # analyzed with as many: not again

    # The step's delete of its activity's task (0031), planned as the store plans it.
    await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
    await conn.execute(
        "PREPARE done(bigint, text, bigint, float8) AS DELETE FROM tether.tasks t"
        " WHERE t.id = $1 AND t.namespace = $2 AND t.kind = 'activity' AND t.token = $3"
        " AND t.owner IS NOT NULL AND t.visible_at > $4"
    )
    plan = [row[0] for row in await conn.fetch("EXPLAIN EXECUTE done(1, 'default', 1, 0)")]
    condition = next(line for line in plan if "Index Cond" in line)
    assert "(id = " in condition, plan

    # Drained and vacuumed again: the next burst is due at FIRST_TASKS again, not held
    # back by this process's last ANALYZE (whose statistics VACUUM replaced).
    await conn.execute("DELETE FROM tether.tasks WHERE run_id <> 'r2000'")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("VACUUM tether.tasks")
    assert (await analyzed(conn, "tasks"))[1] == 1
    await add_leased_tasks(conn, 1, FIRST_TASKS - 1)
    assert "tasks" in await keeper.check()
    assert (await analyzed(conn, "tasks"))[1] == FIRST_TASKS
    await add_leased_tasks(conn, FIRST_TASKS, FIRST_TASKS)  # twice as many
    assert "tasks" in await keeper.check()


async def test_a_queue_counted_high_once_is_due_when_it_doubles_from_what_it_held(
    opened: tuple[PostgresStore, asyncpg.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's live-row count can lag behind a drained queue (a backend reports its
    deletes late): an ANALYZE then records no rows while the count still says many. The
    next checks do not analyze again at once; nor do they wait, after the count caught
    up, for the queue to double past the stale count."""
    store, conn = opened
    keeper = store._planner_stats
    await keeper.stop()  # checked by hand here
    await add_leased_tasks(conn, 1, 4 * FIRST_TASKS)
    monkeypatch.setattr(planner_stats, "_analyze", analyze_recording(0))  # drained
    assert "tasks" in await keeper.check()
    assert "tasks" not in await keeper.check()  # the count still says many: not again
    monkeypatch.undo()
    await conn.execute("DELETE FROM tether.tasks")  # drained; the count catches up
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await add_leased_tasks(conn, 1, FIRST_TASKS)
    assert "tasks" not in await keeper.check()  # held: not doubled since the last look
    await add_leased_tasks(conn, FIRST_TASKS + 1, FIRST_TASKS)
    assert "tasks" in await keeper.check()  # twice what it held, not twice the stale count
    assert (await analyzed(conn, "tasks"))[1] == 2 * FIRST_TASKS


async def test_the_first_writes_bring_a_check(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    """A write of this process brings a check at once, without waiting for the timer
    (an hour here): a burst on a new database gets statistics as its tables grow."""
    store, conn = opened
    await store._planner_stats.stop()
    store._planner_stats = PlannerStats(store._call, interval=3600)
    store._planner_stats.start()
    assert (await analyzed(conn))[1] < 0
    await add_runs(conn, 1, 3000)  # as if another process had written them
    await store.start_run(new_run("first"))
    await eventually(lambda: _has_statistics(conn), timeout=10)


async def test_one_process_analyzes_at_a_time(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, conn = opened
    await store._planner_stats.stop()
    await add_runs(conn, 1, 3000)
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)  # another analyzer
    assert await store._planner_stats.check() == []
    assert (await analyzed(conn))[1] < 0
    await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    # Not counted as done while another held the lock: due at the next check.
    assert "runs" in await store._planner_stats.check()


async def test_the_store_analyzes_in_the_background(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    _, conn = opened
    await add_runs(conn, 1, 3000)
    await eventually(lambda: _has_statistics(conn), timeout=10)


async def _has_statistics(conn: asyncpg.Connection) -> bool:
    return (await analyzed(conn))[1] >= 0
