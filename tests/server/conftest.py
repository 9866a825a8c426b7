"""A real uvicorn server on a loopback port, in this test's event loop, over an App on
the test's store (both stores, through ``make_app``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn

import tether
from tests.conftest import AppFactory
from tether.server import Tokens, create_app

Serve = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


def build_app(make_app: AppFactory, **options: Any) -> tether.App:
    """An App with the workflows the server tests drive."""
    app = make_app(**options)

    @app.activity
    async def shout(text: str) -> str:
        return text.upper()

    @app.workflow
    async def greet(ctx: tether.Context, name: str) -> str:
        return await ctx.activity(shout, f"hello {name}")

    @app.workflow
    async def inbox(ctx: tether.Context, owner: str) -> list[Any]:
        got: list[Any] = []
        ctx.set_query_handler("got", lambda: list(got))
        ctx.set_query_handler("owner", lambda: owner)
        while len(got) < 2:
            got.append(await ctx.wait_signal("mail"))
        return [owner, *got]

    @app.workflow
    async def plan(ctx: tether.Context, steps: list[str]) -> list[str]:
        def check(step: str) -> None:
            if not step:
                raise tether.InvalidArgument("a step needs a name")

        @ctx.update("add", validator=check)
        async def add(step: str) -> list[str]:
            steps.append(await ctx.activity(shout, step))
            return list(steps)

        await ctx.wait_signal("done")
        return steps

    @app.workflow
    async def fails(ctx: tether.Context) -> None:
        raise tether.ApplicationError("no luck", type="Unlucky", non_retryable=True)

    return app


@contextlib.asynccontextmanager
async def serving(
    app: tether.App, *, tokens: Tokens | None = None, worker: bool = True, token: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` on a free port; yield an HTTP client for it (sending ``token``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: the first requests wait in the backlog until
    # startup is done, with no polling for readiness.
    sock.listen(128)
    port = sock.getsockname()[1]
    asgi = create_app(app, tokens=tokens, worker=worker, namespaces=["default", "a", "b"])
    config = uvicorn.Config(asgi, lifespan="on", log_level="warning", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as http:
            yield http
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def serve() -> Serve:
    return serving
