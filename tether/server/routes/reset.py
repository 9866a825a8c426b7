"""``.../workflows/{workflow_id}/reset``: a new run of the id from a point of one run's
history (an event seq, or ``last_completed_step``, ``first_failed_activity``,
``step:N``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..wire import Body, json_response
from .params import takes
from .runs import RUN, handle_of

__all__ = ["routes"]


class ResetBody(Body):
    to: int | str
    reason: str = ""
    reapply_signals: bool = True


@takes("run_id")
async def reset(request: Request) -> Response:
    server, handle = handle_of(request)
    body = await server.read(request, ResetBody, handle.namespace)
    run = await handle.describe()
    handle = server.client.get_handle(run.workflow_id, run.run_id, namespace=run.namespace)
    new_run = await handle.reset(
        body.to,
        reason=body.reason,
        reapply_signals=body.reapply_signals,
        identity=server.identity,
    )
    out = {"workflow_id": handle.workflow_id, "run_id": new_run, "reset_from": handle.run_id}
    return json_response(out, 201)


routes = [Route(RUN + "/reset", reset, methods=["POST"])]
