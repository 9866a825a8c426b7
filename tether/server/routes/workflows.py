"""``/v1/namespaces/{ns}/workflows``: start runs (and signal-with-start), list runs."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...client import IdConflict, IdReuse
from ...errors import InvalidArgument
from ...policy import Priority
from ...search_attributes import Range
from ..state import server_of
from ..wire import Body, json_response
from .params import maybe_number, number, optional, takes

__all__ = ["routes"]


class PriorityBody(Body):
    level: int = 2
    fairness_key: str | None = None
    fairness_weight: float = 1.0

    def to_priority(self) -> Priority:
        return Priority(self.level, self.fairness_key, self.fairness_weight)


class StartBody(Body):
    type: str
    args: list[Any] = []
    id: str | None = None
    task_queue: str | None = None
    id_reuse: IdReuse = "allow"
    id_conflict: IdConflict = "fail"
    priority: PriorityBody | None = None
    search_attributes: dict[str, Any] | None = None


class SignalWithStartBody(Body):
    type: str
    args: list[Any] = []
    signal: str
    payload: Any = None
    task_queue: str | None = None
    priority: PriorityBody | None = None
    search_attributes: dict[str, Any] | None = None


@takes()
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
        priority=body.priority.to_priority() if body.priority else None,
        search_attributes=body.search_attributes,
    )
    out = {"namespace": namespace, "workflow_id": handle.workflow_id, "run_id": handle.run_id}
    return json_response(out, 201)


@takes()
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
        priority=body.priority.to_priority() if body.priority else None,
        search_attributes=body.search_attributes,
    )
    out = {"namespace": namespace, "workflow_id": handle.workflow_id, "run_id": handle.run_id}
    return json_response(out)


def _attribute_filters(request: Request) -> dict[str, Any] | None:
    """``?search_attributes=`` as JSON: ``{"customer": "acme", "amount": {"min": 50}}``;
    an object with ``min`` and/or ``max`` is a range."""
    raw = optional(request, "search_attributes")
    if raw is None:
        return None
    try:
        given = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidArgument("?search_attributes= must be a JSON object") from None
    if not isinstance(given, dict):
        raise InvalidArgument("?search_attributes= must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in given.items():
        if isinstance(value, dict):
            if not value or set(value) - {"min", "max"}:
                raise InvalidArgument(
                    f'search attribute {name!r}: a range is {{"min": ..., "max": ...}}'
                )
            value = Range(value.get("min"), value.get("max"))
        out[name] = value
    return out


@takes(
    "status", "type", "limit", "cursor", "search_attributes",
    "started_after", "started_before", "closed_after", "closed_before",
)  # fmt: skip
async def list_runs(request: Request) -> Response:
    server = server_of(request)
    namespace = server.namespace(request)
    forever = 1e12
    page = await server.client.list(
        namespace=namespace,
        status=optional(request, "status"),
        workflow_type=optional(request, "type"),
        started_after=maybe_number(request, "started_after", 0, forever),
        started_before=maybe_number(request, "started_before", 0, forever),
        closed_after=maybe_number(request, "closed_after", 0, forever),
        closed_before=maybe_number(request, "closed_before", 0, forever),
        search_attributes=_attribute_filters(request),
        limit=int(number(request, "limit", 100, 1, 10_000)),
        cursor=optional(request, "cursor"),
    )
    return json_response(
        {"runs": [r.to_dict() for r in page.runs], "next_cursor": page.next_cursor}
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
