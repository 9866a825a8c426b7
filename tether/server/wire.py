"""JSON in and out with the codec's encoder (orjson), and request bodies read under a
size limit: an oversized body is refused before it is read whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidArgument, PayloadTooLarge

__all__ = ["Body", "json_response", "read_body"]

B = TypeVar("B", bound="Body")


class Body(pydantic.BaseModel):
    """A request body: unknown fields and wrong types are errors, never guesses."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument(f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(
                f"the request body is {declared} bytes, over the limit of {limit} bytes"
            )
    chunks: list[bytes] = []
    size = 0
    # A chunked body declares no length: count while reading, stop at the limit.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[B], limit: int) -> B:
    """The body as ``model``; an empty body is ``{}``. Raises ``InvalidArgument``
    (malformed JSON, wrong fields or types) or ``PayloadTooLarge``."""
    raw = await _read(request, limit)
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"the request body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidArgument(f"bad request body: {problems}") from None
