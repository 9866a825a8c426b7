"""Per-namespace settings: one validated pydantic model, stored as JSON with the namespace.

A bad value is refused with ``InvalidArgument`` naming the field, and nothing is
changed. Durations accept seconds, ISO 8601 (``P30D``) or a number with a unit
(``30d``, ``12h``, ``90m``, ``45s``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidArgument
from ..policy import Retry

__all__ = ["NAME_PATTERN", "NamespaceSettings", "RetrySettings", "check_name", "parse_settings"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)


def check_name(name: Any) -> str:
    """A namespace name: letters, digits, '.', '_', '-', at most 100, not starting with
    punctuation."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument(
            f"invalid namespace name {name!r}: use letters, digits, '.', '_' or '-'"
            " (at most 100, starting with a letter or digit)"
        )
    return name


def _duration(value: Any) -> Any:
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])
    return value


#: No NUL character: PostgreSQL's text cannot hold it (see ``codec.check_text``).
QueueName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Rate = Annotated[float, Field(gt=0, le=1_000_000)]


class RetrySettings(BaseModel):
    """A retry policy, as :class:`tether.Retry`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_interval: float = Field(default=1.0, ge=0)
    backoff: float = Field(default=2.0, ge=1)
    max_interval: float = Field(default=100.0, ge=0)
    max_attempts: int = Field(default=0, ge=0)
    non_retryable: tuple[str, ...] = ()

    def to_retry(self) -> Retry:
        return Retry(**self.model_dump())


class NamespaceSettings(BaseModel):
    """What a namespace may do and how its work is scheduled. ``None`` means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: Annotated[timedelta | None, pydantic.BeforeValidator(_duration)] = Field(
        default=timedelta(days=30),
        description="How long closed runs are kept before the sweeper removes them.",
    )
    max_running_workflows: int | None = Field(
        default=None, ge=1, description="Workflow tasks running at once, over every worker."
    )
    max_running_activities: int | None = Field(
        default=None, ge=1, description="Activity attempts running at once, over every worker."
    )
    start_rate: Rate | None = Field(default=None, description="Runs started per second.")
    activity_rate: Rate | None = Field(
        default=None, description="Activities dispatched per second."
    )
    queue_start_rates: dict[QueueName, Rate] = Field(
        default_factory=dict, description="Starts per second, per task queue."
    )
    queue_activity_rates: dict[QueueName, Rate] = Field(
        default_factory=dict, description="Activity dispatches per second, per task queue."
    )
    weight: int = Field(default=1, ge=1, le=1000, description="Share of workers among its tier.")
    priority: int = Field(
        default=2, ge=0, le=9, description="Tier: a lower tier is served first (0 to 9)."
    )
    default_retry: RetrySettings | None = Field(
        default=None, description="Retry policy of activities that do not set one."
    )
    max_payload: int | None = Field(
        default=None, ge=1, le=1 << 30, description="Largest encoded payload, in bytes."
    )
    task_queues: tuple[QueueName, ...] | None = Field(
        default=None, description="The task queues runs may be started on (None: any)."
    )

    @pydantic.field_validator("retention")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError("must be positive (or null to keep closed runs forever)")
        return value

    @property
    def limited(self) -> bool:
        """True when a cap or a rate applies to the namespace's tasks."""
        return bool(
            self.max_running_workflows
            or self.max_running_activities
            or self.activity_rate
            or self.queue_activity_rates
        )

    def to_json(self) -> dict[str, Any]:
        """As stored: only the fields that differ from the defaults."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude_defaults=True)
        return data

    def merged(self, changes: Mapping[str, Any]) -> NamespaceSettings:
        """These settings with ``changes`` applied, validated."""
        return parse_settings({**self.model_dump(exclude_defaults=True), **changes})


def parse_settings(data: Mapping[str, Any] | NamespaceSettings | None) -> NamespaceSettings:
    """Validate settings; raise ``InvalidArgument`` naming the first bad field."""
    if isinstance(data, NamespaceSettings):
        return data
    try:
        return NamespaceSettings.model_validate(dict(data or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            known = ", ".join(NamespaceSettings.model_fields)
            message = f"unknown setting (known: {known})"
        raise InvalidArgument(
            f"namespace setting {field!r}: {message} (got {first.get('input')!r})",
            field=field,
        ) from None
