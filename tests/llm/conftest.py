"""Fixtures for LLM steps: a simulator server on loopback, and settings that use it
through each provider's wire format and official SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tether
from tether.history import Event, EventType
from tether.llm import LLMConfig, ProviderConfig, SimServer

# Fast retries, so that failure paths finish quickly.
FAST_RETRY = tether.Retry(initial_interval=0.05, backoff=2, max_interval=0.2, max_attempts=3)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


def providers(sim: SimServer, timeout: float = 5.0, **extra: Any) -> dict[str, ProviderConfig]:
    """``oa`` (OpenAI wire), ``an`` (Anthropic) and ``gm`` (Gemini), all on ``sim``."""
    return {
        "oa": ProviderConfig(
            kind="openai", api_key="test-key", base_url=f"{sim.url}/v1", timeout=timeout, **extra
        ),
        "an": ProviderConfig(
            kind="anthropic", api_key="test-key", base_url=sim.url, timeout=timeout, **extra
        ),
        "gm": ProviderConfig(
            kind="gemini", api_key="test-key", base_url=sim.url, timeout=timeout, **extra
        ),
    }


def settings(sim: SimServer, timeout: float = 5.0, **options: Any) -> LLMConfig:
    options.setdefault("providers", providers(sim, timeout))
    return LLMConfig(**options)


async def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition() if asyncio.iscoroutinefunction(condition) else not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def llm_results(history: list[Event]) -> list[dict[str, Any]]:
    """The recorded results of the run's LLM steps, in order."""
    steps = {
        e.attrs["step"]
        for e in history
        if e.type == EventType.ACTIVITY_SCHEDULED and e.attrs["name"] == "tether.llm"
    }
    return [
        e.attrs["result"]
        for e in history
        if e.type == EventType.ACTIVITY_COMPLETED and e.attrs["step"] in steps
    ]
