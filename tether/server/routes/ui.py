"""The web UI: static pages under ``/ui/`` that call the same HTTP API (with the
token a person types in), so the UI can show nothing the token may not see."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC", "routes"]

STATIC = Path(__file__).resolve().parent.parent / "static"


async def home(request: Request) -> Response:
    return RedirectResponse("/ui/")


routes = [
    Route("/", home, methods=["GET"]),
    Mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui"),
]
