"""What a running activity can learn about itself, and how it reports progress."""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument

__all__ = ["ActivityInfo", "heartbeat", "info"]


@dataclass
class ActivityInfo:
    """Facts about the running attempt.

    ``idempotency_key`` is the same for every attempt of one activity execution, so an
    activity can pass it to an external system to make its effect happen once.
    """

    namespace: str
    workflow_id: str
    run_id: str
    step: int
    name: str
    attempt: int
    idempotency_key: str
    heartbeat_details: Any
    _beat: Any = field(default=None, repr=False)
    last_beat: float = field(default_factory=time.monotonic)


_current: contextvars.ContextVar[ActivityInfo] = contextvars.ContextVar("tether_activity")


def info() -> ActivityInfo:
    """The attempt being run; only valid inside an activity."""
    try:
        return _current.get()
    except LookupError:
        raise InvalidArgument("tether.activity_info() called outside an activity") from None


def heartbeat(details: Any = None) -> None:
    """Report progress; ``details`` are given to the next attempt if this one fails.

    Works from async and sync (threaded) activities alike.
    """
    current = info()
    current.last_beat = time.monotonic()
    current.heartbeat_details = details
    beat = current._beat
    if beat is None:
        return
    loop: asyncio.AbstractEventLoop = beat[0]
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        beat[1](details)
    else:
        loop.call_soon_threadsafe(beat[1], details)


def bind(value: ActivityInfo) -> contextvars.Token[ActivityInfo]:
    return _current.set(value)
