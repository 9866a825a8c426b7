"""Query-string parameters, checked: a wrong one is an ``InvalidArgument`` naming it."""

from __future__ import annotations

from starlette.requests import Request

from ...errors import InvalidArgument

__all__ = ["maybe_number", "number", "optional", "run_id"]


def optional(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


def number(request: Request, name: str, default: float, low: float, high: float) -> float:
    value = maybe_number(request, name, low, high)
    return default if value is None else value


def maybe_number(request: Request, name: str, low: float, high: float) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"?{name}= must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidArgument(f"?{name}= must be between {low:g} and {high:g}, got {raw}")
    return value


def run_id(request: Request) -> str | None:
    """``?run_id=``: a specific run of the workflow id (default: its newest)."""
    return optional(request, "run_id")
