"""``/v1/namespaces/{ns}/workflows``: start runs (and signal-with-start), list runs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...client import IdConflict, IdReuse
from ..convert import run_dict
from ..state import server_of
from ..wire import Body, json_response
from .params import number, optional

__all__ = ["routes"]


class StartBody(Body):
    type: str
    args: list[Any] = []
    id: str | None = None
    task_queue: str | None = None
    id_reuse: IdReuse = "allow"
    id_conflict: IdConflict = "fail"


class SignalWithStartBody(Body):
    type: str
    args: list[Any] = []
    signal: str
    payload: Any = None
    task_queue: str | None = None


async def start(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    body = await server.read(request, StartBody, namespace)
    handle = await server.client.start(
        body.type,
        *body.args,
        id=body.id,
        task_queue=body.task_queue,
        namespace=namespace,
        id_reuse=body.id_reuse,
        id_conflict=body.id_conflict,
    )
    out = {"namespace": namespace, "workflow_id": handle.workflow_id, "run_id": handle.run_id}
    return json_response(out, 201)


async def signal_with_start(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    body = await server.read(request, SignalWithStartBody, namespace)
    handle = await server.client.signal_with_start(
        body.type,
        *body.args,
        id=request.path_params["workflow_id"],
        signal=body.signal,
        payload=body.payload,
        task_queue=body.task_queue,
        namespace=namespace,
    )
    out = {"namespace": namespace, "workflow_id": handle.workflow_id, "run_id": handle.run_id}
    return json_response(out)


async def list_runs(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    page = await server.client.list(
        namespace=namespace,
        status=optional(request, "status"),
        workflow_type=optional(request, "type"),
        limit=int(number(request, "limit", 100, 1, 10_000)),
        cursor=optional(request, "cursor"),
    )
    return json_response(
        {"runs": [run_dict(r) for r in page.runs], "next_cursor": page.next_cursor}
    )


routes = [
    Route("/v1/namespaces/{ns}/workflows", start, methods=["POST"]),
    Route("/v1/namespaces/{ns}/workflows", list_runs, methods=["GET"]),
    Route(
        "/v1/namespaces/{ns}/workflows/{workflow_id:path}/signal-with-start",
        signal_with_start,
        methods=["POST"],
    ),
]
