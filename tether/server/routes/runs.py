"""``/v1/namespaces/{ns}/workflows/{workflow_id}[...]``: one run: describe, result,
history, signal, query, cancel, terminate, delete. ``?run_id=`` picks a run of the id
(default: the newest)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...client import WorkflowHandle
from ...errors import UnknownWorkflowType, WorkflowFailed
from ..errors import QueryUnavailable
from ..state import Server, server_of
from ..wire import Body, json_response
from .params import number, run_id, takes

__all__ = ["MAX_WAIT", "RUN", "handle_of", "routes"]

# A long poll longer than this is better done as several: proxies cut idle requests.
MAX_WAIT = 300.0

# A workflow id may hold slashes (``customer/42``, sent as ``customer%2F42``): the
# routes with a suffix are listed first, so that ``.../a/b/history`` is the history
# of ``a/b``.
RUN = "/v1/namespaces/{ns}/workflows/{workflow_id:path}"


class SignalBody(Body):
    payload: Any = None


class QueryBody(Body):
    args: list[Any] = []


class ReasonBody(Body):
    reason: str = ""


def handle_of(request: Request) -> tuple[Server, WorkflowHandle[Any]]:
    server = server_of(request)
    namespace = server.namespace(request)
    workflow_id = request.path_params["workflow_id"]
    return server, server.client.get_handle(workflow_id, run_id(request), namespace=namespace)


@takes("run_id")
async def describe(request: Request) -> Response:
    _, handle = handle_of(request)
    return json_response((await handle.describe()).to_dict())


@takes("run_id", "wait")
async def result(request: Request) -> Response:
    """The run's outcome; ``?wait=SECONDS`` waits up to that long for it to close (202
    if it is still running then). A run that continued as new is followed to the end of
    its chain."""
    server, handle = handle_of(request)
    wait = number(request, "wait", 0.0, 0.0, MAX_WAIT)
    try:
        value = await handle.result(wait)
    except TimeoutError:
        return json_response({"workflow_id": handle.workflow_id, "status": "running"}, 202)
    except WorkflowFailed as exc:
        failed = server.client.get_handle(
            handle.workflow_id, exc.ids.get("run_id"), namespace=handle.namespace
        )
        run = await failed.describe()
        out = {**_ids(run.workflow_id, run.run_id), "status": str(run.status)}
        return json_response({**out, "failure": run.failure})
    plain = server.client.codec.plain(value, what="the run's result")
    return json_response(
        {"workflow_id": handle.workflow_id, "status": "completed", "result": plain}
    )


def _ids(workflow_id: str, run_id: str) -> dict[str, str]:
    return {"workflow_id": workflow_id, "run_id": run_id}


@takes("run_id")
async def history(request: Request) -> Response:
    _, handle = handle_of(request)
    return json_response({"events": [e.to_dict() for e in await handle.history()]})


@takes("run_id")
async def signal(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, SignalBody, handle.namespace)
    name = request.path_params["name"]
    await handle.signal(name, body.payload)
    return json_response({"workflow_id": handle.workflow_id, "signal": name}, 202)


@takes("run_id")
async def query(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, QueryBody, handle.namespace)
    try:
        answer = await handle.query(request.path_params["name"], *body.args)
    except UnknownWorkflowType as exc:
        if server.has_code:
            raise
        raise QueryUnavailable(
            "this server was started without workflow code, so it cannot replay runs to"
            " answer queries: start it as `tether server MODULE:APP`",
            **exc.ids,
        ) from None
    plain = server.client.codec.plain(answer, what="the query's answer")
    return json_response({"result": plain})


@takes("run_id")
async def cancel(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, ReasonBody, handle.namespace)
    run = await handle.cancel(body.reason, identity=server.identity)
    return json_response(run.to_dict(), 202)


@takes("run_id")
async def terminate(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, ReasonBody, handle.namespace)
    run = await handle.terminate(body.reason, identity=server.identity)
    return json_response(run.to_dict())


@takes("run_id")
async def delete(request: Request) -> Response:
    """Delete the run and every byte of it (a GDPR erasure)."""
    server, handle = handle_of(request)
    run = await handle.describe()
    await server.client.delete_run(run.workflow_id, run.run_id, namespace=run.namespace)
    return json_response({"deleted": _ids(run.workflow_id, run.run_id)})


routes = [
    Route(RUN + "/result", result, methods=["GET"]),
    Route(RUN + "/history", history, methods=["GET"]),
    Route(RUN + "/signal/{name}", signal, methods=["POST"]),
    Route(RUN + "/query/{name}", query, methods=["POST"]),
    Route(RUN + "/cancel", cancel, methods=["POST"]),
    Route(RUN + "/terminate", terminate, methods=["POST"]),
    Route(RUN, describe, methods=["GET"]),
    Route(RUN, delete, methods=["DELETE"]),
]
