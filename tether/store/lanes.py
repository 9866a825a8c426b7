"""Lanes: the writes waiting for a group commit, one queue per namespace.

Both stores gather a loop turn's writes into one transaction; under load, writes wait
for the next one. A group takes one write from each lane in turn, so a tenant with
hundreds of writes waiting does not put another tenant's next step behind all of
them. Within a lane, writes keep their order.
"""

from __future__ import annotations

from collections import deque
from typing import TypeVar

__all__ = ["take_in_turn"]

T = TypeVar("T")


def take_in_turn(lanes: dict[str | None, deque[T]], most: int) -> list[T]:
    """Up to ``most`` items, one from each lane in turn; emptied lanes are removed."""
    taken: list[T] = []
    while lanes and len(taken) < most:
        for name, lane in list(lanes.items()):
            taken.append(lane.popleft())
            if not lane:
                del lanes[name]
            if len(taken) == most:
                break
    return taken
