"""``/healthz`` (the process answers) and ``/readyz`` (and its store answers too)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import NamespaceNotFound
from ..errors import error_response
from ..state import server_of
from ..wire import json_response

__all__ = ["routes"]

log = logging.getLogger("tether.server")


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    store = server_of(request).app.store
    try:
        await store.get_namespace("default")
    except NamespaceNotFound:
        pass  # the store answered; that the namespace is gone is no fault of the server
    except Exception as exc:  # any failure to reach the store means: not ready
        log.warning("readiness check failed: %s", exc)
        return error_response(503, "store_unavailable", f"the store does not answer: {exc}")
    return json_response({"status": "ready"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
