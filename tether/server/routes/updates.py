"""``.../workflows/{workflow_id}/update/{name}`` and ``.../update-with-start``: call a
run's update handler and answer with its result."""

from __future__ import annotations

from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...client import IdConflict, IdReuse
from ..state import server_of
from ..wire import Body, json_response
from .params import takes
from .runs import MAX_WAIT, RUN, handle_of

__all__ = ["routes"]


class UpdateBody(Body):
    args: list[Any] = []
    update_id: str | None = None
    # Seconds to wait for the outcome (202 if it is not there yet; ask again with the
    # same update_id to go on waiting); out of range is refused, as ``?wait=`` is.
    wait: float = pydantic.Field(default=60.0, ge=0.0, le=MAX_WAIT)


class UpdateWithStartBody(UpdateBody):
    type: str
    start_args: list[Any] = []
    task_queue: str | None = None
    id_reuse: IdReuse = "allow"
    id_conflict: IdConflict = "use_existing"


@takes("run_id")
async def update(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, UpdateBody, handle.namespace)
    name = request.path_params["name"]
    try:
        result = await handle.update(name, *body.args, update_id=body.update_id, timeout=body.wait)
    except TimeoutError:
        return json_response({"workflow_id": handle.workflow_id, "status": "pending"}, 202)
    plain = server.client.codec.plain(result, what=f"the result of update {name!r}")
    return json_response({"workflow_id": handle.workflow_id, "result": plain})


@takes()
async def update_with_start(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    body = await server.read(request, UpdateWithStartBody, namespace)
    name = request.path_params["name"]
    try:
        result, handle = await server.client.update_with_start(
            body.type,
            *body.start_args,
            id=request.path_params["workflow_id"],
            update=name,
            update_args=body.args,
            update_id=body.update_id,
            task_queue=body.task_queue,
            namespace=namespace,
            id_reuse=body.id_reuse,
            id_conflict=body.id_conflict,
            timeout=body.wait,
        )
    except TimeoutError:
        out = {"workflow_id": request.path_params["workflow_id"], "status": "pending"}
        return json_response(out, 202)
    plain = server.client.codec.plain(result, what=f"the result of update {name!r}")
    out = {"workflow_id": handle.workflow_id, "run_id": handle.run_id, "result": plain}
    return json_response(out)


routes = [
    Route(RUN + "/update-with-start/{name}", update_with_start, methods=["POST"]),
    Route(RUN + "/update/{name}", update, methods=["POST"]),
]
