"""Namespace lifecycle through the client, settings validation, live setting changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

import tether
from tests.conftest import AppFactory
from tether.errors import NamespaceAlreadyExists
from tether.tenancy import NamespaceSettings


async def test_create_describe_update_list_delete(make_app: AppFactory) -> None:
    app = make_app()
    async with app:
        ns = app.client.namespaces
        created = await ns.create("acme", retention="7d", weight=3)
        assert created.settings.retention == timedelta(days=7)
        assert created.settings.weight == 3 and created.settings.max_running_workflows is None
        with pytest.raises(NamespaceAlreadyExists):
            await ns.create("acme")
        updated = await ns.update("acme", max_running_activities=4, priority=0)
        assert updated.settings.weight == 3  # kept
        assert (updated.settings.max_running_activities, updated.settings.priority) == (4, 0)
        again = await ns.update("acme", retention=None)
        assert again.settings.retention is None and again.settings.weight == 3
        assert [n.name for n in await ns.list()] == ["acme", "default"]
        described = (await ns.describe("acme")).to_dict()
        assert described["runs"] == {"running": 0, "closed": 0, "by_status": {}}
        assert described["settings"]["max_running_activities"] == 4
        await ns.delete("acme")
        with pytest.raises(tether.NamespaceNotFound):
            await ns.describe("acme")
        with pytest.raises(tether.NamespaceNotFound):
            await ns.update("acme", weight=2)
        with pytest.raises(tether.NamespaceNotFound):
            await ns.delete("acme")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"weight": 0}, "weight"),
        ({"priority": 10}, "priority"),
        ({"retention": "-1d"}, "retention"),
        ({"retention": "forever"}, "retention"),
        ({"max_running_workflows": 0}, "max_running_workflows"),
        ({"activity_rate": -1}, "activity_rate"),
        ({"queue_activity_rates": {"gpu": 0}}, "queue_activity_rates.gpu"),
        ({"default_retry": {"backoff": 0.5}}, "default_retry.backoff"),
        ({"max_payload": "big"}, "max_payload"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_settings_name_the_field(
    make_app: AppFactory, settings: dict[str, object], field: str
) -> None:
    app = make_app()
    async with app:
        with pytest.raises(tether.InvalidArgument, match=f"'{field}'") as caught:
            await app.client.namespaces.create("acme", settings)
        assert caught.value.ids["field"] == field
        await app.client.namespaces.create("ok")
        with pytest.raises(tether.InvalidArgument, match=f"'{field}'"):
            await app.client.namespaces.update("ok", settings)
        assert await app.client.namespaces.get("ok") is not None
        assert (await app.client.namespaces.get("ok")).settings == NamespaceSettings()
        assert [n.name for n in await app.client.namespaces.list()] == ["default", "ok"]


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 101, "a/b"])
async def test_bad_names_are_refused(make_app: AppFactory, name: str) -> None:
    app = make_app()
    async with app:
        with pytest.raises(tether.InvalidArgument, match="namespace name"):
            await app.client.namespaces.create(name)


async def test_settings_take_effect_without_restarting(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow
    async def echo(ctx: tether.Context, text: str) -> str:
        return text

    async with app, app.worker(namespaces=["acme"]):
        await app.client.namespaces.create("acme")
        assert await app.client.execute(echo, "hi", namespace="acme", timeout=30) == "hi"
        await app.client.namespaces.update("acme", task_queues=["other"], max_payload=64)
        with pytest.raises(tether.InvalidArgument, match="may not use task queue"):
            await app.client.start(echo, "hi", namespace="acme")
        await app.client.namespaces.update("acme", task_queues=None)
        with pytest.raises(tether.PayloadTooLarge, match="limit of 64 bytes"):
            await app.client.start(echo, "x" * 100, namespace="acme")
        assert await app.client.execute(echo, "small", namespace="acme", timeout=30) == "small"
