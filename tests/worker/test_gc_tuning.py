"""While a worker runs, the garbage collector collects less often (see ``Worker.start``):
its thresholds go up to the worker's, never down, and come back when it stops."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.conftest import AppFactory


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("thresholds")
async def test_a_running_worker_raises_the_thresholds_and_stop_puts_them_back(
    make_app: AppFactory,
) -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    app = make_app()
    async with app, app.worker():
        young, middle, old = gc.get_threshold()
        assert young > 700 and middle > 10 and old == 10  # the oldest is left alone
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("thresholds")
async def test_higher_thresholds_are_kept(make_app: AppFactory) -> None:
    high = (10**7, 10**4, 50)  # above any worker's
    gc.set_threshold(*high)
    app = make_app()
    async with app, app.worker():
        assert gc.get_threshold() == high
    assert gc.get_threshold() == high


@pytest.mark.usefixtures("thresholds")
async def test_tune_gc_false_leaves_them(make_app: AppFactory) -> None:
    gc.set_threshold(700, 10, 10)
    app = make_app()
    async with app, app.worker(tune_gc=False):
        assert gc.get_threshold() == (700, 10, 10)
