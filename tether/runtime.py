"""The event loop Tether's own processes run on.

Tether's code runs on any asyncio event loop: an application that embeds a worker
keeps its own. The processes Tether starts itself (``tether worker``, the other
commands, ``App.run``) run on uvloop where it is installed, and it is installed with
Tether on Linux and macOS: a store call's round trip costs the client a third to a
half less CPU on it than on the standard loop (bench/README.md, session 22).
``TETHER_EVENT_LOOP=asyncio`` chooses the standard loop; ``uvloop`` insists on uvloop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import InvalidArgument

__all__ = ["EVENT_LOOPS", "event_loop", "loop_factory", "run"]

T = TypeVar("T")

#: The values of ``TETHER_EVENT_LOOP``.
EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop() -> str:
    """The loop Tether's processes use here: ``"uvloop"`` or ``"asyncio"``."""
    chosen = os.environ.get("TETHER_EVENT_LOOP", "").strip().lower()
    if chosen not in ("", *EVENT_LOOPS):
        raise InvalidArgument(
            f"TETHER_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)} (or unset), got {chosen!r}"
        )
    installed = importlib.util.find_spec("uvloop") is not None
    if chosen == "uvloop" and not installed:
        raise InvalidArgument("TETHER_EVENT_LOOP=uvloop, but uvloop is not installed")
    return "uvloop" if installed and chosen != "asyncio" else "asyncio"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For ``asyncio.Runner``: uvloop's constructor, or None for the standard loop."""
    if event_loop() == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop of :func:`event_loop`."""
    try:
        factory = loop_factory()
    except InvalidArgument:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
