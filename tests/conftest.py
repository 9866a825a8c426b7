"""Fixtures shared by every test folder.

``backend`` runs a test once per store (SQLite file, PostgreSQL database cloned from
a template); ``make_app`` builds opened Apps on that test's store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.support.pg import PgTemplate, database_url

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgTemplate]:
    template = PgTemplate()
    template.create()
    yield template
    template.drop()


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty store location for this test, as a URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "tether.db")
        return
    pg: PgTemplate = request.getfixturevalue("pg_template")
    name = await pg.clone()
    try:
        yield database_url(name)
    finally:
        await pg.drop_database(name)


AppFactory = Callable[..., "tether.App"]


@pytest.fixture
async def make_app(store_url: str) -> AsyncIterator[AppFactory]:
    """``make_app(**options)`` builds an App on this test's store; closed at teardown."""
    apps: list[tether.App] = []

    def factory(**options: Any) -> tether.App:
        app = tether.App(store_url, **options)
        apps.append(app)
        return app

    yield factory
    for app in reversed(apps):
        await app.close()
