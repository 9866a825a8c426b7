"""``/v1/namespaces``: create, list, describe, update and delete namespaces, and
``/v1/namespaces/{ns}/usage``. Creating, changing and deleting need an admin token;
a namespace's own token may describe it and read its usage."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..convert import namespace_dict
from ..state import server_of
from ..wire import Body, json_response
from .params import maybe_number, takes

__all__ = ["routes"]


class CreateBody(Body):
    name: str
    settings: dict[str, Any] = {}


class UpdateBody(Body):
    settings: dict[str, Any]


@takes()
async def create(request: Request) -> Response:
    server = server_of(request)
    server.grant(request).check_admin("creating a namespace")
    body = await server.read(request, CreateBody)
    info = await server.client.namespaces.create(body.name, body.settings)
    return json_response(namespace_dict(info), 201)


@takes()
async def list_namespaces(request: Request) -> Response:
    """Every namespace for an admin; the token's own namespaces otherwise."""
    server = server_of(request)
    grant = server.grant(request)
    infos = await server.client.namespaces.list()
    if grant.namespaces is not None:
        infos = [i for i in infos if i.name in grant.namespaces]
    return json_response({"namespaces": [namespace_dict(i) for i in infos]})


@takes()
async def describe(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    return json_response((await server.client.namespaces.describe(namespace)).to_dict())


@takes()
async def update(request: Request) -> Response:
    server = server_of(request)
    server.grant(request).check_admin("changing a namespace's settings")
    body = await server.read(request, UpdateBody)
    info = await server.client.namespaces.update(request.path_params["ns"], body.settings)
    return json_response(namespace_dict(info))


@takes()
async def delete(request: Request) -> Response:
    server = server_of(request)
    server.grant(request).check_admin("deleting a namespace")
    name = request.path_params["ns"]
    await server.client.namespaces.delete(name)
    return json_response({"deleted": name})


@takes("since", "until", repeatable=("by",))
async def usage(request: Request) -> Response:
    """LLM usage summed per ``?by=`` group (repeatable; default ``model``) over
    ``[?since=, ?until=)`` in Unix seconds."""
    server = server_of(request)
    namespace = server.namespace(request)
    # Repeated groups count once, in the store's report and in its echo here.
    groups = list(dict.fromkeys(request.query_params.getlist("by"))) or ["model"]
    far = 1e12  # later than any Unix time a ledger holds
    rows = await server.client.usage(
        namespace=namespace,
        group_by=groups,
        since=maybe_number(request, "since", 0, far),
        until=maybe_number(request, "until", 0, far),
    )
    return json_response({"groups": groups, "rows": [r.to_dict() for r in rows]})


routes = [
    Route("/v1/namespaces", create, methods=["POST"]),
    Route("/v1/namespaces", list_namespaces, methods=["GET"]),
    Route("/v1/namespaces/{ns}", describe, methods=["GET"]),
    Route("/v1/namespaces/{ns}", update, methods=["PATCH"]),
    Route("/v1/namespaces/{ns}", delete, methods=["DELETE"]),
    Route("/v1/namespaces/{ns}/usage", usage, methods=["GET"]),
]
