"""Every typical listing query is planned on its index, on both stores.

Not a timing: the bench's own data (``bench/visibility.py``, 20,000 runs here, with
statistics gathered) is loaded into the store, and the plans of the bench's queries
are read with EXPLAIN QUERY PLAN (SQLite) or EXPLAIN with sequential scans disabled
(PostgreSQL), so a change that loses an index fails here rather than at a million runs.
"""

from __future__ import annotations

import random
import sqlite3

import asyncpg
import pytest

from bench.visibility import explain_postgres, explain_sqlite, load_postgres, load_sqlite, queries
from tests.support.pg import database_url

from .conftest import Harness

N = 20_000

# query -> (an index it must use, whether the index must also give the order)
EXPECTED = {
    "newest page": ("runs_by_created", True),
    "type": ("runs_by_type", True),
    "type + status": ("runs_by_type_status", True),
    "status": ("runs_by_status", True),
    "start-time range (1h)": ("runs_by_created", True),
    "close-time range (1h)": ("runs_closed", False),
    "attribute = keyword": ("search_attributes_str", True),
    "attribute = int, + type": ("", False),  # either index serves; no full scan
    "attribute float range": ("search_attributes_float", False),
    "deep page (token)": ("runs_by_created", True),
}


async def _plans(harness: Harness) -> dict[str, str]:
    made = queries(N, random.Random(5))
    assert set(made) == set(EXPECTED)
    if harness.kind == "sqlite":
        await load_sqlite(harness.location, N)
        conn = sqlite3.connect(harness.location)
        try:
            return {name: explain_sqlite(conn, make()) for name, make in made.items()}
        finally:
            conn.close()
    url = database_url(harness.location)
    await load_postgres(url, N)
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("SET enable_seqscan = off")
        return {name: await explain_postgres(pg, make()) for name, make in made.items()}
    finally:
        await pg.close()


@pytest.mark.timeout(120)
async def test_listing_queries_use_their_indexes(harness: Harness) -> None:
    plans = await _plans(harness)
    for name, plan in plans.items():
        index, ordered = EXPECTED[name]
        lines = plan.splitlines()
        # A full scan of runs or of the attributes would grow with the store.
        if harness.kind == "sqlite":
            assert not [ln for ln in lines if ln.startswith(("SCAN r", "SCAN d", "SCAN s"))], (
                name,
                plan,
            )
        else:
            assert "Seq Scan" not in plan, (name, plan)
        if index:
            assert f" {index} " in f"{plan} ".replace("\n", " "), (name, plan)
        if ordered:
            sort = "TEMP B-TREE FOR ORDER BY" if harness.kind == "sqlite" else "Sort"
            assert sort not in plan, (name, plan)
