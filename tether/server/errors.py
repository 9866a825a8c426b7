"""Errors as HTTP: the ``tether.errors`` tree mapped to statuses, with a JSON body
``{"error": {"code", "message", ...ids}}``."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import (
    IncompatibleStore,
    InvalidArgument,
    NamespaceAlreadyExists,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    StoreUnavailable,
    TetherError,
    Unauthenticated,
    UsageError,
    WorkflowAlreadyStarted,
)
from .wire import json_response

__all__ = ["QueryUnavailable", "error_response", "handlers", "status_of"]

log = logging.getLogger("tether.server")


class QueryUnavailable(UsageError):
    """This server cannot answer queries: it was started without the workflow code."""

    code = "query_unavailable"


# The most specific class first: the first match wins.
_STATUS: list[tuple[type[TetherError], int]] = [
    (PayloadTooLarge, 413),
    (InvalidArgument, 400),
    (NotFound, 404),
    (WorkflowAlreadyStarted, 409),
    (NamespaceAlreadyExists, 409),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (QueryUnavailable, 501),
    (IncompatibleStore, 500),
    (UsageError, 400),
    (StoreUnavailable, 503),
]


def status_of(exc: TetherError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, code: str, message: str, **ids: Any) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response({"error": {"code": code, "message": message, **ids}}, status, headers)


async def _tether_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TetherError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(status, exc.code, exc.message, **exc.ids)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = (
        f"no route {request.method} {request.url.path}"
        if exc.status_code in (404, 405)
        else exc.detail
    )
    return error_response(exc.status_code, code, str(message))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")


handlers: dict[Any, Any] = {
    TetherError: _tether_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
