"""Query-string parameters, checked: a wrong one is an ``InvalidArgument`` naming it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidArgument

__all__ = ["maybe_number", "number", "optional", "run_id", "takes"]

Endpoint = Callable[[Request], Awaitable[Response]]


def takes(*names: str, repeatable: tuple[str, ...] = ()) -> Callable[[Endpoint], Endpoint]:
    """The query parameters an endpoint reads; any other, or one of ``names`` given
    twice, is refused. Ignored, a misspelt ``?runid=`` would make a cancel, terminate
    or delete act on the workflow's newest run instead of the one named."""
    known = frozenset(names) | frozenset(repeatable)
    listed = ", ".join(f"?{n}=" for n in sorted(known)) or "none"

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            params = request.query_params
            for name in params:
                if name not in known:
                    raise InvalidArgument(
                        f"unknown query parameter ?{name}= (this endpoint takes {listed})"
                    )
                if name not in repeatable and len(params.getlist(name)) > 1:
                    raise InvalidArgument(f"?{name}= is given more than once")
            return await endpoint(request)

        return checked

    return wrap


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
