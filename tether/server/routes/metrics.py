"""``/metrics`` in the Prometheus text format: runs by status and task backlog per
queue, for every namespace (what ``Namespaces.describe`` computes), and the requests
this server answered. Needs an admin token when tokens are configured."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import NamespaceNotFound
from ...tenancy import NamespaceDescription
from ..state import server_of

__all__ = ["render", "routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BACKLOG = ("workflow_ready", "activity_ready", "leased", "delayed")


def _labels(**labels: str | int) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in labels.items()) + "}"


def _family(name: str, kind: str, help: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]
    return lines


def render(namespaces: list[NamespaceDescription], requests: dict[tuple[str, int], int]) -> str:
    runs = [
        (_labels(namespace=d.info.name, status=status), count)
        for d in namespaces
        for status, count in sorted(d.stats.runs.items())
    ]
    backlog = [
        (_labels(namespace=d.info.name, task_queue=q.task_queue, state=state), getattr(q, state))
        for d in namespaces
        for q in d.stats.queues
        for state in _BACKLOG
    ]
    waits = [
        (_labels(namespace=d.info.name, kind=kind), count)
        for d in namespaces
        for kind, count in sorted(d.stats.limit_waits.items())
    ]
    served = [
        (_labels(method=method, status=status), count)
        for (method, status), count in sorted(requests.items())
    ]
    lines = [
        *_family("tether_runs", "gauge", "Workflow runs by status.", runs),
        *_family("tether_task_backlog", "gauge", "Tasks of a task queue by state.", backlog),
        *_family(
            "tether_limit_waits_total",
            "counter",
            "Times a namespace's rate limit or concurrency cap held work back.",
            waits,
        ),
        *_family(
            "tether_http_requests_total", "counter", "HTTP requests this server answered.", served
        ),
    ]
    return "\n".join(lines) + "\n"


async def metrics(request: Request) -> Response:
    server = server_of(request)
    server.grant(request).check_admin("reading the metrics of every namespace")
    service = server.client.namespaces
    described = []
    for info in await service.list():
        try:
            described.append(await service.describe(info.name))
        except NamespaceNotFound:
            continue  # deleted since it was listed
    return Response(render(described, server.requests), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]
