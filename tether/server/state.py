"""What every route shares: the App, the tokens, and the checks a request passes
before it reaches ``Client``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import Request

from ..app import App
from ..client import Client
from ..codec import check_text
from .auth import Grant, Tokens
from .wire import Body, read_body

__all__ = ["ENVELOPE", "Server", "server_of"]

B = TypeVar("B", bound=Body)

# Room for a body's own fields around its payloads; the payloads themselves are
# checked exactly by the codec and the namespace's settings.
ENVELOPE = 64 * 1024


@dataclass
class Server:
    """One HTTP server over one App."""

    app: App
    tokens: Tokens = field(default_factory=Tokens)
    identity: str = "http"
    requests: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def client(self) -> Client:
        return self.app.client

    @property
    def has_code(self) -> bool:
        """Started with the app's workflow code (so it can answer queries)."""
        return bool(self.app.registry.workflows)

    def grant(self, request: Request) -> Grant:
        return self.tokens.grant(request.headers.get("authorization"))

    def namespace(self, request: Request) -> str:
        """The path's namespace, once the request's token is checked against it."""
        namespace = check_text(request.path_params["ns"], "a namespace")
        self.grant(request).check(namespace)
        return namespace

    async def read(self, request: Request, model: type[B], namespace: str | None = None) -> B:
        """The body as ``model``, refused unread if over the payload limit (the
        namespace's own limit when it sets a lower one)."""
        limit = self.client.codec.max_payload
        if namespace is not None:
            own = (await self.client.namespaces.settings(namespace)).max_payload
            if own is not None:
                limit = min(limit, own)
        return await read_body(request, model, limit + ENVELOPE)


def server_of(request: Request) -> Server:
    server: Server = request.app.state.tether
    return server
