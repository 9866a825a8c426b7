"""``create_app``: the ASGI application over one Tether ``App``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..app import App
from .auth import Tokens
from .errors import handlers
from .routes import ROUTES
from .state import Server

__all__ = ["create_app"]


class _CountRequests:
    """Counts answered requests by method and status, for ``/metrics``."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                key = (str(scope["method"]), int(message["status"]))
                self.server.requests[key] = self.server.requests.get(key, 0) + 1
            await send(message)

        await self.app(scope, receive, counted)


def create_app(
    app: App,
    *,
    tokens: Tokens | None = None,
    worker: bool = False,
    namespaces: Sequence[str] | None = None,
) -> Starlette:
    """The HTTP API over ``app``'s store (opened on startup, closed on shutdown).

    ``tokens`` say which bearer token may address which namespace (none: open to
    all). ``worker=True`` also runs a worker for the app's workflows and activities
    in ``namespaces`` (default: the app's namespace).
    """
    server = Server(app, tokens or Tokens())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with app, contextlib.AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(app.worker(namespaces=namespaces))
            yield

    asgi = Starlette(routes=ROUTES, exception_handlers=handlers, lifespan=lifespan)
    asgi.state.tether = server
    asgi.add_middleware(_CountRequests, server=server)
    return asgi
