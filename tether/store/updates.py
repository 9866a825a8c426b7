"""Update requests as stores keep them (see ``engine/updates.py`` for the life of one).

A request waits outside history until a worker holding its run decides on it; its row
then carries the outcome that the waiting caller reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["UpdateOutcome", "UpdateRecord", "UpdateStatus"]


class UpdateStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker to validate it
    ACCEPTED = "accepted"  # in history (UpdateAccepted); its handler is running
    COMPLETED = "completed"  # the handler returned ``result``
    FAILED = "failed"  # the handler raised ``failure``
    REJECTED = "rejected"  # refused before anything was recorded (``failure``)


_DONE = frozenset({UpdateStatus.COMPLETED, UpdateStatus.FAILED, UpdateStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    namespace: str
    run_id: str
    update_id: str
    name: str
    args: list[Any]
    status: UpdateStatus
    result: Any
    failure: dict[str, Any] | None
    created_at: float

    @property
    def done(self) -> bool:
        """True once the request has its final outcome."""
        return self.status in _DONE


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """How an accepted update ended, recorded with its ``UpdateCompleted`` command."""

    update_id: str
    result: Any = None
    failure: dict[str, Any] | None = None
