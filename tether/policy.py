"""Retry policies and activity options: plain values, stored with each scheduled step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from .errors import InvalidArgument

__all__ = ["ActivityOptions", "Priority", "Retry", "seconds"]


def seconds(value: timedelta | float | int | None) -> float | None:
    """Accept a timedelta or a number of seconds."""
    if value is None:
        return None
    out = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if out < 0:
        raise InvalidArgument(f"a duration cannot be negative, got {value!r}")
    return out


@dataclass(frozen=True)
class Retry:
    """How an activity is retried: exponential backoff between attempts.

    ``max_attempts=0`` retries until a timeout or a non-retryable error stops it.
    ``non_retryable`` lists error type names (class names) that fail at once.
    """

    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 100.0
    max_attempts: int = 0
    non_retryable: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.initial_interval < 0 or self.max_interval < 0:
            raise InvalidArgument("retry intervals cannot be negative")
        if self.backoff < 1:
            raise InvalidArgument(f"retry backoff must be >= 1, got {self.backoff}")
        if self.max_attempts < 0:
            raise InvalidArgument(f"max_attempts must be >= 0, got {self.max_attempts}")
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.initial_interval * self.backoff ** (attempt - 1), self.max_interval))

    def gives_up(self, attempt: int, error_type: str, non_retryable: bool) -> bool:
        if non_retryable or error_type in self.non_retryable:
            return True
        return self.max_attempts > 0 and attempt >= self.max_attempts

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_interval": self.initial_interval,
            "backoff": self.backoff,
            "max_interval": self.max_interval,
            "max_attempts": self.max_attempts,
            "non_retryable": list(self.non_retryable),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Retry:
        return cls(**data)


@dataclass(frozen=True)
class ActivityOptions:
    """Where and how long an activity may run. ``None`` means "not limited"."""

    task_queue: str | None = None
    # None: the namespace's default retry policy, read when an attempt fails (so a
    # settings change applies to runs already going), else ``Retry()``.
    retry: Retry | None = None
    schedule_to_close: float | None = None
    start_to_close: float | None = None
    heartbeat: float | None = None

    def merged(self, **overrides: Any) -> ActivityOptions:
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in ("schedule_to_close", "start_to_close", "heartbeat"):
            if key in given:
                given[key] = seconds(given[key])
        return replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_queue": self.task_queue,
            "retry": None if self.retry is None else self.retry.to_dict(),
            "schedule_to_close": self.schedule_to_close,
            "start_to_close": self.start_to_close,
            "heartbeat": self.heartbeat,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivityOptions:
        return cls(
            task_queue=data.get("task_queue"),
            retry=None if data.get("retry") is None else Retry.from_dict(data["retry"]),
            schedule_to_close=data.get("schedule_to_close"),
            start_to_close=data.get("start_to_close"),
            heartbeat=data.get("heartbeat"),
        )


@dataclass(frozen=True)
class Priority:
    """Where a run's tasks stand in their task queue, among its namespace's runs.

    ``level`` 0 to 9: a lower level is taken first (2 by default). Runs with a
    ``fairness_key`` (an end customer, say) share their level's capacity fairly by key,
    in proportion to ``fairness_weight``, so one key's flood does not hold the others
    back; runs without a key go before keyed ones of their level, in FIFO order.
    Child runs and runs continued as new keep their run's priority.
    """

    level: int = 2
    fairness_key: str | None = None
    fairness_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int):
            raise InvalidArgument(f"priority level must be an int, got {self.level!r}")
        if not 0 <= self.level <= 9:
            raise InvalidArgument(f"priority level must be 0 to 9, got {self.level}")
        key = self.fairness_key
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
            raise InvalidArgument(f"fairness_key must be 1 to 200 characters, got {key!r}")
        if key is not None and "\x00" in key:
            raise InvalidArgument(f"fairness_key must not contain the NUL character, got {key!r}")
        weight = self.fairness_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidArgument(f"fairness_weight must be a number, got {weight!r}")
        if not 0.001 <= weight <= 1000:
            raise InvalidArgument(f"fairness_weight must be 0.001 to 1000, got {weight}")

    def to_attrs(self) -> dict[str, Any] | None:
        """As recorded in WorkflowStarted (None for the default: nothing recorded)."""
        if self == Priority():
            return None
        return {"priority": self.level, "key": self.fairness_key, "weight": self.fairness_weight}
