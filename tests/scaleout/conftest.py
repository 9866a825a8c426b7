"""Fixtures of the scale-out tests: databases, private servers, namespaces, workers."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.netns import netns_factory
from tests.support.pg import PgTemplate, database_url
from tests.support.pgserver import pg_server_factory

from .cluster import Cluster

__all__ = ["netns_factory", "pg_server_factory"]


def pytest_configure(config: pytest.Config) -> None:
    # Until pyproject.toml lists it (strict markers): select with -m scaleout.
    config.addinivalue_line("markers", "scaleout: multi-process and multi-host tests on PostgreSQL")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgTemplate]:
    template = PgTemplate()
    template.create()
    yield template
    template.drop()


@pytest.fixture
async def pg_url(pg_template: PgTemplate) -> AsyncIterator[str]:
    """A fresh migrated database on the shared test server."""
    name = await pg_template.clone()
    yield database_url(name)
    await pg_template.drop_database(name)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Worker processes of one test; all stopped (or killed) afterwards.

    Their folder is world-readable under /tmp, not pytest's tmp_path, so that workers
    in network namespaces and the ``postgres`` user can share it if needed.
    """
    with tempfile.TemporaryDirectory(prefix="tether-scaleout-") as folder:
        c = Cluster(Path(folder))
        try:
            yield c
        finally:
            c.stop_all()
