"""One module per resource, each with its ``routes``; a new resource (updates, reset,
search attributes) is a new module listed here."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import health, metrics, namespaces, reset, runs, ui, updates, workflows

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = [
    *health.routes,
    *metrics.routes,
    *namespaces.routes,
    *workflows.routes,
    # Before ``runs``: its bare run route would take ``.../update/x`` as a workflow id.
    *updates.routes,
    *reset.routes,
    *runs.routes,
    *ui.routes,
]
