"""Opening, reopening, schema status, and refusing stores that are not ours."""

from __future__ import annotations

import asyncio

import pytest

from tether.errors import IncompatibleStore
from tether.store import RunStatus

from .conftest import Harness
from .helpers import NS, start


async def test_schema_status_is_current(harness: Harness) -> None:
    store = await harness.open()
    status = await store.schema_status()
    assert status.current == status.latest >= 1


async def test_reopening_keeps_data(harness: Harness) -> None:
    store = await harness.open()
    await store.ensure_namespace("acme")
    run = await start(store, "kept", namespace="acme")
    await store.close()
    again = await harness.open()
    assert await again.list_namespaces() == ["acme", "default"]
    got = await again.get_run("acme", "kept")
    assert got.run_id == run.run_id and got.status == RunStatus.RUNNING
    assert [e.type for e in await again.read_history("acme", run.run_id)] == ["WorkflowStarted"]
    await again.open()  # opening an open store changes nothing
    assert (await again.get_run("acme", "kept")).run_id == run.run_id


async def test_closed_store_fails_cleanly(harness: Harness) -> None:
    from tether.errors import StoreUnavailable

    store = await harness.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.list_namespaces()


async def test_newer_schema_is_refused(harness: Harness) -> None:
    store = await harness.open()
    await start(store, "before")
    await store.close()
    await harness.mark_newer()
    with pytest.raises(IncompatibleStore, match="newer"):
        await harness.new().open()


async def test_foreign_data_is_refused_and_left_alone(harness: Harness) -> None:
    for location in await harness.foreign_locations():
        with pytest.raises(IncompatibleStore):
            await harness.new(location).open()
        with pytest.raises(IncompatibleStore):  # still refused: nothing was changed
            await harness.new(location).open()


async def test_several_processes_create_one_store_at_once(harness: Harness) -> None:
    location = await harness.fresh_location()
    stores = [harness.new(location) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    run = await start(stores[0], "first")
    for s in stores:
        assert (await s.schema_status()).current == (await s.schema_status()).latest
        assert (await s.get_run(NS, "first")).run_id == run.run_id
