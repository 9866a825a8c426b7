"""Visibility on every store: search attributes set at start and by a workflow task's
commit, and listing runs by type, status, time and attribute, page by page."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.support.pg import database_url
from tether.errors import InvalidArgument, LeaseLost
from tether.search_attributes import Range, encode
from tether.store import (
    ContinueAsNew,
    NewChild,
    NewRun,
    RunClose,
    RunFilter,
    RunRecord,
    RunStatus,
    Store,
    WorkflowCommit,
)
from tether.store.visibility import attribute_filter

from .conftest import Harness
from .helpers import LEASE, NS, Q, claim_one

DAY = datetime(2026, 11, 25, tzinfo=UTC)


def new_run(
    workflow_id: str | None = None,
    attrs: dict[str, Any] | None = None,
    *,
    namespace: str = NS,
    workflow_type: str = "flow",
) -> NewRun:
    started: dict[str, Any] = {"workflow_type": workflow_type, "args": [], "task_queue": Q}
    if attrs is not None:
        started["search_attributes"] = encode(attrs)
    return NewRun(
        namespace=namespace,
        workflow_id=workflow_id or f"wf-{uuid.uuid4().hex[:8]}",
        run_id=uuid.uuid4().hex,
        workflow_type=workflow_type,
        task_queue=Q,
        started=started,
    )


async def start(
    store: Store, workflow_id: str, attrs: dict[str, Any] | None = None, **kw: Any
) -> RunRecord:
    return await store.start_run(new_run(workflow_id, attrs, **kw))


def upsert(step: int, attrs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "SearchAttributesUpserted",
        {"step": step, "search_attributes": encode(attrs, removals=True)},
    )


async def ids(store: Store, namespace: str = NS, **filters: Any) -> list[str]:
    """Workflow ids listed with ``filters`` (search attributes as keyword arguments
    prefixed ``sa_``), every page read."""
    attrs = {k[3:]: v for k, v in filters.items() if k.startswith("sa_")}
    rest = {k: v for k, v in filters.items() if not k.startswith("sa_")}
    status, workflow_type = rest.pop("status", None), rest.pop("workflow_type", None)
    where = RunFilter(**rest, attributes=[attribute_filter(k, v) for k, v in attrs.items()])
    found: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(
            namespace,
            status=status,
            workflow_type=workflow_type,
            where=where,
            limit=2,
            cursor=cursor,
        )
        found.extend(r.workflow_id for r in page.runs)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def test_attributes_set_at_start_are_stored_typed(store: Store) -> None:
    when = DAY + timedelta(hours=3, microseconds=7)
    values = {
        "customer": "acme",
        "tags": ["vip", "eu"],
        "priority": 3,
        "score": 0.25,
        "urgent": True,
        "due": when,
    }
    await start(store, "typed", values)
    await start(store, "plain")
    got = await store.get_run(NS, "typed")
    assert got.search_attributes == values
    assert isinstance(got.search_attributes["priority"], int)
    assert got.search_attributes["due"] == when
    assert (await store.get_run(NS, "plain")).search_attributes == {}
    listed = {r.workflow_id: r.search_attributes for r in (await store.list_runs(NS)).runs}
    assert listed == {"typed": values, "plain": {}}


async def test_a_commit_upserts_and_removes_attributes(store: Store) -> None:
    await start(store, "up", {"customer": "acme", "stage": "new", "priority": 1})
    task = await claim_one(store)
    commit = WorkflowCommit(events=[upsert(1, {"stage": "paid", "priority": None, "n": 2})])
    await store.complete_workflow_task(task, commit, LEASE)
    got = await store.get_run(NS, "up")
    assert got.search_attributes == {"customer": "acme", "stage": "paid", "n": 2}
    assert await ids(store, sa_stage="paid") == ["up"]
    assert await ids(store, sa_stage="new") == []
    assert await ids(store, sa_priority=1) == []


async def test_an_upsert_in_a_refused_commit_changes_nothing(store: Store) -> None:
    await start(store, "fenced", {"stage": "new"})
    task = await claim_one(store)
    task.token += 1  # a stale lease
    with pytest.raises(LeaseLost):
        await store.complete_workflow_task(
            task, WorkflowCommit(events=[upsert(1, {"stage": "paid"})]), LEASE
        )
    assert (await store.get_run(NS, "fenced")).search_attributes == {"stage": "new"}
    assert await ids(store, sa_stage="paid") == []


async def test_filters_by_each_type(store: Store) -> None:
    later = DAY + timedelta(days=2)
    await start(store, "a", {"customer": "acme", "tags": ["vip"], "priority": 1, "score": 0.5,
                             "urgent": True, "due": DAY})  # fmt: skip
    await start(store, "b", {"customer": "beta", "tags": ["vip", "eu"], "priority": 5,
                             "score": 2.5, "urgent": False, "due": later})  # fmt: skip
    await start(store, "c", {"customer": "acme", "priority": 9, "score": -1.0})
    assert await ids(store, sa_customer="acme") == ["c", "a"]
    assert await ids(store, sa_tags="vip") == ["b", "a"]
    assert await ids(store, sa_tags="eu") == ["b"]
    assert await ids(store, sa_priority=5) == ["b"]
    assert await ids(store, sa_priority=Range(2, 9)) == ["c", "b"]
    assert await ids(store, sa_priority=Range(min=2)) == ["c", "b"]
    assert await ids(store, sa_priority=Range(max=1)) == ["a"]
    assert await ids(store, sa_score=Range(0.0, 1.0)) == ["a"]
    assert await ids(store, sa_score=2.5) == ["b"]
    assert await ids(store, sa_urgent=True) == ["a"]
    assert await ids(store, sa_urgent=False) == ["b"]
    assert await ids(store, sa_due=DAY) == ["a"]
    assert await ids(store, sa_due=Range(DAY + timedelta(days=1), None)) == ["b"]
    # Several attributes combine with AND; a value of another type matches nothing.
    assert await ids(store, sa_customer="acme", sa_priority=Range(5, None)) == ["c"]
    assert await ids(store, sa_customer="acme", sa_tags="vip", sa_urgent=True) == ["a"]
    assert await ids(store, sa_priority=5.0) == []
    assert await ids(store, sa_customer="nobody") == []


async def test_filters_by_type_status_and_times(store: Store) -> None:
    first = await start(store, "first", {"customer": "acme"}, workflow_type="alpha")
    task = await claim_one(store)
    await store.complete_workflow_task(
        task,
        WorkflowCommit(events=[("WorkflowCompleted", {"result": 1})],
                       close=RunClose(RunStatus.COMPLETED, 1)),
        LEASE,
    )  # fmt: skip
    closed = await store.get_run(NS, "first")
    assert closed.closed_at is not None
    second = await start(store, "second", {"customer": "acme"}, workflow_type="beta")
    third = await start(store, "third", workflow_type="alpha")
    assert await ids(store, workflow_type="alpha") == ["third", "first"]
    assert await ids(store, status=RunStatus.RUNNING) == ["third", "second"]
    assert await ids(store, workflow_type="alpha", status=RunStatus.COMPLETED) == ["first"]
    assert await ids(store, workflow_type="alpha", sa_customer="acme") == ["first"]
    assert await ids(store, status=RunStatus.RUNNING, sa_customer="acme") == ["second"]
    assert await ids(store, started_after=second.created_at) == ["third", "second"]
    assert await ids(store, started_before=second.created_at) == ["first"]
    assert await ids(store, started_after=first.created_at, started_before=third.created_at) == [
        "second",
        "first",
    ]
    assert await ids(store, started_after=second.created_at, sa_customer="acme") == ["second"]
    assert await ids(store, closed_after=closed.closed_at) == ["first"]
    assert await ids(store, closed_before=closed.closed_at) == []
    assert await ids(store, closed_before=closed.closed_at + 1, sa_customer="acme") == ["first"]


async def test_pages_have_no_duplicates_or_gaps_while_runs_start(store: Store) -> None:
    for i in range(9):
        await start(store, f"old-{i}", {"customer": "acme", "priority": i})
    expected = [f"old-{i}" for i in reversed(range(9))]
    for filters in ({}, {"sa_customer": "acme"}, {"sa_priority": Range(0, 100)}):
        attrs = [attribute_filter(k[3:], v) for k, v in filters.items()]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.list_runs(
                NS, limit=2, cursor=cursor, where=RunFilter(attributes=attrs)
            )
            seen.extend(r.workflow_id for r in page.runs)
            pages += 1
            # Runs that start between pages are newer than every page already read.
            await start(store, f"new-{uuid.uuid4().hex[:6]}", {"customer": "acme", "priority": 1})
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        old = [s for s in seen if s.startswith("old-")]
        assert old == expected, filters
        assert len(seen) == len(set(seen)) and pages >= 5


async def test_listing_is_namespace_scoped(store: Store) -> None:
    await store.ensure_namespace("other")
    await start(store, "mine", {"customer": "acme"})
    await start(store, "mine-too", {"customer": "acme"})
    await start(store, "theirs", {"customer": "acme"}, namespace="other")
    assert await ids(store, sa_customer="acme") == ["mine-too", "mine"]
    assert await ids(store, "other", sa_customer="acme") == ["theirs"]
    assert await ids(store, "nobody", sa_customer="acme") == []
    # A page token names a place in the order, never a namespace.
    token = (await store.list_runs(NS, limit=1)).next_cursor
    assert token is not None
    later = await store.list_runs("other", cursor=token, where=RunFilter(started_after=0))
    assert [r.namespace for r in later.runs] in ([], ["other"])


async def test_continued_and_child_runs_index_their_started_attributes(store: Store) -> None:
    await start(store, "parent", {"customer": "acme"})
    task = await claim_one(store)
    child = new_run("kid", {"role": "child"})
    cont = new_run("parent", {"customer": "acme", "round": 2})
    await store.complete_workflow_task(
        task,
        WorkflowCommit(
            events=[
                ("ChildWorkflowStarted", {"step": 1, "name": "flow", "workflow_id": "kid"}),
                ("WorkflowContinuedAsNew", {"new_run_id": cont.run_id}),
            ],
            children=[NewChild(child, 1, "abandon")],
            close=RunClose(RunStatus.CONTINUED_AS_NEW),
            continue_as_new=ContinueAsNew(cont),
        ),
        LEASE,
    )
    assert (await store.get_run(NS, "kid")).search_attributes == {"role": "child"}
    assert (await store.get_run(NS, "parent")).search_attributes == {"customer": "acme", "round": 2}
    assert await ids(store, sa_round=2) == ["parent"]
    assert await ids(store, sa_customer="acme") == ["parent", "parent"]


async def test_signal_with_start_indexes_attributes(store: Store) -> None:
    run = new_run("sws", {"customer": "acme"})
    await store.signal_with_start(run, "go", 1)
    assert await ids(store, sa_customer="acme") == ["sws"]


async def _rows(harness: Harness, namespace: str) -> int:
    """Search attribute rows of a namespace, read from the table itself."""
    if harness.kind == "sqlite":
        conn = sqlite3.connect(harness.location)
        try:
            sql = "SELECT count(*) FROM search_attributes WHERE namespace = ?"
            return int(conn.execute(sql, (namespace,)).fetchone()[0])
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url(harness.location))
    try:
        sql = "SELECT count(*) FROM tether.search_attributes WHERE namespace = $1"
        return int(await pg.fetchval(sql, namespace))
    finally:
        await pg.close()


async def test_deleting_runs_and_namespaces_deletes_their_attributes(
    harness: Harness, store: Store
) -> None:
    await store.create_namespace("gone", {})
    await start(store, "x", {"customer": "acme", "tags": ["a", "b"]})
    await start(store, "kept", {"customer": "acme"})
    await start(store, "y", {"customer": "acme"}, namespace="gone")
    assert (await _rows(harness, NS), await _rows(harness, "gone")) == (4, 1)
    await store.delete_run(NS, (await store.get_run(NS, "x")).run_id)
    await store.delete_namespace("gone")
    assert (await _rows(harness, NS), await _rows(harness, "gone")) == (1, 0)
    assert await ids(store, sa_customer="acme") == ["kept"]


async def test_the_retention_purge_deletes_attributes(harness: Harness, store: Store) -> None:
    await start(store, "old", {"customer": "acme"})
    task = await claim_one(store)
    await store.complete_workflow_task(
        task,
        WorkflowCommit(events=[("WorkflowCompleted", {"result": 1})],
                       close=RunClose(RunStatus.COMPLETED, 1)),
        LEASE,
    )  # fmt: skip
    await start(store, "open", {"customer": "acme"})
    closed_at = (await store.get_run(NS, "old")).closed_at
    assert closed_at is not None
    assert await store.purge_closed_runs(NS, closed_at + 1, 10) == 1
    assert await _rows(harness, NS) == 1
    assert await ids(store, sa_customer="acme") == ["open"]


async def test_bad_page_tokens_are_refused(store: Store) -> None:
    for token in ("nope", "eyJ4IjoxfQ", "W10", "!!!"):
        with pytest.raises(InvalidArgument, match="page token"):
            await store.list_runs(NS, cursor=token)
