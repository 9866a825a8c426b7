"""Lanes: the writes waiting for a group commit, one queue per namespace.

Both stores gather a loop turn's writes into one transaction; under load, writes wait
for the next one. A group takes one write from each lane in turn, so a tenant with
hundreds of writes waiting does not put another tenant's next step behind all of
them. Within a lane, writes keep their order. A lane may sit out a group (PostgreSQL
holds a namespace back while its share of batches is out: ``postgres/commits.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TypeVar

__all__ = ["take_in_turn"]

T = TypeVar("T")


def take_in_turn(
    lanes: dict[str | None, deque[T]],
    most: int,
    eligible: Callable[[str | None], bool] = lambda name: True,
) -> list[T]:
    """Up to ``most`` items, one from each ``eligible`` lane in turn; emptied
    lanes are removed."""
    names = [name for name in lanes if eligible(name)]
    taken: list[T] = []
    while names and len(taken) < most:
        for name in list(names):
            lane = lanes[name]
            taken.append(lane.popleft())
            if not lane:
                del lanes[name]
                names.remove(name)
            if len(taken) == most:
                break
    return taken
